//! Reading Meta's webhook notifications, leniently: every field is optional,
//! numbers and strings are interchangeable where Meta has sent both, unknown
//! fields and message types are kept rather than rejected.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

use crate::domain::{Customer, MessageError};

/// One thing a notification reports, in the order it appears in the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Message(InboundMessage),
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
    let value: Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Ok(Vec::new());
    }
    let envelope = Envelope::deserialize(value)?;
    let mut items = Vec::new();
    for change in envelope.entry.into_iter().flat_map(|entry| entry.changes) {
        let value = change.value;
        let number = value.metadata.phone_number_id.unwrap_or_default();
        for raw in value.messages {
            match message(&number, &value.contacts, raw, fallback_time) {
                Some(message) => items.push(Item::Message(message)),
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
    #[serde(deserialize_with = "lenient_vec")]
    errors: Vec<GraphErrorEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GraphErrorEntry {
    #[serde(deserialize_with = "text")]
    code: Option<String>,
    #[serde(deserialize_with = "text")]
    title: Option<String>,
    #[serde(deserialize_with = "text")]
    message: Option<String>,
    #[serde(deserialize_with = "lenient")]
    error_data: ErrorData,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorData {
    #[serde(deserialize_with = "text")]
    details: Option<String>,
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
    Some(InboundMessage {
        business_phone_number_id: number.to_owned(),
        wamid,
        customer: Customer::new(wa_id, user_id, name),
        text: summary(&kind, &raw),
        kind,
        time: unix_time(head.timestamp.as_deref()).unwrap_or(fallback_time),
        raw,
    })
}

fn status(number: &str, raw: Value, fallback_time: DateTime<Utc>) -> Option<StatusUpdate> {
    let head = StatusHead::deserialize(&raw).unwrap_or_default();
    let wamid = head.id.filter(|id| !id.is_empty())?;
    let status = head.status.filter(|s| !s.is_empty())?;
    let error = head.errors.into_iter().next().map(|e| MessageError {
        code: e.code.and_then(|c| c.parse().ok()).unwrap_or_default(),
        detail: e
            .error_data
            .details
            .or_else(|| e.message.clone())
            .unwrap_or_default(),
        title: e.title.or(e.message).unwrap_or_default(),
    });
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

/// What an agent reads for a message: its text, its caption, or a short
/// description of what it is.
pub fn summary(kind: &str, raw: &Value) -> String {
    let str_at = |pointer: &str| {
        raw.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let captioned =
        |label: &str| str_at(&format!("/{kind}/caption")).unwrap_or_else(|| format!("[{label}]"));
    match kind {
        "text" => str_at("/text/body").unwrap_or_default(),
        "image" => captioned("image"),
        "video" => captioned("video"),
        "document" => str_at("/document/caption")
            .or_else(|| str_at("/document/filename").map(|f| format!("📄 {f}")))
            .unwrap_or_else(|| "[document]".to_owned()),
        "audio" => {
            let voice = raw
                .pointer("/audio/voice")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if voice { "[voice note]" } else { "[audio]" }.to_owned()
        }
        "sticker" => "[sticker]".to_owned(),
        "location" => {
            let place: Vec<String> = [str_at("/location/name"), str_at("/location/address")]
                .into_iter()
                .flatten()
                .collect();
            if place.is_empty() {
                let coordinate = |p: &str| raw.pointer(p).map(Value::to_string).unwrap_or_default();
                format!(
                    "📍 {}, {}",
                    coordinate("/location/latitude"),
                    coordinate("/location/longitude")
                )
            } else {
                format!("📍 {}", place.join(", "))
            }
        }
        "contacts" => {
            let names: Vec<&str> = raw
                .get("contacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.pointer("/name/formatted_name").and_then(Value::as_str))
                .collect();
            if names.is_empty() {
                "[contacts]".to_owned()
            } else {
                format!("👤 {}", names.join(", "))
            }
        }
        "interactive" => str_at("/interactive/button_reply/title")
            .or_else(|| str_at("/interactive/list_reply/title"))
            .or_else(|| str_at("/interactive/nfm_reply/body"))
            .or_else(|| str_at("/interactive/nfm_reply/name"))
            .unwrap_or_else(|| "[interactive]".to_owned()),
        "button" => str_at("/button/text")
            .or_else(|| str_at("/button/payload"))
            .unwrap_or_else(|| "[button]".to_owned()),
        "reaction" => str_at("/reaction/emoji").unwrap_or_else(|| "[reaction removed]".to_owned()),
        "order" => {
            let items = raw
                .pointer("/order/product_items")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            match str_at("/order/text") {
                Some(text) => format!("🛒 order, {items} items: {text}"),
                None => format!("🛒 order, {items} items"),
            }
        }
        "system" => str_at("/system/body").unwrap_or_else(|| "[system message]".to_owned()),
        "unsupported" => "[unsupported message]".to_owned(),
        other => format!("[unsupported message: {other}]"),
    }
}

/// A value of the expected shape, or its default when Meta sent another shape.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// The elements of an array that have the expected shape; a non-array is empty.
fn lenient_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Array(values) => values
            .into_iter()
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
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
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
                    Some(m)
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
            "[interactive]",
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
}
