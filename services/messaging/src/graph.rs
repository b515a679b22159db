//! The Cloud API (Graph API) client: sending messages and read receipts, paced
//! per business number, with every answer sorted into "sent", "refused" (for
//! good) or "temporary trouble" (try again later). Also the JSON of a send,
//! which is what an outbound message stores. Media calls are in
//! `crate::media::graph`, on the same client.

use std::num::NonZeroU32;
use std::time::Duration;

use atenciones_runtime::settings::WhatsAppSettings;
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::domain::MessageError;
use crate::outbound::{Media, MediaKind, OutboundBody, Template};

/// Throughput (130429), pair rate (131056) and Graph API call-rate (4, 80007)
/// limits: WhatsApp asks to wait and try again.
const RATE_LIMIT_CODES: [i64; 4] = [4, 80007, 130429, 131056];
/// WhatsApp's "unknown" and "service unavailable" errors: temporary by Meta's
/// own advice (retry with backoff).
const TEMPORARY_CODES: [i64; 4] = [1, 2, 131000, 131016];

/// Why a call did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// WhatsApp refused it: trying again will not help.
    Refused(MessageError),
    /// Rate limits, network errors, timeouts, server errors: worth another try.
    Temporary(Trouble),
}

/// Temporary trouble, described for the agent (no URLs, no tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trouble {
    pub reason: String,
    /// WhatsApp's error, when it gave one.
    pub error: Option<MessageError>,
}

impl Trouble {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            error: None,
        }
    }
}

pub struct Graph {
    http: reqwest::Client,
    base_url: String,
    version: String,
    access_token: String,
    timeout: Duration,
    /// One GCRA bucket per business number: WhatsApp's throughput limit is per
    /// number. Burst 1 spaces calls evenly, so no second ever holds more than
    /// the configured number of calls (a full burst would allow nearly twice).
    pacer: DefaultKeyedRateLimiter<String>,
}

impl Graph {
    /// Builds the one HTTP client (connection pool) of the process.
    pub fn new(settings: &WhatsAppSettings) -> Result<Self, reqwest::Error> {
        // reqwest is built without a default TLS provider; ring is the one the
        // workspace uses. Installing twice is harmless (the first one stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = settings.request_timeout();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // A hung call would hold its message's lease; give up and retry instead.
            .timeout(timeout)
            .build()?;
        let quota = Quota::per_second(settings.messages_per_second).allow_burst(NonZeroU32::MIN);
        Ok(Self {
            http,
            base_url: settings.api_base_url.trim_end_matches('/').to_owned(),
            version: settings.api_version.trim_matches('/').to_owned(),
            access_token: settings.access_token.clone(),
            timeout,
            pacer: RateLimiter::keyed(quota),
        })
    }

    /// Sends `body` (see [`message_body`]) from the business number; returns
    /// the wamid WhatsApp gave it.
    pub async fn send(&self, phone_number_id: &str, body: &Value) -> Result<String, SendError> {
        let answer = self.post(phone_number_id, body).await?;
        serde_json::from_slice::<SendResponse>(&answer)
            .ok()
            .and_then(|r| r.messages.into_iter().next())
            .map(|m| m.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                SendError::Temporary(Trouble::new("WhatsApp answered without a message id"))
            })
    }

    /// Tells WhatsApp the business read the customer's message `wamid` (and,
    /// WhatsApp's rule, every earlier one of the conversation).
    pub async fn mark_read(&self, phone_number_id: &str, wamid: &str) -> Result<(), SendError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        });
        self.post(phone_number_id, &body).await.map(drop)
    }

    /// POSTs to `/{number}/messages` once the number's pace allows, and
    /// returns the body of a 2xx answer.
    async fn post(&self, phone_number_id: &str, body: &Value) -> Result<Bytes, SendError> {
        self.pacer
            .until_key_ready(&phone_number_id.to_owned())
            .await;
        let url = self.url(&format!("{phone_number_id}/messages"));
        self.call(self.request(Method::POST, &url).json(body), &url)
            .await
    }

    /// `<base>/<version>/<path>`: the URL of a Graph API call.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}/{}", self.base_url, self.version, path)
    }

    /// A request to `url` (a Graph API URL, or a media URL it handed out)
    /// carrying the access token. Media transfers pass their own timeout.
    pub(crate) fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.access_token)
    }

    /// Sends `request` and returns the body of a 2xx answer; any other answer
    /// is sorted by [`classify`].
    pub(crate) async fn call(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Bytes, SendError> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%url, %error, "Cloud API call failed");
                return Err(SendError::Temporary(self.network_trouble(&error)));
            }
        };
        let status = response.status();
        let answer = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%url, %error, "Cloud API answer not read");
                return Err(SendError::Temporary(self.network_trouble(&error)));
            }
        };
        if status.is_success() {
            Ok(answer)
        } else {
            Err(classify(status, &answer))
        }
    }

    fn network_trouble(&self, error: &reqwest::Error) -> Trouble {
        if error.is_timeout() {
            Trouble::new(format!(
                "WhatsApp did not answer within {} ms",
                self.timeout.as_millis()
            ))
        } else if error.is_connect() {
            Trouble::new("WhatsApp could not be reached")
        } else {
            Trouble::new("the connection to WhatsApp failed")
        }
    }
}

/// Sorts a non-2xx answer: rate limits, server errors and WhatsApp's
/// temporary codes are worth another try; any other Graph error is final.
pub(crate) fn classify(status: StatusCode, answer: &[u8]) -> SendError {
    let error = serde_json::from_slice::<ErrorResponse>(answer)
        .ok()
        .map(|r| MessageError::from(r.error));
    let code = error.as_ref().map(|e| e.code);
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || code.is_some_and(|c| RATE_LIMIT_CODES.contains(&c));
    let temporary = status.is_server_error() || code.is_some_and(|c| TEMPORARY_CODES.contains(&c));
    match error {
        Some(error) if !rate_limited && !temporary => SendError::Refused(error),
        error => {
            let reason = match (&error, rate_limited) {
                (Some(e), true) => format!("WhatsApp is rate-limiting: {e}"),
                (None, true) => format!("WhatsApp is rate-limiting (HTTP {})", status.as_u16()),
                (Some(e), false) => format!("WhatsApp failed: {e}"),
                // A 4xx that is not the Graph API talking (a proxy, a wrong base
                // URL): nothing was sent, so trying again is safe.
                (None, false) => format!("WhatsApp answered HTTP {}", status.as_u16()),
            };
            SendError::Temporary(Trouble { reason, error })
        }
    }
}

/// The body of a send as the Cloud API takes it. It is stored with the
/// message, so every try, even after a restart, sends exactly the same thing.
/// `callback` comes back in status webhooks (`biz_opaque_callback_data`): the
/// message's id, which ties a delivery report to it even before its wamid is known.
pub fn message_body(
    to: &str,
    body: &OutboundBody,
    reply_to_wamid: Option<&str>,
    callback: &str,
) -> Value {
    let object = match body {
        OutboundBody::Text { body, preview_url } => {
            json!({ "body": body, "preview_url": preview_url })
        }
        OutboundBody::Template(template) => template_object(template),
        OutboundBody::Reaction {
            target_wamid,
            emoji,
        } => json!({ "message_id": target_wamid, "emoji": emoji }),
        OutboundBody::Media(media) => media_object(media),
    };
    let mut request = Map::new();
    request.insert("messaging_product".into(), "whatsapp".into());
    request.insert("recipient_type".into(), "individual".into());
    request.insert("to".into(), to.into());
    request.insert("type".into(), body.kind().into());
    request.insert(body.kind().into(), object);
    if let Some(wamid) = reply_to_wamid {
        request.insert("context".into(), json!({ "message_id": wamid }));
    }
    request.insert("biz_opaque_callback_data".into(), callback.into());
    Value::Object(request)
}

fn template_object(template: &Template) -> Value {
    let mut object = json!({
        "name": template.name,
        "language": { "code": template.language },
    });
    if !template.body_parameters.is_empty() {
        let parameters: Vec<Value> = template
            .body_parameters
            .iter()
            .map(|text| json!({ "type": "text", "text": text }))
            .collect();
        object["components"] = json!([{ "type": "body", "parameters": parameters }]);
    }
    object
}

fn media_object(media: &Media) -> Value {
    let mut object = json!({ "id": media.whatsapp_media_id });
    // WhatsApp refuses a caption on audio and stickers, and a file name on
    // anything but documents.
    let captioned = matches!(
        media.kind,
        MediaKind::Image | MediaKind::Video | MediaKind::Document
    );
    if captioned && !media.caption.is_empty() {
        object["caption"] = media.caption.as_str().into();
    }
    if media.kind == MediaKind::Document && !media.filename.is_empty() {
        object["filename"] = media.filename.as_str().into();
    }
    object
}

/// What a stored send body says: its content and the wamid it replies to.
/// The inverse of [`message_body`], for showing sent messages.
pub fn read_message_body(body: &Value) -> Option<(OutboundBody, Option<String>)> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let kind = body["type"].as_str()?;
    let object = &body[kind];
    let content = match kind {
        "text" => OutboundBody::Text {
            body: text(&object["body"]),
            preview_url: object["preview_url"].as_bool().unwrap_or_default(),
        },
        "template" => OutboundBody::Template(Template {
            name: text(&object["name"]),
            language: text(&object["language"]["code"]),
            body_parameters: object["components"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["type"] == "body")
                .flat_map(|c| c["parameters"].as_array().into_iter().flatten())
                .map(|p| text(&p["text"]))
                .collect(),
        }),
        "reaction" => OutboundBody::Reaction {
            target_wamid: text(&object["message_id"]),
            emoji: text(&object["emoji"]),
        },
        other => OutboundBody::Media(Media {
            kind: MediaKind::parse(other)?,
            whatsapp_media_id: text(&object["id"]),
            caption: text(&object["caption"]),
            filename: text(&object["filename"]),
        }),
    };
    let reply_to = body["context"]["message_id"].as_str().map(str::to_owned);
    Some((content, reply_to))
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    error_user_title: Option<String>,
    #[serde(default)]
    error_user_msg: Option<String>,
    #[serde(default)]
    error_data: Option<Value>,
}

impl From<GraphError> for MessageError {
    fn from(error: GraphError) -> Self {
        let code = match &error.code {
            Some(Value::Number(n)) => n.as_i64().unwrap_or_default(),
            Some(Value::String(s)) => s.parse().unwrap_or_default(),
            _ => 0,
        };
        let details = error
            .error_data
            .as_ref()
            .and_then(|d| d.get("details"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        MessageError {
            code,
            title: if error.message.is_empty() {
                error.error_user_title.unwrap_or_default()
            } else {
                error.message
            },
            detail: details.or(error.error_user_msg).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_error(code: i64) -> Vec<u8> {
        json!({ "error": {
            "message": format!("(#{code}) something"),
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": "why" },
            "fbtrace_id": "A"
        }})
        .to_string()
        .into_bytes()
    }

    fn is_temporary(status: u16, answer: &[u8]) -> bool {
        let status = StatusCode::from_u16(status).expect("status");
        matches!(classify(status, answer), SendError::Temporary(_))
    }

    #[test]
    fn rate_limits_and_server_errors_are_temporary() {
        for code in [130429, 131056, 131000] {
            assert!(is_temporary(400, &graph_error(code)), "{code}");
        }
        assert!(is_temporary(429, b""), "HTTP 429 without a body");
        assert!(
            is_temporary(500, &graph_error(131026)),
            "5xx whatever it says"
        );
        assert!(is_temporary(503, b"<html>"));
        assert!(is_temporary(404, b"not the Graph API"));
    }

    #[test]
    fn other_graph_errors_are_refusals_with_whatsapps_words() {
        let refused = classify(StatusCode::BAD_REQUEST, &graph_error(131047));
        assert_eq!(
            refused,
            SendError::Refused(MessageError {
                code: 131047,
                title: "(#131047) something".into(),
                detail: "why".into(),
            })
        );
        let SendError::Temporary(trouble) = classify(StatusCode::BAD_REQUEST, &graph_error(130429))
        else {
            panic!("a rate limit is temporary");
        };
        assert!(trouble.reason.contains("130429"), "{}", trouble.reason);
        assert_eq!(trouble.error.map(|e| e.code), Some(130429));
    }

    #[test]
    fn a_reply_carries_its_context_and_the_message_id_comes_back_in_statuses() {
        let body = message_body(
            "5491100000000",
            &OutboundBody::Text {
                body: "hola".into(),
                preview_url: true,
            },
            Some("wamid.quoted"),
            "message-1",
        );
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "5491100000000",
                "type": "text",
                "text": { "body": "hola", "preview_url": true },
                "context": { "message_id": "wamid.quoted" },
                "biz_opaque_callback_data": "message-1",
            })
        );
    }

    #[test]
    fn templates_name_their_language_and_body_parameters() {
        let template = |parameters: Vec<String>| {
            OutboundBody::Template(Template {
                name: "seguimiento".into(),
                language: "es_MX".into(),
                body_parameters: parameters,
            })
        };
        let body = message_body(
            "1",
            &template(vec!["Ana".into(), "12/05".into()]),
            None,
            "m",
        );
        assert_eq!(
            body["template"],
            json!({
                "name": "seguimiento",
                "language": { "code": "es_MX" },
                "components": [{ "type": "body", "parameters": [
                    { "type": "text", "text": "Ana" },
                    { "type": "text", "text": "12/05" },
                ]}],
            })
        );
        let bare = message_body("1", &template(Vec::new()), None, "m");
        assert_eq!(
            bare["template"].get("components"),
            None,
            "no empty component"
        );
    }

    #[test]
    fn media_carries_only_the_fields_whatsapp_accepts_for_its_kind() {
        let media = |kind| {
            OutboundBody::Media(Media {
                kind,
                whatsapp_media_id: "77".into(),
                caption: "mira".into(),
                filename: "factura.pdf".into(),
            })
        };
        let body = |kind| message_body("1", &media(kind), None, "m");
        assert_eq!(
            body(MediaKind::Image)["image"],
            json!({ "id": "77", "caption": "mira" })
        );
        assert_eq!(
            body(MediaKind::Document)["document"],
            json!({ "id": "77", "caption": "mira", "filename": "factura.pdf" })
        );
        assert_eq!(body(MediaKind::Audio)["audio"], json!({ "id": "77" }));
        assert_eq!(body(MediaKind::Sticker)["type"], "sticker");
    }

    #[test]
    fn a_stored_body_reads_back_as_what_was_sent() {
        let bodies = [
            OutboundBody::Text {
                body: "hola".into(),
                preview_url: true,
            },
            OutboundBody::Template(Template {
                name: "t".into(),
                language: "es".into(),
                body_parameters: vec!["a".into(), "b".into()],
            }),
            OutboundBody::Reaction {
                target_wamid: "wamid.x".into(),
                emoji: String::new(),
            },
            OutboundBody::Media(Media {
                kind: MediaKind::Document,
                whatsapp_media_id: "9".into(),
                caption: "c".into(),
                filename: "f.pdf".into(),
            }),
        ];
        for body in bodies {
            let stored = message_body("1", &body, Some("wamid.q"), "m");
            assert_eq!(
                read_message_body(&stored),
                Some((body, Some("wamid.q".to_owned())))
            );
        }
        assert_eq!(read_message_body(&json!({ "type": "carousel" })), None);
    }
}
