//! Protobuf ↔ domain conversions, so the domain never sees generated types.

use atenciones_proto::common::v1 as common;
use atenciones_proto::form::v1::Submission;
use atenciones_proto::history::v1 as pb;
use atenciones_proto::messaging::v1 as messaging;
use atenciones_proto::time::{from_timestamp, timestamp};
use chrono::{DateTime, Utc};
use prost::Message as _;

use crate::activity::Event;
use crate::error::Error;
use crate::record::{
    AttentionId, AttentionRecord, Customer, CustomerId, Direction, MessageDirection, MessageError,
    MessageStatus, TranscriptMessage, Transfer, Violation,
};
use crate::report;

/// An optional time; out of range is a violation of `field`.
pub(crate) fn time(
    value: Option<prost_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, Violation> {
    value
        .map(|v| {
            from_timestamp(&v).ok_or_else(|| Violation::new(field, "La fecha está fuera de rango."))
        })
        .transpose()
}

fn message_direction(value: i32) -> Option<MessageDirection> {
    match messaging::MessageDirection::try_from(value).ok()? {
        messaging::MessageDirection::Inbound => Some(MessageDirection::Inbound),
        messaging::MessageDirection::Outbound => Some(MessageDirection::Outbound),
        messaging::MessageDirection::Unspecified => None,
    }
}

fn message_direction_to_proto(value: Option<MessageDirection>) -> messaging::MessageDirection {
    match value {
        Some(MessageDirection::Inbound) => messaging::MessageDirection::Inbound,
        Some(MessageDirection::Outbound) => messaging::MessageDirection::Outbound,
        None => messaging::MessageDirection::Unspecified,
    }
}

fn message_status(value: i32) -> Option<MessageStatus> {
    use messaging::MessageStatus as S;
    Some(match S::try_from(value).ok()? {
        S::Pending => MessageStatus::Pending,
        S::Accepted => MessageStatus::Accepted,
        S::Sent => MessageStatus::Sent,
        S::Delivered => MessageStatus::Delivered,
        S::Read => MessageStatus::Read,
        S::Played => MessageStatus::Played,
        S::Failed => MessageStatus::Failed,
        S::Received => MessageStatus::Received,
        S::Unspecified => return None,
    })
}

fn message_status_to_proto(value: Option<MessageStatus>) -> messaging::MessageStatus {
    use messaging::MessageStatus as S;
    match value {
        Some(MessageStatus::Pending) => S::Pending,
        Some(MessageStatus::Accepted) => S::Accepted,
        Some(MessageStatus::Sent) => S::Sent,
        Some(MessageStatus::Delivered) => S::Delivered,
        Some(MessageStatus::Read) => S::Read,
        Some(MessageStatus::Played) => S::Played,
        Some(MessageStatus::Failed) => S::Failed,
        Some(MessageStatus::Received) => S::Received,
        None => S::Unspecified,
    }
}

/// Collects every problem of a request before giving up on it.
#[derive(Default)]
struct Problems(Vec<Violation>);

impl Problems {
    fn check<T>(&mut self, result: Result<T, Violation>) -> Option<T> {
        result.map_err(|violation| self.0.push(violation)).ok()
    }
}

impl TryFrom<pb::RecordAttentionRequest> for AttentionRecord {
    type Error = Error;

    /// Only the attention id and the customer are required. A missing finish
    /// time means "now" and a missing start time means the finish time, so a
    /// record can always be listed in order.
    fn try_from(request: pb::RecordAttentionRequest) -> Result<Self, Error> {
        let Some(record) = request.record else {
            return Err(Error::invalid(vec![Violation::new(
                "record",
                "Falta el registro.",
            )]));
        };
        let mut problems = Problems::default();
        let attention_id = problems.check(AttentionId::parse(
            record.attention_id,
            "record.attention_id",
        ));
        let customer = record.customer.unwrap_or_default();
        let customer_id = problems.check(CustomerId::parse(customer.id, "record.customer.id"));
        let created_at = problems.check(time(record.create_time, "record.create_time"));
        let opened_at = problems.check(time(record.open_time, "record.open_time"));
        let finished_at = problems.check(time(record.finish_time, "record.finish_time"));
        let transcript: Vec<_> = record
            .transcript
            .into_iter()
            .enumerate()
            .filter_map(|(i, message)| {
                let sent_at =
                    problems.check(time(message.time, &format!("record.transcript[{i}].time")))?;
                let content = Some(message.encode_to_vec());
                Some(TranscriptMessage {
                    content,
                    message_id: message.id,
                    wamid: message.wamid,
                    direction: message_direction(message.direction),
                    message_type: message.r#type,
                    text: message.text,
                    status: message_status(message.status),
                    error: message.error.map(|e| MessageError {
                        code: e.code,
                        title: e.title,
                        detail: e.detail,
                    }),
                    agent_id: message.agent_id,
                    sent_at,
                })
            })
            .collect();
        let (
            Some(attention_id),
            Some(customer_id),
            Some(created_at),
            Some(opened_at),
            Some(finished_at),
        ) = (
            attention_id,
            customer_id,
            created_at,
            opened_at,
            finished_at,
        )
        else {
            return Err(Error::invalid(problems.0));
        };
        if !problems.0.is_empty() {
            return Err(Error::invalid(problems.0));
        }
        let finished_at = finished_at.unwrap_or_else(Utc::now);
        let first_response_at = transcript
            .iter()
            .find(|m| m.direction == Some(MessageDirection::Outbound))
            .and_then(|m| m.sent_at);
        let transfers = record
            .transfers
            .into_iter()
            .map(|t| Transfer {
                at: t.time.as_ref().and_then(from_timestamp),
                from_agent_id: t.from_agent_id,
                to_agent_id: t.to_agent_id,
                from_campaign_id: t.from_campaign_id,
                to_campaign_id: t.to_campaign_id,
                note: t.note,
            })
            .collect();
        Ok(Self {
            attention_id,
            campaign_id: record.campaign_id,
            campaign_name: record.campaign_name,
            business_phone_number_id: record.business_phone_number_id,
            customer: Customer {
                id: customer_id,
                wa_id: customer.wa_id,
                user_id: customer.user_id,
                name: customer.name,
            },
            direction: Direction::from_proto(record.direction),
            agent_id: record.agent_id,
            created_at: created_at.unwrap_or(finished_at),
            opened_at,
            finished_at,
            message_count: u32::try_from(transcript.len()).unwrap_or(u32::MAX),
            form: record.form.map(|form| form.encode_to_vec()),
            transcript,
            tag: record.tag,
            agent_ids: record.agent_ids,
            transfers,
            first_response_at,
        })
    }
}

impl TryFrom<AttentionRecord> for pb::AttentionRecord {
    type Error = Error;

    fn try_from(record: AttentionRecord) -> Result<Self, Error> {
        let waiting_seconds = record.waiting_seconds();
        let handling_seconds = record.handling_seconds();
        let form = record
            .form
            .map(|bytes| Submission::decode(bytes.as_slice()))
            .transpose()
            .map_err(|e| {
                Error::Corrupt(format!("form of {}: {e}", record.attention_id.as_str()))
            })?;
        let attention_id = record.attention_id.into_string();
        let customer = common::Customer {
            id: record.customer.id.as_str().to_owned(),
            wa_id: record.customer.wa_id,
            user_id: record.customer.user_id,
            name: record.customer.name,
        };
        // The stored message gives the structured content; the columns, what
        // history reads and searches, are written over it.
        let transcript = record
            .transcript
            .into_iter()
            .map(|m| messaging::Message {
                id: m.message_id,
                attention_id: attention_id.clone(),
                wamid: m.wamid,
                business_phone_number_id: record.business_phone_number_id.clone(),
                customer: Some(customer.clone()),
                direction: message_direction_to_proto(m.direction).into(),
                r#type: m.message_type,
                text: m.text,
                status: message_status_to_proto(m.status).into(),
                error: m.error.map(|e| messaging::MessageError {
                    code: e.code,
                    title: e.title,
                    detail: e.detail,
                }),
                time: m.sent_at.map(timestamp),
                agent_id: m.agent_id,
                ..m.content
                    .and_then(|bytes| messaging::Message::decode(bytes.as_slice()).ok())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Self {
            attention_id,
            campaign_id: record.campaign_id,
            campaign_name: record.campaign_name,
            business_phone_number_id: record.business_phone_number_id,
            customer: Some(customer),
            direction: record
                .direction
                .map_or(common::Direction::Unspecified, Direction::to_proto)
                .into(),
            agent_id: record.agent_id,
            create_time: Some(timestamp(record.created_at)),
            open_time: record.opened_at.map(timestamp),
            finish_time: Some(timestamp(record.finished_at)),
            transcript,
            form,
            message_count: record.message_count,
            tag: record.tag,
            agent_ids: record.agent_ids,
            transfers: record
                .transfers
                .into_iter()
                .map(|t| pb::Transfer {
                    from_agent_id: t.from_agent_id,
                    to_agent_id: t.to_agent_id,
                    from_campaign_id: t.from_campaign_id,
                    to_campaign_id: t.to_campaign_id,
                    note: t.note,
                    time: t.at.map(timestamp),
                })
                .collect(),
            first_response_time: record.first_response_at.map(timestamp),
            waiting_seconds,
            handling_seconds,
        })
    }
}

/// The events of a request; every bad one is reported, by its index.
pub(crate) fn events(request: pb::RecordAttentionEventsRequest) -> Result<Vec<Event>, Error> {
    let mut problems = Problems::default();
    let events = request
        .events
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let field = |name: &str| format!("events[{i}].{name}");
            if e.id <= 0 {
                problems
                    .0
                    .push(Violation::new(field("id"), "Falta el id del evento."));
            }
            if e.kind.is_empty() {
                problems
                    .0
                    .push(Violation::new(field("kind"), "Falta el tipo del evento."));
            }
            let attention_id =
                problems.check(AttentionId::parse(e.attention_id, &field("attention_id")));
            let required = |value, name: &str| match time(value, &field(name)) {
                Ok(None) => Err(Violation::new(field(name), "Falta la fecha.")),
                other => other,
            };
            let created =
                problems.check(required(e.attention_create_time, "attention_create_time"));
            let time = problems.check(required(e.time, "time"));
            let payload = problems.check(
                serde_json::from_str(if e.payload_json.is_empty() {
                    "{}"
                } else {
                    &e.payload_json
                })
                .map_err(|_| Violation::new(field("payload_json"), "No es JSON válido.")),
            );
            Some(Event {
                id: e.id,
                kind: e.kind,
                attention_id: attention_id?.into_string(),
                campaign_id: e.campaign_id,
                direction: Direction::from_proto(e.direction),
                attention_created_at: created??,
                time: time??,
                actor: e.actor,
                agent_id: e.agent_id,
                payload: payload?,
            })
        })
        .collect();
    if problems.0.is_empty() {
        Ok(events)
    } else {
        Err(Error::invalid(problems.0))
    }
}

/// A report's filter, narrowed to `scope` (the campaigns the caller may see).
pub(crate) fn report_filter(
    filter: Option<pb::ReportFilter>,
    scope: Vec<String>,
) -> Result<report::Filter, Error> {
    let filter = filter.unwrap_or_default();
    let mut problems = Problems::default();
    if scope.is_empty() {
        problems.0.push(Violation::new(
            "scope_campaign_ids",
            "Indique las campañas que puede ver quien pide el reporte.",
        ));
    }
    let mut required = |value, name: &str| {
        let field = format!("filter.{name}");
        problems.check(match time(value, &field) {
            Ok(None) => Err(Violation::new(field, "Indique la fecha.")),
            other => other,
        })
    };
    let from = required(filter.start_from, "start_from").flatten();
    let to = required(filter.start_to, "start_to").flatten();
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        problems.0.push(Violation::new(
            "filter.start_to",
            "La fecha final debe ser posterior a la inicial.",
        ));
    }
    let (Some(start_from), Some(start_to), true) = (from, to, problems.0.is_empty()) else {
        return Err(Error::invalid(problems.0));
    };
    let campaign_ids = if filter.campaign_ids.is_empty() {
        scope
    } else {
        filter
            .campaign_ids
            .into_iter()
            .filter(|c| scope.contains(c))
            .collect()
    };
    Ok(report::Filter {
        start_from,
        start_to,
        campaign_ids,
        agent_ids: filter.agent_ids,
    })
}

impl From<&report::Row> for pb::ReportRow {
    #[allow(clippy::cast_sign_loss)] // counts are never negative
    fn from(row: &report::Row) -> Self {
        let count = |n: i64| n.max(0) as u64;
        Self {
            campaign_id: row.campaign_id.clone(),
            agent_id: row.agent_id.clone(),
            total: count(row.total),
            waiting: count(row.waiting),
            open: count(row.open),
            finished: count(row.finished),
            reassigned: count(row.reassigned),
            orphaned: count(row.orphaned),
            messages_received: count(row.messages_received),
            messages_sent: count(row.messages_sent),
            average_first_response_seconds: row.average_first_response(),
            average_handling_seconds: row.average_handling(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(record: pb::AttentionRecord) -> pb::RecordAttentionRequest {
        pb::RecordAttentionRequest {
            record: Some(record),
        }
    }

    fn minimal() -> pb::AttentionRecord {
        pb::AttentionRecord {
            attention_id: "a-1".into(),
            customer: Some(common::Customer {
                id: "c-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn fields(error: Error) -> Vec<String> {
        match error {
            Error::InvalidArgument { violations, .. } => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn only_attention_and_customer_are_required_and_times_default_to_the_finish() {
        let before = Utc::now();
        let record = AttentionRecord::try_from(request(minimal())).expect("valid");
        assert!(record.finished_at >= before);
        assert_eq!(record.created_at, record.finished_at);
        assert_eq!(record.direction, None);
        assert_eq!(record.form, None);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut bad = minimal();
        bad.attention_id = String::new();
        bad.customer = None;
        bad.finish_time = Some(prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        });
        let error = AttentionRecord::try_from(request(bad)).expect_err("invalid");
        assert_eq!(
            fields(error),
            [
                "record.attention_id",
                "record.customer.id",
                "record.finish_time"
            ]
        );
    }

    #[test]
    fn the_form_is_kept_as_sent_and_message_count_follows_the_transcript() {
        let mut full = minimal();
        full.form = Some(Submission {
            attention_id: "a-1".into(),
            ..Default::default()
        });
        full.message_count = 7;
        full.transcript = vec![messaging::Message {
            text: "hola".into(),
            ..Default::default()
        }];
        let record = AttentionRecord::try_from(request(full.clone())).expect("valid");
        assert_eq!(record.message_count, 1);
        let back = pb::AttentionRecord::try_from(record).expect("decodes");
        assert_eq!(back.form, full.form);
        assert_eq!(back.transcript[0].attention_id, "a-1");
    }
}
