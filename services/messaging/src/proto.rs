//! Stored rows to wire messages.

use atenciones_proto::common::v1 as common;
use atenciones_proto::messaging::v1 as pb;
use atenciones_proto::time::timestamp;
use chrono::{DateTime, Utc};

use crate::domain::{Direction, MessageStatus};
use crate::entity::message;
use crate::graph;
use crate::outbound::OutboundBody;
use crate::window::Window;

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

/// The 24-hour window as the agent's countdown needs it.
pub fn window(window: &Window, now: DateTime<Utc>) -> pb::ConversationWindow {
    pb::ConversationWindow {
        open: window.is_open(now),
        expire_time: window.expire_time().map(timestamp),
    }
}

/// What an outbound message's stored request says: its structured content
/// and the message it replies to.
fn outbound_content(
    row: &message::Model,
) -> (Option<pb::message::Content>, Option<pb::MessageRef>) {
    let Some((body, reply_to)) = row.raw.as_ref().and_then(graph::read_message_body) else {
        return (None, None);
    };
    let content = match body {
        OutboundBody::Template(template) => {
            Some(pb::message::Content::Template(pb::TemplateContent {
                name: template.name,
                language: template.language,
                body_parameters: template.body_parameters,
            }))
        }
        OutboundBody::Reaction {
            target_wamid,
            emoji,
        } => Some(pb::message::Content::Reaction(pb::ReactionContent {
            target: Some(pb::MessageRef {
                message_id: String::new(),
                wamid: target_wamid,
            }),
            emoji,
        })),
        OutboundBody::Text { .. } | OutboundBody::Media(_) => None,
    };
    let reply_to = reply_to.map(|wamid| pb::MessageRef {
        message_id: String::new(),
        wamid,
    });
    (content, reply_to)
}

pub fn message(row: &message::Model) -> pb::Message {
    let error = row.error_code.map(|code| pb::MessageError {
        code,
        title: row.error_title.clone().unwrap_or_default(),
        detail: row.error_detail.clone().unwrap_or_default(),
    });
    let (content, reply_to) = match Direction::parse(&row.direction) {
        Some(Direction::Outbound) => outbound_content(row),
        _ => (None, None),
    };
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
        reply_to,
        content,
        // Inbound content, reactions on a message: issue 3 in progress.
        ..Default::default()
    }
}
