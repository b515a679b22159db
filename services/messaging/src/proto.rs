//! Stored rows to wire messages.

use atenciones_proto::common::v1 as common;
use atenciones_proto::messaging::v1 as pb;
use atenciones_proto::time::timestamp;

use crate::domain::{Direction, MessageStatus};
use crate::entity::message;

fn status(value: &str) -> pb::MessageStatus {
    match MessageStatus::parse(value) {
        Some(MessageStatus::Pending) => pb::MessageStatus::Pending,
        Some(MessageStatus::Accepted) => pb::MessageStatus::Accepted,
        Some(MessageStatus::Sent) => pb::MessageStatus::Sent,
        Some(MessageStatus::Delivered) => pb::MessageStatus::Delivered,
        Some(MessageStatus::Read) => pb::MessageStatus::Read,
        Some(MessageStatus::Played) => pb::MessageStatus::Played,
        Some(MessageStatus::Failed) => pb::MessageStatus::Failed,
        Some(MessageStatus::Received) => pb::MessageStatus::Received,
        None => pb::MessageStatus::Unspecified,
    }
}

fn direction(value: &str) -> pb::MessageDirection {
    match Direction::parse(value) {
        Some(Direction::Inbound) => pb::MessageDirection::Inbound,
        Some(Direction::Outbound) => pb::MessageDirection::Outbound,
        None => pb::MessageDirection::Unspecified,
    }
}

pub fn message(row: &message::Model) -> pb::Message {
    let error = row.error_code.map(|code| pb::MessageError {
        code,
        title: row.error_title.clone().unwrap_or_default(),
        detail: row.error_detail.clone().unwrap_or_default(),
    });
    pb::Message {
        id: row.id.to_string(),
        attention_id: row
            .attention_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        wamid: row.wamid.clone().unwrap_or_default(),
        business_phone_number_id: row.business_phone_number_id.clone(),
        customer: Some(common::Customer {
            id: row.customer_id.clone(),
            wa_id: row.customer_wa_id.clone(),
            user_id: row.customer_user_id.clone(),
            name: row.customer_name.clone(),
        }),
        direction: direction(&row.direction).into(),
        r#type: row.message_type.clone(),
        text: row.text.clone(),
        status: status(&row.status).into(),
        error,
        time: Some(timestamp(row.sent_at)),
        agent_id: row.agent_id.clone().unwrap_or_default(),
        // Structured content, reactions, reply context: issue 3 in progress.
        ..Default::default()
    }
}
