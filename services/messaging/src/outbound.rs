//! What the business sends: every kind of outbound message, and where it goes.
//! Knows nothing about protobuf or HTTP (`graph.rs` writes these as the Cloud
//! API takes them).

use uuid::Uuid;

use crate::domain::Customer;

/// Where and to whom a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub attention_id: Uuid,
    pub business_phone_number_id: String,
    pub customer: Customer,
    /// Agent who sends it.
    pub agent_id: Option<String>,
}

/// One message to send, at most once per idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub recipient: Recipient,
    pub body: OutboundBody,
    /// The message (its id in this system) this one replies to: WhatsApp shows
    /// it quoted. Text, template and media only.
    pub reply_to: Option<Uuid>,
    pub idempotency_key: String,
}

/// What is sent, one variant per Cloud API message type. Every kind goes
/// through the same pipeline (stored, sent, retried, windowed); a new kind is a
/// variant here plus its arms in the methods below and in `graph`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundBody {
    Text {
        body: String,
        /// Ask WhatsApp to render a preview of the first link.
        preview_url: bool,
    },
    Template(Template),
    Reaction {
        /// WhatsApp id of the message reacted to.
        target_wamid: String,
        /// Empty: removes the business's reaction.
        emoji: String,
    },
    /// A file already uploaded to WhatsApp.
    Media(Media),
}

/// An approved template and the values of its body's placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// Language code of the approved translation, such as `es` or `es_MX`.
    pub language: String,
    /// `{{1}}`, `{{2}}`, … in order.
    pub body_parameters: Vec<String>,
}

/// An uploaded image, video, audio, document or sticker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    /// The id WhatsApp gave the upload.
    pub whatsapp_media_id: String,
    /// Image, video and document only; empty for none.
    pub caption: String,
    /// Document only; empty for none.
    pub filename: String,
}

pub use crate::media::MediaKind;

impl OutboundBody {
    /// WhatsApp's type name, stored as the message's type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Template(_) => "template",
            Self::Reaction { .. } => "reaction",
            Self::Media(media) => media.kind.as_str(),
        }
    }

    /// Whether WhatsApp takes it only inside the customer's 24-hour window:
    /// everything but approved templates, which exist to reach customers
    /// outside it.
    pub fn needs_window(&self) -> bool {
        !matches!(self, Self::Template(_))
    }

    /// The readable text stored with the message: shown in the conversation
    /// and as the attention's preview.
    pub fn summary(&self) -> String {
        match self {
            Self::Text { body, .. } => body.clone(),
            Self::Template(template) if template.body_parameters.is_empty() => {
                format!("Template {}", template.name)
            }
            Self::Template(template) => format!(
                "Template {}: {}",
                template.name,
                template.body_parameters.join(", ")
            ),
            Self::Reaction { emoji, .. } if emoji.is_empty() => "Removed a reaction".to_owned(),
            Self::Reaction { emoji, .. } => format!("Reacted {emoji}"),
            Self::Media(media) if media.caption.is_empty() => media.kind.as_str().to_owned(),
            Self::Media(media) => media.caption.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(parameters: &[&str]) -> OutboundBody {
        OutboundBody::Template(Template {
            name: "seguimiento".into(),
            language: "es".into(),
            body_parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    #[test]
    fn only_templates_may_go_outside_the_window() {
        assert!(!template(&[]).needs_window());
        let free_form = [
            OutboundBody::Text {
                body: "hola".into(),
                preview_url: false,
            },
            OutboundBody::Reaction {
                target_wamid: "wamid.1".into(),
                emoji: "👍".into(),
            },
            OutboundBody::Media(Media {
                kind: MediaKind::Image,
                whatsapp_media_id: "1".into(),
                caption: String::new(),
                filename: String::new(),
            }),
        ];
        for body in free_form {
            assert!(body.needs_window(), "{body:?}");
        }
    }

    #[test]
    fn summaries_read_as_the_conversation_shows_them() {
        assert_eq!(template(&[]).summary(), "Template seguimiento");
        assert_eq!(
            template(&["Ana", "12/05"]).summary(),
            "Template seguimiento: Ana, 12/05"
        );
        let reaction = |emoji: &str| OutboundBody::Reaction {
            target_wamid: "wamid.1".into(),
            emoji: emoji.into(),
        };
        assert_eq!(reaction("👍").summary(), "Reacted 👍");
        assert_eq!(reaction("").summary(), "Removed a reaction");
    }

    #[test]
    fn media_kinds_round_trip_through_their_names() {
        for kind in MediaKind::ALL {
            assert_eq!(MediaKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MediaKind::parse("gif"), None);
    }
}
