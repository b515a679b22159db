//! Domain vocabulary shared by the webhook side and the gRPC side; knows
//! nothing about protobuf, HTTP or SQL.

use chrono::{DateTime, Utc};

pub use atenciones_domain::Direction;

/// Whether a message has reached the queue service's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Stored, not yet recorded by the queue.
    Pending,
    /// Belongs to an attention.
    Routed,
    /// The queue refused it (business number bound to no campaign); kept so it
    /// can be routed once the number is bound.
    Unrouted,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Routed => "routed",
            Self::Unrouted => "unrouted",
        }
    }
}

/// Delivery state of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    Pending,
    Accepted,
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
    Received,
}

impl MessageStatus {
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Accepted,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Played,
        Self::Failed,
        Self::Received,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
            Self::Received => "received",
        }
    }

    /// Our stored names; WhatsApp's status webhooks use the same words for
    /// sent, delivered, read, played and failed.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// A status of WhatsApp's status webhooks; other words (ours, or newer
    /// ones of WhatsApp) are kept but never applied.
    pub fn from_webhook(value: &str) -> Option<Self> {
        match value {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "played" => Some(Self::Played),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Place on the outbound ladder; `None` off the ladder (received, failed).
    fn rank(self) -> Option<u8> {
        match self {
            Self::Pending => Some(0),
            Self::Accepted => Some(1),
            Self::Sent => Some(2),
            Self::Delivered => Some(3),
            Self::Read => Some(4),
            Self::Played => Some(5),
            Self::Failed | Self::Received => None,
        }
    }

    /// Whether a message in `self` may move to `next`. Statuses arrive late,
    /// twice and out of order, so only forward moves are allowed; failed is
    /// final and inbound messages (received) never change.
    pub fn can_become(self, next: Self) -> bool {
        match (self.rank(), next) {
            (None, _) => false,
            (Some(_), Self::Failed) => true,
            (Some(from), next) => next.rank().is_some_and(|to| to > from),
        }
    }

    /// Every status a message may be in for `next` to apply (for a guarded UPDATE).
    pub fn predecessors(next: Self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|s| s.can_become(next))
            .collect()
    }
}

/// The customer on the other side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Customer {
    /// `wa_id` when known, otherwise `user_id`.
    pub id: String,
    pub wa_id: String,
    pub user_id: String,
    pub name: String,
}

impl Customer {
    pub fn new(wa_id: String, user_id: String, name: String) -> Self {
        let id = if wa_id.is_empty() {
            user_id.clone()
        } else {
            wa_id.clone()
        };
        Self {
            id,
            wa_id,
            user_id,
            name,
        }
    }
}

/// Why WhatsApp refused or failed a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageError {
    pub code: i64,
    pub title: String,
    pub detail: String,
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error {}: {}", self.code, self.title)?;
        if !self.detail.is_empty() && self.detail != self.title {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Now, to the microsecond: PostgreSQL keeps microseconds, so a time read back
/// equals the one written and keyset page tokens match exactly on every backend.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub fn preview(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{}…", head.trim_end())
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(Accepted.can_become(Sent));
        assert!(Sent.can_become(Read), "delivered may be skipped");
        assert!(Read.can_become(Played));
        assert!(
            !Read.can_become(Delivered),
            "read never goes back to delivered"
        );
        assert!(!Delivered.can_become(Sent));
        assert!(!Sent.can_become(Sent), "a repeated status changes nothing");
    }

    #[test]
    fn failed_is_final_and_reachable_from_any_outbound_state() {
        for from in [Pending, Accepted, Sent, Delivered, Read, Played] {
            assert!(from.can_become(Failed), "{from:?} → failed");
        }
        for next in MessageStatus::ALL {
            assert!(!Failed.can_become(next), "failed → {next:?}");
        }
    }

    #[test]
    fn inbound_messages_never_take_delivery_statuses() {
        for next in MessageStatus::ALL {
            assert!(!Received.can_become(next));
        }
    }

    #[test]
    fn applying_statuses_in_any_order_ends_at_the_highest() {
        let orders = [
            [Sent, Delivered, Read],
            [Read, Sent, Delivered],
            [Delivered, Read, Sent],
        ];
        for order in orders {
            let mut state = Accepted;
            for next in order {
                if state.can_become(next) {
                    state = next;
                }
            }
            assert_eq!(state, Read, "{order:?}");
        }
    }

    #[test]
    fn predecessors_are_the_states_below() {
        assert_eq!(
            MessageStatus::predecessors(Delivered),
            vec![Pending, Accepted, Sent]
        );
        assert!(!MessageStatus::predecessors(Failed).contains(&Failed));
        assert!(!MessageStatus::predecessors(Failed).contains(&Received));
    }

    #[test]
    fn previews_are_cut_on_characters() {
        assert_eq!(preview("hola", 10), "hola");
        assert_eq!(preview("ñandú ñandú", 5), "ñandú…");
        assert_eq!(preview("😮😮😮", 2), "😮😮…");
    }

    #[test]
    fn customer_id_prefers_wa_id() {
        assert_eq!(
            Customer::new("5491".into(), "US.1".into(), String::new()).id,
            "5491"
        );
        assert_eq!(
            Customer::new(String::new(), "US.1".into(), String::new()).id,
            "US.1"
        );
    }
}
