//! The Cloud API (Graph API) client: sending messages. Media calls are in
//! `crate::media::graph`, on the same client.

use std::time::Duration;

use atenciones_runtime::settings::WhatsAppSettings;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::MessageError;

/// Why a send did not go through.
#[derive(Debug)]
pub enum SendError {
    /// WhatsApp answered with an error: the message will not be sent.
    Refused(MessageError),
    /// WhatsApp could not be reached or failed on its side; safe to retry.
    Unavailable(String),
}

pub struct Graph {
    http: reqwest::Client,
    base_url: String,
    version: String,
    access_token: String,
}

impl Graph {
    /// Builds the one HTTP client (connection pool) of the process.
    pub fn new(settings: &WhatsAppSettings) -> Result<Self, reqwest::Error> {
        // reqwest is built without a default TLS provider; ring is the one the
        // workspace uses. Installing twice is harmless (the first one stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A send is on an agent's request path: fail (and let them retry
            // with the same key) rather than hang.
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self {
            http,
            base_url: settings.api_base_url.trim_end_matches('/').to_owned(),
            version: settings.api_version.trim_matches('/').to_owned(),
            access_token: settings.access_token.clone(),
        })
    }

    /// The request body of a text message.
    pub fn text_body(to: &str, text: &str, preview_url: bool) -> Value {
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "body": text, "preview_url": preview_url },
        })
    }

    /// `<base>/<version>/<path>`: the URL of a Graph API call.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}/{}", self.base_url, self.version, path)
    }

    /// A request to `url` (a Graph API URL, or a media URL it handed out)
    /// carrying the access token. Media transfers pass their own timeout.
    pub(crate) fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.access_token)
    }

    /// Sends `body` from the business number; returns the wamid WhatsApp gave it.
    pub async fn send(&self, phone_number_id: &str, body: &Value) -> Result<String, SendError> {
        let url = self.url(&format!("{phone_number_id}/messages"));
        let bytes = self
            .call(self.request(reqwest::Method::POST, &url).json(body), &url)
            .await?;
        serde_json::from_slice::<SendResponse>(&bytes)
            .ok()
            .and_then(|r| r.messages.into_iter().next())
            .map(|m| m.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| SendError::Unavailable(format!("{url} answered without a message id")))
    }

    /// Sends a request to `url` and reads the body of a successful answer.
    pub(crate) async fn call(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<bytes::Bytes, SendError> {
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Unavailable(format!("{url}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SendError::Unavailable(format!("reading the answer of {url}: {e}")))?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(failure(url, status, &bytes))
        }
    }
}

/// What an unsuccessful answer of `url` means.
pub(crate) fn failure(url: &str, status: reqwest::StatusCode, body: &[u8]) -> SendError {
    // Rate limits and server errors pass; a retry may succeed.
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return SendError::Unavailable(format!("{url} answered {status}"));
    }
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(ErrorResponse { error }) => SendError::Refused(error.into()),
        // A 4xx that is not the Graph API talking (a proxy, a wrong base URL):
        // nothing was done, so a retry may succeed.
        Err(_) => SendError::Unavailable(format!("{url} answered {status} without a Graph error")),
    }
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
