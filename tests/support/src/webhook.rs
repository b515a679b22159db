//! WhatsApp webhook bodies as Meta sends them, and their signature, for
//! tests that post to the webhook (in-process suites and child processes).

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The app secret [`crate::suite_env`] gives a suite in child processes.
pub const APP_SECRET: &str = "test-app-secret";

/// An HTTP client for posting webhooks. reqwest is built without a default
/// TLS provider: this installs ring's, once per process.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A POST of `body` to the webhook at `url` as Meta sends it: JSON, with
/// `signature` (see [`signature`]) in `X-Hub-Signature-256`.
pub fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    signature: &str,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
}

/// `X-Hub-Signature-256` of `body` under `app_secret`.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(app_secret.as_bytes())
        .expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A text webhook like `inbound_text.json`, for a given message id and text,
/// written now.
pub fn text_webhook(
    phone_number_id: &str,
    wa_id: &str,
    name: &str,
    wamid: &str,
    text: &str,
) -> Vec<u8> {
    text_webhook_at(phone_number_id, wa_id, name, wamid, text, &chrono_now())
}

/// [`text_webhook`] written at `timestamp` (unix seconds).
pub fn text_webhook_at(
    phone_number_id: &str,
    wa_id: &str,
    name: &str,
    wamid: &str,
    text: &str,
    timestamp: &str,
) -> Vec<u8> {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1234567890987654321", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "972123456789", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": timestamp, "type": "text", "text": {"body": text}}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

/// A status webhook like `status_failed.json`: message `wamid` sent from
/// `phone_number_id` to `recipient` is now `status`, failed with `error`
/// (code, title) when given.
pub fn status_webhook(
    phone_number_id: &str,
    recipient: &str,
    wamid: &str,
    status: &str,
    error: Option<(i64, &str)>,
) -> Vec<u8> {
    let errors: Vec<_> = error
        .map(|(code, title)| serde_json::json!({"code": code, "title": title, "message": title}))
        .into_iter()
        .collect();
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "5467539754836534", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "972123456789", "phone_number_id": phone_number_id},
            "statuses": [{"id": wamid, "status": status, "timestamp": chrono_now(), "recipient_id": recipient, "errors": errors}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

/// Now, in unix seconds, as webhooks write it.
pub fn chrono_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default()
}
