//! A local stand-in for the WhatsApp Cloud API's send endpoint,
//! `POST /{version}/{phone_number_id}/messages`: it records every request and
//! answers as told; and for its media endpoints (see [`media`]). The internet
//! is not reachable from tests.

mod media;

pub use media::UploadedMedia;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// How the fake answers a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answer {
    /// 200 with a wamid, as for any message WhatsApp takes.
    #[default]
    Accept,
    /// 400 with Meta's error body for a closed 24-hour window (code 131047).
    Refuse,
    /// 503: the Cloud API is down.
    Fail,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct SentRequest {
    /// The Graph API version in the path (`v23.0`).
    pub version: String,
    /// The business number the message was sent from.
    pub phone_number_id: String,
    /// The `Authorization` header, as sent.
    pub authorization: String,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    answer: Answer,
    sent: Vec<SentRequest>,
    next_wamid: Option<String>,
}

/// A running fake. Clones share the server and what it recorded.
#[derive(Clone)]
pub struct CloudApi {
    base_url: String,
    shared: Arc<Mutex<Shared>>,
    media: media::Shared,
}

impl CloudApi {
    /// Serves on 127.0.0.1:0 for the rest of the test's runtime.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let (media_routes, media) = media::router(&base_url);
        let app = Router::new()
            .route("/{version}/{phone_number_id}/messages", post(messages))
            .with_state(shared.clone())
            .merge(media_routes);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url,
            shared,
            media,
        }
    }

    /// What `whatsapp.api_base_url` should be set to.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Everything sent so far, in order, whatever the answer was.
    pub fn sent(&self) -> Vec<SentRequest> {
        lock(&self.shared).sent.clone()
    }

    /// Answers every later send this way.
    pub fn answer(&self, answer: Answer) {
        lock(&self.shared).answer = answer;
    }

    /// The wamid of the next accepted message; by default the n-th request
    /// gets `wamid.sent.<n>` (counting from 1).
    pub fn next_wamid(&self, wamid: &str) {
        lock(&self.shared).next_wamid = Some(wamid.to_owned());
    }
}

/// A test that failed while holding the lock has already reported; what was
/// recorded is still worth reading.
fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn messages(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let to = body["to"].clone();
    let mut shared = lock(&shared);
    shared.sent.push(SentRequest {
        version,
        phone_number_id,
        authorization,
        body,
    });
    match shared.answer {
        Answer::Accept => {
            let n = shared.sent.len();
            let wamid = shared
                .next_wamid
                .take()
                .unwrap_or_else(|| format!("wamid.sent.{n}"));
            (
                StatusCode::OK,
                Json(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{ "input": to, "wa_id": to }],
                    "messages": [{ "id": wamid }],
                })),
            )
        }
        Answer::Refuse => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": {
                "message": "(#131047) Re-engagement message",
                "type": "OAuthException",
                "code": 131047,
                "error_data": {
                    "messaging_product": "whatsapp",
                    "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
                },
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"
            }})),
        ),
        Answer::Fail => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    }
}
