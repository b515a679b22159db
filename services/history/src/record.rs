//! The record of a finished attention: who, when, the transcript and the form.

use chrono::{DateTime, Utc};

pub use atenciones_domain::{Direction, Violation};

/// The attention a record is about (the queue service's id, kept opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionId(String);

impl AttentionId {
    pub fn parse(id: String, field: &str) -> Result<Self, Violation> {
        if id.trim().is_empty() {
            Err(Violation::new(field, "Indique la atención."))
        } else {
            Ok(Self(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The stable key of a customer (their WhatsApp id, or their business-scoped id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(id: String, field: &str) -> Result<Self, Violation> {
        if id.trim().is_empty() {
            Err(Violation::new(field, "Indique el cliente."))
        } else {
            Ok(Self(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub wa_id: String,
    pub user_id: String,
    pub name: String,
}

/// Generates a small enum stored by name; `None` stands for "not given".
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Stored text of an optional value.
            pub fn store(value: Option<Self>) -> &'static str {
                value.map_or(UNSPECIFIED, Self::as_str)
            }

            /// An optional value from its stored text; unknown text reads as not given.
            pub fn load(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

/// Stored for an enum the caller left unset.
pub const UNSPECIFIED: &str = "unspecified";

stored_enum!(
    /// Which side wrote a message.
    MessageDirection { Inbound => "inbound", Outbound => "outbound" }
);

stored_enum!(
    /// Delivery state of a message when the attention finished.
    MessageStatus {
        Pending => "pending",
        Accepted => "accepted",
        Sent => "sent",
        Delivered => "delivered",
        Read => "read",
        Played => "played",
        Failed => "failed",
        Received => "received",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    pub code: i64,
    pub title: String,
    pub detail: String,
}

/// One message of the conversation, as it stood when the attention finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptMessage {
    pub message_id: String,
    pub wamid: String,
    pub direction: Option<MessageDirection>,
    pub message_type: String,
    pub text: String,
    pub status: Option<MessageStatus>,
    pub error: Option<MessageError>,
    pub agent_id: String,
    pub sent_at: Option<DateTime<Utc>>,
    /// The message as the messaging service gave it, encoded: media
    /// reference, location, contacts, reply context, reactions. History keeps
    /// and returns it; the fields above are what it reads.
    pub content: Option<Vec<u8>>,
}

/// A finished attention. `form` is the submission exactly as the form service
/// gave it (encoded); history keeps and returns it, it does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionRecord {
    pub attention_id: AttentionId,
    pub campaign_id: String,
    pub campaign_name: String,
    pub business_phone_number_id: String,
    pub customer: Customer,
    pub direction: Option<Direction>,
    pub agent_id: String,
    pub created_at: DateTime<Utc>,
    pub opened_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub message_count: u32,
    pub form: Option<Vec<u8>>,
    /// Oldest first; empty in list results.
    pub transcript: Vec<TranscriptMessage>,
    pub tag: String,
    /// Everyone who held it, in order; the last finished it.
    pub agent_ids: Vec<String>,
    pub transfers: Vec<Transfer>,
    /// The first outbound message's time; kept so lists have it without
    /// the transcript.
    pub first_response_at: Option<DateTime<Utc>>,
}

/// One hand-over of the attention, to an agent or to a campaign's queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    pub from_agent_id: String,
    pub to_agent_id: String,
    pub from_campaign_id: String,
    pub to_campaign_id: String,
    pub note: String,
    pub at: Option<DateTime<Utc>>,
}

impl AttentionRecord {
    /// The submitted form, if the record has one that decodes.
    pub fn submission(&self) -> Option<atenciones_proto::form::v1::Submission> {
        use prost::Message;
        self.form
            .as_deref()
            .and_then(|bytes| atenciones_proto::form::v1::Submission::decode(bytes).ok())
    }

    /// Seconds from the start until an agent first opened it.
    pub fn waiting_seconds(&self) -> u32 {
        seconds_between(self.created_at, self.opened_at.unwrap_or(self.finished_at))
    }

    /// Seconds from the first open until it was finished.
    pub fn handling_seconds(&self) -> u32 {
        self.opened_at
            .map_or(0, |opened| seconds_between(opened, self.finished_at))
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
    u32::try_from((to - from).num_seconds().max(0)).unwrap_or(u32::MAX)
}

/// To the microsecond, what PostgreSQL keeps: a time read back then equals the
/// one written, which keyset page tokens rely on.
pub fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_not_be_blank() {
        assert!(AttentionId::parse("a-1".into(), "attention_id").is_ok());
        let violation = AttentionId::parse("  ".into(), "record.attention_id").expect_err("blank");
        assert_eq!(violation.field, "record.attention_id");
        assert!(CustomerId::parse(String::new(), "customer_id").is_err());
    }

    #[test]
    fn enums_round_trip_through_their_stored_text() {
        for status in [
            MessageStatus::Pending,
            MessageStatus::Read,
            MessageStatus::Received,
        ] {
            assert_eq!(
                MessageStatus::load(MessageStatus::store(Some(status))),
                Some(status)
            );
        }
        assert_eq!(MessageDirection::store(None), "unspecified");
        assert_eq!(MessageDirection::load("unspecified"), None);
        assert_eq!(MessageDirection::load("sideways"), None);
    }

    #[test]
    fn times_are_kept_to_the_microsecond() {
        let time = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid");
        assert_eq!(
            truncate_to_micros(time).timestamp_subsec_nanos(),
            123_456_000
        );
    }
}
