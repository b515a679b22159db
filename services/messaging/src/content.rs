//! What a message holds, type by type, as the agent sees it, and the one-line
//! summary of it that the conversation list and the transcript show. Plain
//! data: `notification` reads it out of WhatsApp's JSON, `proto` puts it on
//! the wire.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::{Direction, MessageError};

/// Everything a message object says besides who sent it, when, and its type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Details {
    pub content: Content,
    /// WhatsApp id of the message this one quotes.
    pub reply_to: Option<String>,
    pub forwarded: bool,
    pub frequently_forwarded: bool,
    /// The click-to-WhatsApp ad the customer came from.
    pub referral: Option<Referral>,
}

/// The structured content of a message, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Media(Media),
    Location(Location),
    Contacts(Vec<ContactCard>),
    InteractiveReply(InteractiveReply),
    ButtonReply(ButtonReply),
    Order(Order),
    System(SystemNotice),
    Reaction(ReactionContent),
    /// A type we cannot show, or a known type without its object.
    Unsupported(Unsupported),
}

impl Default for Content {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

pub use crate::media::MediaKind;

/// An image, video, audio, document or sticker as WhatsApp announced it; the
/// file itself is fetched separately with `whatsapp_media_id` (or `url`).
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub kind: MediaKind,
    pub whatsapp_media_id: String,
    pub mime_type: String,
    /// Base64 SHA-256 of the file, as WhatsApp gives it.
    pub sha256: String,
    pub caption: String,
    pub filename: String,
    /// A direct download URL, when WhatsApp sent one (it expires in minutes).
    pub url: String,
    pub voice: bool,
    pub animated: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: String,
    pub address: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactCard {
    pub formatted_name: String,
    pub phones: Vec<ContactPhone>,
    pub emails: Vec<String>,
    pub organization: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactPhone {
    pub phone: String,
    /// CELL, WORK, HOME…
    pub label: String,
    pub wa_id: String,
}

/// A button, list row or flow the customer answered with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InteractiveReply {
    /// button_reply, list_reply, nfm_reply (or a newer kind, kept as named).
    pub kind: String,
    pub id: String,
    pub title: String,
    pub description: String,
    /// A flow's answer, as the JSON text WhatsApp sends.
    pub response_json: String,
}

/// A template's quick-reply button press.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ButtonReply {
    pub payload: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Order {
    pub catalog_id: String,
    pub text: String,
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderItem {
    pub product_retailer_id: String,
    pub quantity: u32,
    pub item_price: f64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemNotice {
    /// WhatsApp's kind, e.g. user_changed_number, customer_identity_changed.
    pub kind: String,
    pub body: String,
    /// The customer's new WhatsApp id after a number change.
    pub new_wa_id: String,
}

/// A reaction message: which message it is on and the emoji (empty: removed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReactionContent {
    pub target_wamid: String,
    pub emoji: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsupported {
    /// WhatsApp's type name.
    pub kind: String,
    pub errors: Vec<MessageError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Referral {
    pub source_url: String,
    pub source_type: String,
    pub source_id: String,
    pub headline: String,
    pub body: String,
    pub media_type: String,
    pub ctwa_clid: String,
}

impl Content {
    /// What an agent reads for the message in one line: the text, the
    /// caption, or a short description of what it is.
    pub fn summary(&self) -> String {
        let or = |value: &str, fallback: String| {
            let value = value.trim();
            if value.is_empty() {
                fallback
            } else {
                value.to_owned()
            }
        };
        match self {
            Self::Text(body) => body.clone(),
            Self::Media(media) => {
                let label = match media.kind {
                    MediaKind::Audio if media.voice => "[voice note]".to_owned(),
                    MediaKind::Document if !media.filename.trim().is_empty() => {
                        format!("📄 {}", media.filename.trim())
                    }
                    kind => format!("[{}]", kind.as_str()),
                };
                match media.kind {
                    MediaKind::Image | MediaKind::Video | MediaKind::Document => {
                        or(&media.caption, label)
                    }
                    MediaKind::Audio | MediaKind::Sticker => label,
                }
            }
            Self::Location(location) => {
                let place: Vec<&str> = [location.name.trim(), location.address.trim()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                if place.is_empty() {
                    format!("📍 {}, {}", location.latitude, location.longitude)
                } else {
                    format!("📍 {}", place.join(", "))
                }
            }
            Self::Contacts(cards) => {
                let names: Vec<&str> = cards
                    .iter()
                    .map(|c| c.formatted_name.trim())
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.is_empty() {
                    "[contacts]".to_owned()
                } else {
                    format!("👤 {}", names.join(", "))
                }
            }
            Self::InteractiveReply(reply) => or(&reply.title, "[interactive]".to_owned()),
            Self::ButtonReply(button) => {
                or(&button.text, or(&button.payload, "[button]".to_owned()))
            }
            Self::Order(order) => {
                let items = order.items.len();
                match order.text.trim() {
                    "" => format!("🛒 order, {items} items"),
                    text => format!("🛒 order, {items} items: {text}"),
                }
            }
            Self::System(notice) => or(&notice.body, "[system message]".to_owned()),
            Self::Reaction(reaction) => or(&reaction.emoji, "[reaction removed]".to_owned()),
            Self::Unsupported(unsupported) => match unsupported.kind.as_str() {
                "" | "unsupported" => "[unsupported message]".to_owned(),
                kind => format!("[unsupported message: {kind}]"),
            },
        }
    }
}

/// A reaction as shown on the message it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub direction: Direction,
    pub time: DateTime<Utc>,
}

/// One reaction message, as kept for the message it reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionEvent {
    pub target_wamid: String,
    pub direction: Direction,
    /// Empty: the reaction was removed.
    pub emoji: String,
    /// When the reaction was made (WhatsApp's time).
    pub time: DateTime<Utc>,
    /// Order of arrival here: breaks ties between reactions made in the same
    /// second (WhatsApp's timestamps have whole seconds).
    pub sequence: i64,
}

/// The reactions each message shows: per message and side, the latest
/// reaction by time (then arrival) wins, and a removal shows nothing. Folding
/// the whole history instead of updating a current value makes the result
/// independent of the order in which webhooks arrive or are replayed.
pub fn current_reactions(
    events: impl IntoIterator<Item = ReactionEvent>,
) -> HashMap<String, Vec<Reaction>> {
    let mut latest: HashMap<(String, Direction), ReactionEvent> = HashMap::new();
    for event in events {
        let key = (event.target_wamid.clone(), event.direction);
        match latest.get(&key) {
            Some(kept) if (kept.time, kept.sequence) >= (event.time, event.sequence) => {}
            _ => {
                latest.insert(key, event);
            }
        }
    }
    let mut shown: HashMap<String, Vec<Reaction>> = HashMap::new();
    for ((target, direction), event) in latest {
        if event.emoji.is_empty() {
            continue;
        }
        shown.entry(target).or_default().push(Reaction {
            emoji: event.emoji,
            direction,
            time: event.time,
        });
    }
    for reactions in shown.values_mut() {
        reactions.sort_by_key(|r| (r.time, r.direction == Direction::Outbound));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap_or_default()
    }

    fn event(
        target: &str,
        direction: Direction,
        emoji: &str,
        time: i64,
        sequence: i64,
    ) -> ReactionEvent {
        ReactionEvent {
            target_wamid: target.into(),
            direction,
            emoji: emoji.into(),
            time: at(time),
            sequence,
        }
    }

    fn emojis(shown: &HashMap<String, Vec<Reaction>>, target: &str) -> Vec<String> {
        shown
            .get(target)
            .map(|r| r.iter().map(|r| r.emoji.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_latest_reaction_of_each_side_wins_whatever_the_arrival_order() {
        let events = [
            event("m1", Direction::Inbound, "😮", 10, 1),
            event("m1", Direction::Inbound, "❤️", 20, 2),
            // Delivered late, made earlier: loses.
            event("m1", Direction::Inbound, "👍", 15, 3),
            event("m1", Direction::Outbound, "🙏", 12, 4),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let shown = current_reactions(order.map(|i| events[i].clone()));
            assert_eq!(emojis(&shown, "m1"), ["🙏", "❤️"], "{order:?}");
        }
    }

    #[test]
    fn an_empty_emoji_removes_and_a_later_one_comes_back() {
        let added = event("m1", Direction::Inbound, "😮", 10, 1);
        let removed = event("m1", Direction::Inbound, "", 10, 2);
        let shown = current_reactions([added.clone(), removed.clone()]);
        assert!(!shown.contains_key("m1"), "same second: arrival decides");
        let again = event("m1", Direction::Inbound, "🎉", 11, 3);
        let shown = current_reactions([again, removed, added]);
        assert_eq!(emojis(&shown, "m1"), ["🎉"]);
    }

    #[test]
    fn reactions_are_kept_per_target() {
        let shown = current_reactions([
            event("m1", Direction::Inbound, "😮", 10, 1),
            event("m2", Direction::Inbound, "👍", 10, 2),
        ]);
        assert_eq!(emojis(&shown, "m1"), ["😮"]);
        assert_eq!(emojis(&shown, "m2"), ["👍"]);
    }

    fn media(kind: MediaKind) -> Media {
        Media {
            kind,
            whatsapp_media_id: "1".into(),
            mime_type: String::new(),
            sha256: String::new(),
            caption: String::new(),
            filename: String::new(),
            url: String::new(),
            voice: false,
            animated: false,
        }
    }

    #[test]
    fn summaries_say_what_a_message_is() {
        assert_eq!(Content::Media(media(MediaKind::Image)).summary(), "[image]");
        let captioned = Media {
            caption: " look ".into(),
            ..media(MediaKind::Video)
        };
        assert_eq!(Content::Media(captioned).summary(), "look");
        let file = Media {
            filename: "a.pdf".into(),
            ..media(MediaKind::Document)
        };
        assert_eq!(Content::Media(file).summary(), "📄 a.pdf");
        let voice = Media {
            voice: true,
            ..media(MediaKind::Audio)
        };
        assert_eq!(Content::Media(voice).summary(), "[voice note]");
        assert_eq!(
            Content::Unsupported(Unsupported {
                kind: "poll".into(),
                errors: Vec::new()
            })
            .summary(),
            "[unsupported message: poll]"
        );
        assert_eq!(
            Content::ButtonReply(ButtonReply {
                payload: "p".into(),
                text: String::new()
            })
            .summary(),
            "p"
        );
        assert_eq!(
            Content::Text(" exact ".into()).summary(),
            " exact ",
            "a text is the message itself"
        );
    }
}
