//! Reading Meta's webhook notifications, leniently: every field is optional,
//! numbers and strings are interchangeable where Meta has sent both, unknown
//! fields and message types are kept rather than rejected.
//!
//! This is the one place that knows WhatsApp's JSON shapes. [`details`] reads
//! a message object's content, reply context and referral; the processor uses
//! it when a webhook arrives, and listing uses it again on the stored object,
//! so what the agent sees is never a second copy that could drift from what
//! WhatsApp sent.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

use crate::content::{
    ButtonReply, ContactCard, ContactPhone, Content, Details, InteractiveReply, Location, Media,
    MediaKind, Order, OrderItem, ReactionContent, Referral, SystemNotice, Unsupported,
};
use crate::domain::{Customer, MessageError};

/// One thing a notification reports, in the order it appears in the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Boxed: a message is several times the size of a status.
    Message(Box<InboundMessage>),
    Status(StatusUpdate),
}

/// A message a customer sent to a business number.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub business_phone_number_id: String,
    pub wamid: String,
    pub customer: Customer,
    /// WhatsApp's type name as sent (`unsupported` when absent).
    pub kind: String,
    /// Text body, caption or a readable summary.
    pub text: String,
    /// What the message object says, read once here.
    pub details: Details,
    pub time: DateTime<Utc>,
    /// The message object exactly as it came.
    pub raw: Value,
}

/// A delivery status of a message the business sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub business_phone_number_id: String,
    pub wamid: String,
    /// As WhatsApp names it: sent, delivered, read, played, failed, or newer ones.
    pub status: String,
    pub recipient_id: String,
    pub time: DateTime<Utc>,
    pub error: Option<MessageError>,
    pub raw: Value,
}

/// Every message and status of a webhook body. `fallback_time` stands in for a
/// missing or unreadable timestamp; passing the inbox row's arrival time keeps
/// reprocessing deterministic. Errors only when the body is not JSON.
pub fn parse(body: &[u8], fallback_time: DateTime<Utc>) -> Result<Vec<Item>, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Ok(Vec::new());
    }
    replace_nul(&mut value);
    let envelope = Envelope::deserialize(value)?;
    let mut items = Vec::new();
    for change in envelope.entry.into_iter().flat_map(|entry| entry.changes) {
        let value = change.value;
        let number = value.metadata.phone_number_id.unwrap_or_default();
        for raw in value.messages {
            match message(&number, &value.contacts, raw, fallback_time) {
                Some(message) => items.push(Item::Message(Box::new(message))),
                None => tracing::warn!("webhook message without an id skipped"),
            }
        }
        for raw in value.statuses {
            match status(&number, raw, fallback_time) {
                Some(status) => items.push(Item::Status(status)),
                None => tracing::warn!("webhook status without an id or status skipped"),
            }
        }
    }
    Ok(items)
}

/// JSON may carry `\u0000` in any string, but PostgreSQL stores NUL in
/// neither text nor JSON, and the services refuse it: it becomes U+FFFD,
/// as a decoder marks what it cannot represent, so the rest is kept.
fn replace_nul(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(fields) => fields.values_mut().for_each(replace_nul),
        _ => {}
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Envelope {
    #[serde(deserialize_with = "lenient_vec")]
    entry: Vec<Entry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Entry {
    #[serde(deserialize_with = "lenient_vec")]
    changes: Vec<Change>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Change {
    #[serde(deserialize_with = "lenient")]
    value: ChangeValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChangeValue {
    #[serde(deserialize_with = "lenient")]
    metadata: Metadata,
    #[serde(deserialize_with = "lenient_vec")]
    contacts: Vec<Contact>,
    #[serde(deserialize_with = "lenient_vec")]
    messages: Vec<Value>,
    #[serde(deserialize_with = "lenient_vec")]
    statuses: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    #[serde(deserialize_with = "text")]
    phone_number_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Contact {
    #[serde(deserialize_with = "text")]
    wa_id: Option<String>,
    #[serde(deserialize_with = "text")]
    user_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    profile: Profile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Profile {
    #[serde(deserialize_with = "text")]
    name: Option<String>,
}

/// The fields every message has, whatever its type.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MessageHead {
    #[serde(deserialize_with = "text")]
    id: Option<String>,
    #[serde(deserialize_with = "text")]
    from: Option<String>,
    #[serde(deserialize_with = "text")]
    from_user_id: Option<String>,
    #[serde(deserialize_with = "text")]
    timestamp: Option<String>,
    #[serde(rename = "type", deserialize_with = "text")]
    kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusHead {
    #[serde(deserialize_with = "text")]
    id: Option<String>,
    #[serde(deserialize_with = "text")]
    status: Option<String>,
    #[serde(deserialize_with = "text")]
    timestamp: Option<String>,
    #[serde(deserialize_with = "text")]
    recipient_id: Option<String>,
}

fn message(
    number: &str,
    contacts: &[Contact],
    raw: Value,
    fallback_time: DateTime<Utc>,
) -> Option<InboundMessage> {
    let head = MessageHead::deserialize(&raw).unwrap_or_default();
    let wamid = head.id.filter(|id| !id.is_empty())?;
    // One change normally carries one customer; match by id anyway, since a
    // batch may carry several.
    let contact = contacts
        .iter()
        .find(|c| head.from.is_some() && c.wa_id == head.from)
        .or_else(|| {
            contacts
                .iter()
                .find(|c| head.from_user_id.is_some() && c.user_id == head.from_user_id)
        })
        .or_else(|| contacts.first());
    let wa_id = contact
        .and_then(|c| c.wa_id.clone())
        .or(head.from)
        .unwrap_or_default();
    let user_id = contact
        .and_then(|c| c.user_id.clone())
        .or(head.from_user_id)
        .unwrap_or_default();
    let name = contact
        .and_then(|c| c.profile.name.clone())
        .unwrap_or_default();
    let kind = head
        .kind
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "unsupported".to_owned());
    let details = details(&kind, &raw);
    Some(InboundMessage {
        business_phone_number_id: number.to_owned(),
        wamid,
        customer: Customer::new(wa_id, user_id, name),
        text: details.content.summary(),
        details,
        kind,
        time: unix_time(head.timestamp.as_deref()).unwrap_or(fallback_time),
        raw,
    })
}

fn status(number: &str, raw: Value, fallback_time: DateTime<Utc>) -> Option<StatusUpdate> {
    let head = StatusHead::deserialize(&raw).unwrap_or_default();
    let wamid = head.id.filter(|id| !id.is_empty())?;
    let status = head.status.filter(|s| !s.is_empty())?;
    let error = errors(Json::new(&raw)).into_iter().next();
    Some(StatusUpdate {
        business_phone_number_id: number.to_owned(),
        wamid,
        status,
        recipient_id: head.recipient_id.unwrap_or_default(),
        time: unix_time(head.timestamp.as_deref()).unwrap_or(fallback_time),
        error,
        raw,
    })
}

fn unix_time(value: Option<&str>) -> Option<DateTime<Utc>> {
    let value = value?.trim();
    let seconds = value.parse::<i64>().ok().or_else(|| {
        value
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })?;
    DateTime::from_timestamp(seconds, 0)
}

/// What a message object says beyond who sent it and when: its content by
/// type, the message it quotes, whether it was forwarded, and the ad it came
/// from. `kind` is the stored type name. Also reads the Graph API's send
/// bodies, whose shapes are the same but for `context.message_id`.
pub fn details(kind: &str, raw: &Value) -> Details {
    let message = Json::new(raw);
    let context = message.at("context");
    let reply_to = [context.text("id"), context.text("message_id")]
        .into_iter()
        .find(|id| !id.is_empty());
    Details {
        content: content(kind, message),
        reply_to,
        forwarded: context.flag("forwarded"),
        frequently_forwarded: context.flag("frequently_forwarded"),
        referral: message.object("referral").map(|r| Referral {
            source_url: r.text("source_url"),
            source_type: r.text("source_type"),
            source_id: r.text("source_id"),
            headline: r.text("headline"),
            body: r.text("body"),
            media_type: r.text("media_type"),
            ctwa_clid: r.text("ctwa_clid"),
        }),
    }
}

/// The content of a message of type `kind`. A type we do not know, or a known
/// type whose object is missing (WhatsApp sends `interactive` messages with
/// no `interactive`), is unsupported: shown as such, never dropped.
fn content(kind: &str, message: Json<'_>) -> Content {
    let known = match kind {
        "text" => message
            .object("text")
            .map(|t| Content::Text(t.text("body"))),
        "location" => message.object("location").map(|l| {
            Content::Location(Location {
                latitude: l.number("latitude"),
                longitude: l.number("longitude"),
                name: l.text("name"),
                address: l.text("address"),
                url: l.text("url"),
            })
        }),
        "contacts" => message
            .objects("contacts")
            .map(|cards| Content::Contacts(cards.map(contact_card).collect())),
        "interactive" => message.object("interactive").and_then(interactive),
        "button" => message.object("button").map(|b| {
            Content::ButtonReply(ButtonReply {
                payload: b.text("payload"),
                text: b.text("text"),
            })
        }),
        "order" => message.object("order").map(|o| {
            Content::Order(Order {
                catalog_id: o.text("catalog_id"),
                text: o.text("text"),
                items: o
                    .objects("product_items")
                    .into_iter()
                    .flatten()
                    .map(|item| OrderItem {
                        product_retailer_id: item.text("product_retailer_id"),
                        quantity: item.count("quantity"),
                        item_price: item.number("item_price"),
                        currency: item.text("currency"),
                    })
                    .collect(),
            })
        }),
        "system" => message.object("system").map(|s| {
            Content::System(SystemNotice {
                kind: s.text("type"),
                body: s.text("body"),
                // `wa_id` today; `new_wa_id` in older payloads.
                new_wa_id: [s.text("wa_id"), s.text("new_wa_id")]
                    .into_iter()
                    .find(|id| !id.is_empty())
                    .unwrap_or_default(),
            })
        }),
        "reaction" => message.object("reaction").map(|r| {
            Content::Reaction(ReactionContent {
                target_wamid: r.text("message_id"),
                emoji: r.text("emoji"),
            })
        }),
        other => MediaKind::parse(other).and_then(|media_kind| {
            message.object(other).map(|m| {
                Content::Media(Media {
                    kind: media_kind,
                    whatsapp_media_id: m.text("id"),
                    mime_type: m.text("mime_type"),
                    sha256: m.text("sha256"),
                    caption: m.text("caption"),
                    filename: m.text("filename"),
                    url: m.text("url"),
                    voice: m.flag("voice"),
                    animated: m.flag("animated"),
                })
            })
        }),
    };
    known.unwrap_or_else(|| {
        Content::Unsupported(Unsupported {
            kind: kind.to_owned(),
            errors: errors(message),
        })
    })
}

fn contact_card(card: Json<'_>) -> ContactCard {
    let name = card.at("name");
    let formatted_name = match name.text("formatted_name") {
        formatted if !formatted.trim().is_empty() => formatted,
        _ => [name.text("first_name"), name.text("last_name")]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    };
    ContactCard {
        formatted_name,
        phones: card
            .objects("phones")
            .into_iter()
            .flatten()
            .map(|p| ContactPhone {
                phone: p.text("phone"),
                label: p.text("type"),
                wa_id: p.text("wa_id"),
            })
            .collect(),
        emails: card
            .objects("emails")
            .into_iter()
            .flatten()
            .map(|e| e.text("email"))
            .filter(|e| !e.is_empty())
            .collect(),
        organization: card.at("org").text("company"),
    }
}

/// `{"type": "button_reply", "button_reply": {...}}` and its kin. A reply
/// kind WhatsApp adds later is kept under its name, read the same way.
fn interactive(interactive: Json<'_>) -> Option<Content> {
    let kind = interactive.text("type");
    let reply = interactive.object(&kind)?;
    // A flow's answer (nfm_reply) has a body and a name instead of a title.
    let title = [reply.text("title"), reply.text("body"), reply.text("name")]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    Some(Content::InteractiveReply(InteractiveReply {
        id: reply.text("id"),
        title,
        description: reply.text("description"),
        response_json: reply.json_text("response_json"),
        kind,
    }))
}

/// `errors[]` of a message or status: Graph API errors.
fn errors(owner: Json<'_>) -> Vec<MessageError> {
    owner
        .objects("errors")
        .into_iter()
        .flatten()
        .map(|e| {
            let message = e.text("message");
            let or_message = |s: String| if s.is_empty() { message.clone() } else { s };
            MessageError {
                code: e.text("code").trim().parse().unwrap_or_default(),
                title: or_message(e.text("title")),
                detail: or_message(e.at("error_data").text("details")),
            }
        })
        .collect()
}

/// Lenient reads of a JSON value: a missing key, or a value of another shape
/// than expected, reads as empty rather than failing the message.
#[derive(Clone, Copy)]
struct Json<'a>(Option<&'a Value>);

impl<'a> Json<'a> {
    fn new(value: &'a Value) -> Self {
        Self(Some(value))
    }

    fn at(self, key: &str) -> Self {
        Self(self.0.and_then(|v| v.get(key)))
    }

    /// The object under `key`, if it is one.
    fn object(self, key: &str) -> Option<Self> {
        self.at(key).0.filter(|v| v.is_object()).map(Self::new)
    }

    /// The objects in the array under `key`, if it is one (other elements
    /// are skipped: every list WhatsApp sends in a message is of objects).
    fn objects(self, key: &str) -> Option<impl Iterator<Item = Json<'a>>> {
        self.at(key)
            .0
            .and_then(Value::as_array)
            .map(|items| items.iter().filter(|item| item.is_object()).map(Self::new))
    }

    /// A string, or a number written as one; empty otherwise.
    fn text(self, key: &str) -> String {
        self.at(key).0.and_then(as_text).unwrap_or_default()
    }

    /// A string as it is; any other JSON value as its JSON text.
    fn json_text(self, key: &str) -> String {
        match self.at(key).0 {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    fn flag(self, key: &str) -> bool {
        match self.at(key).0 {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }

    /// A finite number (or a string holding one); 0 otherwise.
    fn number(self, key: &str) -> f64 {
        let value = match self.at(key).0 {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        value.filter(|f| f.is_finite()).unwrap_or_default()
    }

    /// A whole count, clamped to what a `u32` holds.
    fn count(self, key: &str) -> u32 {
        // `as` saturates: negative → 0, huge → u32::MAX.
        self.number(key).round() as u32
    }
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An object of the expected shape, or the default when Meta sent another
/// shape. Only an object is read: serde would also fill a struct from an
/// array, by position, which Meta never means.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(Some(value)
        .filter(Value::is_object)
        .and_then(|v| T::deserialize(v).ok())
        .unwrap_or_default())
}

/// The objects of an array that have the expected shape; a non-array is
/// empty. Every list in a notification is of objects.
fn lenient_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Array(values) => values
            .into_iter()
            .filter(Value::is_object)
            .filter_map(|v| T::deserialize(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// A string, or a number written as one (Meta has sent timestamps and ids both ways).
fn text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(as_text(&Value::deserialize(deserializer)?))
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/whatsapp");

    fn fallback() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn parse_fixture(name: &str) -> Vec<Item> {
        let body = std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture");
        parse(&body, fallback()).expect("parses")
    }

    fn messages(items: &[Item]) -> Vec<&InboundMessage> {
        items
            .iter()
            .filter_map(|i| {
                if let Item::Message(m) = i {
                    Some(m.as_ref())
                } else {
                    None
                }
            })
            .collect()
    }

    fn statuses(items: &[Item]) -> Vec<&StatusUpdate> {
        items
            .iter()
            .filter_map(|i| {
                if let Item::Status(s) = i {
                    Some(s)
                } else {
                    None
                }
            })
            .collect()
    }

    /// (file, type, text) for every fixture holding one message from the pywa customer.
    const SINGLE_MESSAGES: &[(&str, &str, &str)] = &[
        ("inbound_audio_voice.json", "audio", "[voice note]"),
        (
            "inbound_button_template_quick_reply.json",
            "button",
            "title",
        ),
        (
            "inbound_contacts.json",
            "contacts",
            "👤 Chandler Bing, Monica, Rachel Green",
        ),
        ("inbound_document.json", "document", "caption"),
        ("inbound_image.json", "image", "[image]"),
        ("inbound_image_with_url.json", "image", "[image]"),
        (
            "inbound_interactive_button_reply.json",
            "interactive",
            "title",
        ),
        (
            "inbound_interactive_list_reply.json",
            "interactive",
            "title",
        ),
        (
            "inbound_interactive_without_body.json",
            "interactive",
            "[unsupported message: interactive]",
        ),
        (
            "inbound_location_current.json",
            "location",
            "📍 12.25089, 43.90539",
        ),
        (
            "inbound_location_named.json",
            "location",
            "📍 Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025",
        ),
        ("inbound_order.json", "order", "🛒 order, 3 items"),
        ("inbound_reaction.json", "reaction", "😮"),
        (
            "inbound_reaction_removed.json",
            "reaction",
            "[reaction removed]",
        ),
        ("inbound_sticker_animated.json", "sticker", "[sticker]"),
        (
            "inbound_system_identity_change.json",
            "system",
            "User identity changed",
        ),
        ("inbound_text.json", "text", "Body Text"),
        ("inbound_text_ctwa_referral.json", "text", "BODY"),
        ("inbound_text_reply_context.json", "text", "replied text"),
        (
            "inbound_unsupported.json",
            "unsupported",
            "[unsupported message]",
        ),
        ("inbound_video_forwarded.json", "video", "caption"),
    ];

    /// (file, status, wamid, error code)
    const SINGLE_STATUSES: &[(&str, &str, &str, Option<i64>)] = &[
        ("status_sent.json", "sent", "wamid.xyzxyz", None),
        ("status_delivered.json", "delivered", "wamid.xyzxyz", None),
        ("status_read.json", "read", "wamid.xyzxyz", None),
        ("status_failed.json", "failed", "wamid.xyzxyz", Some(130472)),
        (
            "status_failed_131053_netflie.json",
            "failed",
            "amid.ID",
            Some(131053),
        ),
    ];

    const OTHERS: &[&str] = &[
        "inbound_text_bsuid_only_netflie.json",
        "multi_change_batch_netflie.json",
        "signed_inbound_text_pywa.json",
    ];

    #[test]
    fn nul_anywhere_becomes_the_replacement_character() {
        let body = json!({"entry": [{"changes": [{"value": {
            "metadata": {"phone_number_id": "1122334455667"},
            "contacts": [{"profile": {"name": "Ana\u{0}"}, "wa_id": "5491100000000"}],
            "messages": [{"from": "5491100000000", "id": "wamid.1", "timestamp": "1700000000",
                "type": "text", "text": {"body": "a\u{0}b"}}]
        }}]}]});
        let items = parse(body.to_string().as_bytes(), fallback()).expect("parses");
        let message = messages(&items)[0];
        assert_eq!(message.text, "a\u{FFFD}b");
        assert_eq!(message.customer.name, "Ana\u{FFFD}");
        assert!(
            !message.raw.to_string().contains("\\u0000"),
            "{}",
            message.raw
        );
    }

    #[test]
    fn every_fixture_is_covered_by_a_parser_test() {
        for entry in std::fs::read_dir(FIXTURES).expect("fixtures dir") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if !name.ends_with(".json") {
                continue;
            }
            let covered = SINGLE_MESSAGES.iter().any(|(f, ..)| *f == name)
                || SINGLE_STATUSES.iter().any(|(f, ..)| *f == name)
                || OTHERS.contains(&name.as_str());
            assert!(covered, "{name} has no expectations here");
        }
    }

    #[test]
    fn each_message_fixture_yields_one_message_of_its_type() {
        for (file, kind, text) in SINGLE_MESSAGES {
            let items = parse_fixture(file);
            assert_eq!(items.len(), 1, "{file}");
            let message = messages(&items)[0];
            assert_eq!(message.kind, *kind, "{file}");
            assert_eq!(message.text, *text, "{file}");
            assert_eq!(message.business_phone_number_id, "1122334455667", "{file}");
            assert_eq!(message.customer.id, "972987654321", "{file}");
            assert_eq!(message.customer.wa_id, "972987654321", "{file}");
            assert!(message.wamid.starts_with("wamid."), "{file}");
            assert_ne!(message.time, fallback(), "{file}: the timestamp is read");
            assert_eq!(
                message.raw["type"], *kind,
                "{file}: the raw message is kept"
            );
        }
    }

    #[test]
    fn customers_carry_name_and_business_scoped_id() {
        let items = parse_fixture("inbound_text.json");
        let customer = &messages(&items)[0].customer;
        assert_eq!(customer.name, "Test Name");
        assert_eq!(customer.user_id, "US.13491208655302741918");
        let items = parse_fixture("inbound_system_identity_change.json");
        assert_eq!(
            messages(&items)[0].customer.user_id,
            "",
            "no user_id in this payload"
        );
    }

    #[test]
    fn a_customer_known_only_by_user_id_is_keyed_by_it() {
        let items = parse_fixture("inbound_text_bsuid_only_netflie.json");
        let message = messages(&items)[0];
        assert_eq!(message.customer.id, "BSUID_123");
        assert_eq!(message.customer.wa_id, "");
        assert_eq!(message.customer.user_id, "BSUID_123");
        assert_eq!(message.customer.name, "NAME");
        assert_eq!(message.text, "MESSAGE_BODY");
    }

    #[test]
    fn a_batch_yields_every_change_in_order() {
        let items = parse_fixture("multi_change_batch_netflie.json");
        let texts: Vec<&str> = messages(&items).iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["MESSAGE_BODY", "MESSAGE_BODY2"]);
        assert!(
            messages(&items)
                .iter()
                .all(|m| m.business_phone_number_id == "PHONE_NUMBER_ID")
        );
        assert!(
            messages(&items)
                .iter()
                .all(|m| m.customer.id == "PHONE_NUMBER")
        );
    }

    #[test]
    fn the_signed_fixture_is_a_text_from_pywa() {
        let items = parse_fixture("signed_inbound_text_pywa.json");
        let message = messages(&items)[0];
        assert_eq!(message.text, "Hey there! I am using PyWa.");
        assert_eq!(message.business_phone_number_id, "277321005464405");
        assert_eq!(message.customer.id, "972544401243");
        assert_eq!(message.customer.name, "PyWa Tests");
        assert_eq!(message.time.timestamp(), 1_730_231_903);
    }

    #[test]
    fn each_status_fixture_yields_one_status() {
        for (file, status, wamid, code) in SINGLE_STATUSES {
            let items = parse_fixture(file);
            assert_eq!(items.len(), 1, "{file}");
            let update = statuses(&items)[0];
            assert_eq!(update.status, *status, "{file}");
            assert_eq!(update.wamid, *wamid, "{file}");
            assert_eq!(update.error.as_ref().map(|e| e.code), *code, "{file}");
        }
        let items = parse_fixture("status_failed.json");
        let error = statuses(&items)[0].error.clone().expect("error");
        assert_eq!(error.title, "User's number is part of an experiment");
        assert!(
            error.detail.starts_with("Failed to send message"),
            "{}",
            error.detail
        );
    }

    #[test]
    fn numbers_and_strings_are_both_accepted() {
        let body = br#"{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":123},
            "contacts":[{"wa_id":5491,"profile":{"name":"Ana"}}],
            "messages":[{"id":"wamid.1","from":5491,"timestamp":1697043223,"type":"text","text":{"body":"hola"}}],
            "statuses":[{"id":"wamid.0","status":"read","timestamp":"1697043224"}]}}]}]}"#;
        let items = parse(body, fallback()).expect("parses");
        let message = messages(&items)[0];
        assert_eq!(message.business_phone_number_id, "123");
        assert_eq!(message.customer.id, "5491");
        assert_eq!(message.time.timestamp(), 1_697_043_223);
        assert_eq!(statuses(&items)[0].time.timestamp(), 1_697_043_224);
    }

    #[test]
    fn unknown_types_and_odd_shapes_are_kept_not_rejected() {
        let body = br#"{"entry":[{"changes":[{"value":{"metadata":"odd","contacts":"odd",
            "messages":[{"id":"wamid.2","type":"hologram","hologram":{}},{"type":"text"},"odd"]}}]},
            {"changes":"odd"}]}"#;
        let items = parse(body, fallback()).expect("parses");
        assert_eq!(items.len(), 1, "the message without an id cannot be stored");
        let message = messages(&items)[0];
        assert_eq!(message.kind, "hologram");
        assert_eq!(message.text, "[unsupported message: hologram]");
        assert_eq!(message.customer.id, "", "no customer is required");
        assert_eq!(message.time, fallback(), "missing timestamp → arrival time");
        for body in [&b"[]"[..], b"{}", b"\"x\"", br#"{"entry":"x"}"#] {
            assert_eq!(parse(body, fallback()).expect("parses"), Vec::new());
        }
        assert!(parse(b"{", fallback()).is_err());
    }

    fn details_of(file: &str) -> Details {
        messages(&parse_fixture(file))[0].details.clone()
    }

    fn media_of(file: &str) -> Media {
        match details_of(file).content {
            Content::Media(media) => media,
            other => panic!("{file}: expected media, got {other:?}"),
        }
    }

    #[test]
    fn media_messages_describe_their_file() {
        let voice = media_of("inbound_audio_voice.json");
        assert_eq!(voice.kind, MediaKind::Audio);
        assert!(voice.voice);
        assert_eq!(voice.mime_type, "audio/ogg; codecs=opus");
        assert_eq!(voice.whatsapp_media_id, "1234567890987654321");
        assert_eq!(voice.sha256, "m04pFf2ERdaopTyFkGPA0+bX3i+YY2dYgVFwOgDLSDI=");
        let document = media_of("inbound_document.json");
        assert_eq!(
            (
                document.kind,
                document.caption.as_str(),
                document.filename.as_str()
            ),
            (MediaKind::Document, "caption", "filename.pdf")
        );
        assert_eq!(document.mime_type, "application/pdf");
        let sticker = media_of("inbound_sticker_animated.json");
        assert!(sticker.animated && sticker.kind == MediaKind::Sticker);
        let image = media_of("inbound_image_with_url.json");
        assert_eq!(image.kind, MediaKind::Image);
        assert!(image.url.starts_with("https://lookaside.fbsbx.com/"));
        assert_eq!(media_of("inbound_image.json").url, "");
        let video = media_of("inbound_video_forwarded.json");
        assert_eq!(
            (video.kind, video.caption.as_str()),
            (MediaKind::Video, "caption")
        );
    }

    #[test]
    fn locations_contacts_and_orders_are_read_whole() {
        let Content::Location(named) = details_of("inbound_location_named.json").content else {
            panic!("location")
        };
        assert_eq!(named.latitude, 37.4611978);
        assert_eq!(named.longitude, -122.2164385);
        assert_eq!(named.name, "Facebook HQ");
        assert_eq!(named.address, "1 Hacker Way, Menlo Park, CA 94025");
        assert_eq!(
            named.url,
            "https://maps.google.com/?cid=2000000000000000000"
        );

        let Content::Contacts(cards) = details_of("inbound_contacts.json").content else {
            panic!("contacts")
        };
        assert_eq!(cards.len(), 3);
        assert_eq!(cards[0].formatted_name, "Chandler Bing");
        assert_eq!(
            cards[0].phones,
            [ContactPhone {
                phone: "+1 555-555-5555".into(),
                label: "CELL".into(),
                wa_id: "972987654321".into()
            }]
        );
        assert_eq!(cards[2].phones[0].label, "WORK");

        let Content::Order(order) = details_of("inbound_order.json").content else {
            panic!("order")
        };
        assert_eq!(order.catalog_id, "354160437058781");
        assert_eq!(order.items.len(), 3);
        assert_eq!(
            order.items[1],
            OrderItem {
                product_retailer_id: "FRENCH_FRIES".into(),
                quantity: 2,
                item_price: 35.0,
                currency: "ILS".into()
            }
        );
    }

    #[test]
    fn replies_to_buttons_lists_and_templates_say_what_was_chosen() {
        let reply = |kind: &str, description: &str| {
            Content::InteractiveReply(InteractiveReply {
                kind: kind.into(),
                id: "callback_data".into(),
                title: "title".into(),
                description: description.into(),
                response_json: String::new(),
            })
        };
        assert_eq!(
            details_of("inbound_interactive_button_reply.json").content,
            reply("button_reply", "")
        );
        assert_eq!(
            details_of("inbound_interactive_list_reply.json").content,
            reply("list_reply", "description")
        );
        assert_eq!(
            details_of("inbound_button_template_quick_reply.json").content,
            Content::ButtonReply(ButtonReply {
                payload: "callback_data".into(),
                text: "title".into()
            })
        );
        // A flow's answer: its JSON kept as text for the agent's screen.
        let flow = json!({"type": "interactive", "interactive": {"type": "nfm_reply",
            "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{\"a\":1}"}}});
        assert_eq!(
            details("interactive", &flow).content,
            Content::InteractiveReply(InteractiveReply {
                kind: "nfm_reply".into(),
                title: "Sent".into(),
                response_json: "{\"a\":1}".into(),
                ..InteractiveReply::default()
            })
        );
    }

    #[test]
    fn system_reaction_and_unsupported_messages_keep_what_matters() {
        assert_eq!(
            details_of("inbound_system_identity_change.json").content,
            Content::System(SystemNotice {
                kind: "customer_identity_changed".into(),
                body: "User identity changed".into(),
                new_wa_id: String::new()
            })
        );
        let changed =
            json!({"system": {"type": "user_changed_number", "body": "changed", "wa_id": "5491"}});
        let Content::System(notice) = details("system", &changed).content else {
            panic!("system")
        };
        assert_eq!(notice.new_wa_id, "5491");

        assert_eq!(
            details_of("inbound_reaction.json").content,
            Content::Reaction(ReactionContent {
                target_wamid: "wamid.yzxyzx=".into(),
                emoji: "😮".into()
            })
        );
        assert_eq!(
            details_of("inbound_reaction_removed.json").content,
            Content::Reaction(ReactionContent {
                target_wamid: "wamid.yzxyzx=".into(),
                emoji: String::new()
            })
        );
        assert_eq!(
            details_of("inbound_unsupported.json").content,
            Content::Unsupported(Unsupported {
                kind: "unsupported".into(),
                errors: vec![MessageError {
                    code: 131051,
                    title: "Message type unknown".into(),
                    detail: "Message type is currently not supported.".into()
                }]
            })
        );
        // No `interactive` object: nothing to show but that it came.
        assert_eq!(
            details_of("inbound_interactive_without_body.json").content,
            Content::Unsupported(Unsupported {
                kind: "interactive".into(),
                errors: Vec::new()
            })
        );
        let poll = json!({"type": "poll", "poll": {"question": "?"}});
        assert_eq!(
            details("poll", &poll).content,
            Content::Unsupported(Unsupported {
                kind: "poll".into(),
                errors: Vec::new()
            })
        );
    }

    #[test]
    fn reply_context_forwarding_and_referral_are_read() {
        let reply = details_of("inbound_text_reply_context.json");
        assert_eq!(reply.reply_to.as_deref(), Some("wamid.xyzxyz=="));
        assert!(!reply.forwarded);
        assert_eq!(reply.content, Content::Text("replied text".into()));

        let forwarded = details_of("inbound_video_forwarded.json");
        assert!(forwarded.forwarded && !forwarded.frequently_forwarded);
        assert_eq!(forwarded.reply_to, None, "a forward quotes nothing");

        let referral = details_of("inbound_text_ctwa_referral.json")
            .referral
            .expect("referral");
        assert_eq!(
            referral,
            Referral {
                source_url: "AD_OR_POST_FB_URL".into(),
                source_type: "ad or post".into(),
                source_id: "ADID".into(),
                headline: "AD_TITLE".into(),
                body: "AD_DESCRIPTION".into(),
                media_type: "image or video".into(),
                ctwa_clid: "CTWA_CLID".into(),
            }
        );
        assert_eq!(details_of("inbound_text.json").referral, None);

        let often = json!({"context": {"forwarded": true, "frequently_forwarded": true}});
        assert!(details("text", &often).frequently_forwarded);
        // The Graph API's send body names the quoted message `message_id`.
        let sent =
            json!({"type": "text", "text": {"body": "hi"}, "context": {"message_id": "wamid.q"}});
        assert_eq!(details("text", &sent).reply_to.as_deref(), Some("wamid.q"));
    }

    #[test]
    fn odd_shapes_inside_a_message_read_as_empty() {
        let odd = json!({"type": "location", "location": {"latitude": "12.5", "longitude": {"x": 1},
            "name": 7}, "context": "odd", "referral": [1]});
        let details = details("location", &odd);
        let Content::Location(location) = details.content else {
            panic!("location")
        };
        assert_eq!(
            (
                location.latitude,
                location.longitude,
                location.name.as_str()
            ),
            (12.5, 0.0, "7")
        );
        assert_eq!((details.reply_to, details.referral), (None, None));
        let order =
            json!({"order": {"product_items": [{"quantity": -3}, {"quantity": 1e12}, "x"]}});
        let Content::Order(order) = super::details("order", &order).content else {
            panic!("order")
        };
        let quantities: Vec<u32> = order.items.iter().map(|i| i.quantity).collect();
        assert_eq!(quantities, [0, u32::MAX], "non-objects are no items");
    }
}
