//! Stored rows to wire messages.

use atenciones_proto::common::v1 as common;
use atenciones_proto::messaging::v1 as pb;
use atenciones_proto::time::timestamp;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::content::{self, Content};
use crate::domain::{Direction, MessageError, MessageStatus};
use crate::entity::message;
use crate::graph;
use crate::messaging::MessageView;
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

fn direction(value: Option<Direction>) -> pb::MessageDirection {
    match value {
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

/// What only an outbound message's stored request says: the template it
/// sent (WhatsApp never sends templates in, so the webhook reader does not
/// know them) and the message it replies to. Reactions and media read like
/// inbound ones.
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
        OutboundBody::Text { .. } | OutboundBody::Reaction { .. } | OutboundBody::Media(_) => None,
    };
    (content, reply_to.map(|wamid| message_ref(None, &wamid)))
}

/// A row on its own (see [`MessageView::of`]).
pub fn message(row: &message::Model) -> pb::Message {
    view(&MessageView::of(row.clone()))
}

pub fn view(view: &MessageView) -> pb::Message {
    let row = &view.row;
    let details = &view.details;
    let error = row.error_code.map(|code| {
        error(&MessageError {
            code,
            title: row.error_title.clone().unwrap_or_default(),
            detail: row.error_detail.clone().unwrap_or_default(),
        })
    });
    let (sent_content, sent_reply_to) = match Direction::parse(&row.direction) {
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
        direction: direction(Direction::parse(&row.direction)).into(),
        r#type: row.message_type.clone(),
        text: row.text.clone(),
        status: status(&row.status).into(),
        error,
        time: Some(timestamp(row.sent_at)),
        agent_id: row.agent_id.clone().unwrap_or_default(),
        reply_to: details
            .reply_to
            .as_ref()
            .map(|wamid| message_ref(view.reply_to_id, wamid))
            .or(sent_reply_to),
        forwarded: details.forwarded,
        frequently_forwarded: details.frequently_forwarded,
        referral: details.referral.as_ref().map(|r| pb::Referral {
            source_url: r.source_url.clone(),
            source_type: r.source_type.clone(),
            source_id: r.source_id.clone(),
            headline: r.headline.clone(),
            body: r.body.clone(),
            media_type: r.media_type.clone(),
            ctwa_clid: r.ctwa_clid.clone(),
        }),
        reactions: view
            .reactions
            .iter()
            .map(|r| pb::Reaction {
                emoji: r.emoji.clone(),
                direction: direction(Some(r.direction)).into(),
                time: Some(timestamp(r.time)),
            })
            .collect(),
        content: sent_content.or_else(|| content(&details.content, view.reaction_target_id)),
    }
}

fn message_ref(id: Option<Uuid>, wamid: &str) -> pb::MessageRef {
    pb::MessageRef {
        message_id: id.map(|id| id.to_string()).unwrap_or_default(),
        wamid: wamid.to_owned(),
    }
}

fn error(error: &MessageError) -> pb::MessageError {
    pb::MessageError {
        code: error.code,
        title: error.title.clone(),
        detail: error.detail.clone(),
    }
}

/// `None` for a text: its content is `text`.
fn content(content: &Content, reaction_target_id: Option<Uuid>) -> Option<pb::message::Content> {
    use pb::message::Content as Wire;
    Some(match content {
        Content::Text(_) => return None,
        Content::Media(media) => Wire::Media(pb::MediaContent {
            kind: media.kind.as_str().to_owned(),
            // The file is fetched after the message is stored; the media
            // store fills the id and the state once it has it.
            media_id: String::new(),
            mime_type: media.mime_type.clone(),
            caption: media.caption.clone(),
            filename: media.filename.clone(),
            size_bytes: 0,
            voice: media.voice,
            animated: media.animated,
            state: pb::MediaState::Downloading.into(),
        }),
        Content::Location(location) => Wire::Location(pb::LocationContent {
            latitude: location.latitude,
            longitude: location.longitude,
            name: location.name.clone(),
            address: location.address.clone(),
            url: location.url.clone(),
        }),
        Content::Contacts(cards) => Wire::Contacts(pb::ContactsContent {
            contacts: cards.iter().map(contact_card).collect(),
        }),
        Content::InteractiveReply(reply) => Wire::InteractiveReply(pb::InteractiveReplyContent {
            kind: reply.kind.clone(),
            id: reply.id.clone(),
            title: reply.title.clone(),
            description: reply.description.clone(),
            response_json: reply.response_json.clone(),
        }),
        Content::ButtonReply(button) => Wire::ButtonReply(pb::ButtonReplyContent {
            payload: button.payload.clone(),
            text: button.text.clone(),
        }),
        Content::Order(order) => Wire::Order(pb::OrderContent {
            catalog_id: order.catalog_id.clone(),
            text: order.text.clone(),
            items: order
                .items
                .iter()
                .map(|item| pb::OrderItem {
                    product_retailer_id: item.product_retailer_id.clone(),
                    quantity: item.quantity,
                    item_price: item.item_price,
                    currency: item.currency.clone(),
                })
                .collect(),
        }),
        Content::System(notice) => Wire::System(pb::SystemContent {
            kind: notice.kind.clone(),
            body: notice.body.clone(),
            new_wa_id: notice.new_wa_id.clone(),
        }),
        Content::Reaction(reaction) => Wire::Reaction(pb::ReactionContent {
            target: Some(message_ref(reaction_target_id, &reaction.target_wamid)),
            emoji: reaction.emoji.clone(),
        }),
        Content::Unsupported(unsupported) => Wire::Unsupported(pb::UnsupportedContent {
            r#type: unsupported.kind.clone(),
            errors: unsupported.errors.iter().map(error).collect(),
        }),
    })
}

fn contact_card(card: &content::ContactCard) -> pb::ContactCard {
    pb::ContactCard {
        formatted_name: card.formatted_name.clone(),
        phones: card
            .phones
            .iter()
            .map(|p| pb::ContactPhone {
                phone: p.phone.clone(),
                r#type: p.label.clone(),
                wa_id: p.wa_id.clone(),
            })
            .collect(),
        emails: card.emails.clone(),
        organization: card.organization.clone(),
    }
}
