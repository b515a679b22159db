//! A local stand-in for the WhatsApp Cloud API's send endpoint,
//! `POST /{version}/{phone_number_id}/messages`: it records every request and
//! answers as told — a standing answer, or a script of answers for the next
//! sends (rate limits, refusals, server errors, slow or no answers); and for
//! its media endpoints (see [`media`]). Read receipts (`"status": "read"`) go
//! to the same endpoint and are kept apart. The internet is not reachable
//! from tests.

mod media;

pub use media::UploadedMedia;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// 503 without a body: the Cloud API is down.
    Fail,
    /// 400 with code 130429: the business number's throughput is exceeded.
    RateLimited,
    /// 400 with code 131056: too many messages to one customer.
    PairRateLimited,
    /// HTTP 429 with code 80007 (the account's rate limit).
    TooManyRequests,
    /// 400 with this Graph error, for any other refusal.
    Reject {
        code: i64,
        title: &'static str,
        detail: &'static str,
    },
    /// 500 with code 131000 ("Something went wrong").
    ServerError,
    /// Accepts, but only after this long (possibly after the client gave up).
    Slow(Duration),
    /// Never answers; the request stays open until the client goes away.
    Hold,
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
    /// When it arrived.
    pub received_at: Instant,
    /// The HTTP status the fake answered; `None` while (or because) it held
    /// the request.
    pub status: Option<u16>,
}

impl SentRequest {
    /// Whether WhatsApp took this message (answered 200 with a wamid).
    pub fn accepted(&self) -> bool {
        self.status == Some(200)
    }

    /// `biz_opaque_callback_data`, which the service sets to its message id.
    pub fn callback(&self) -> &str {
        self.body["biz_opaque_callback_data"]
            .as_str()
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    answer: Answer,
    script: VecDeque<Answer>,
    sent: Vec<SentRequest>,
    read_receipts: Vec<SentRequest>,
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

    /// Every message send so far (read receipts excluded), in order, whatever
    /// the answer was.
    pub fn sent(&self) -> Vec<SentRequest> {
        lock(&self.shared).sent.clone()
    }

    /// The sends it accepted.
    pub fn accepted(&self) -> Vec<SentRequest> {
        self.sent().into_iter().filter(|r| r.accepted()).collect()
    }

    /// The sends of one message (by the service's message id), in order.
    pub fn sent_for(&self, message_id: &str) -> Vec<SentRequest> {
        self.sent()
            .into_iter()
            .filter(|r| r.callback() == message_id)
            .collect()
    }

    /// Every read receipt (`"status": "read"`) so far; always answered 200.
    pub fn read_receipts(&self) -> Vec<SentRequest> {
        lock(&self.shared).read_receipts.clone()
    }

    /// Answers every later send this way (after any scripted answers).
    pub fn answer(&self, answer: Answer) {
        lock(&self.shared).answer = answer;
    }

    /// Answers the next sends these ways, one each, in order; then as
    /// [`CloudApi::answer`] says.
    pub fn script(&self, answers: &[Answer]) {
        lock(&self.shared).script.extend(answers.iter().copied());
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
    let read_receipt = body["status"] == "read";
    let mut request = SentRequest {
        version,
        phone_number_id,
        authorization,
        body,
        received_at: Instant::now(),
        status: None,
    };
    if read_receipt {
        request.status = Some(200);
        lock(&shared).read_receipts.push(request);
        return (StatusCode::OK, Json(json!({ "success": true })));
    }
    let (index, answer) = {
        let mut shared = lock(&shared);
        shared.sent.push(request);
        let answer = shared.script.pop_front().unwrap_or(shared.answer);
        (shared.sent.len() - 1, answer)
    };
    let (status, answer) = match answer {
        Answer::Accept => accept(&shared, index, &to),
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            accept(&shared, index, &to)
        }
        Answer::Hold => std::future::pending().await,
        Answer::Refuse => graph_error(
            StatusCode::BAD_REQUEST,
            131047,
            "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
        Answer::RateLimited => graph_error(
            StatusCode::BAD_REQUEST,
            130429,
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
        Answer::PairRateLimited => graph_error(
            StatusCode::BAD_REQUEST,
            131056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
        ),
        Answer::TooManyRequests => graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            80007,
            "(#80007) Rate limit issues",
            "The WhatsApp Business Account has reached its rate limit.",
        ),
        Answer::Reject {
            code,
            title,
            detail,
        } => graph_error(StatusCode::BAD_REQUEST, code, title, detail),
        Answer::ServerError => graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            131000,
            "(#131000) Something went wrong",
            "Message failed to send due to an unknown error.",
        ),
        Answer::Fail => (StatusCode::SERVICE_UNAVAILABLE, json!({})),
    };
    if let Some(request) = lock(&shared).sent.get_mut(index) {
        request.status = Some(status.as_u16());
    }
    (status, Json(answer))
}

fn accept(shared: &Mutex<Shared>, index: usize, to: &Value) -> (StatusCode, Value) {
    let wamid = lock(shared)
        .next_wamid
        .take()
        .unwrap_or_else(|| format!("wamid.sent.{}", index + 1));
    (
        StatusCode::OK,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": to }],
            "messages": [{ "id": wamid }],
        }),
    )
}

/// Meta's error body.
fn graph_error(status: StatusCode, code: i64, title: &str, detail: &str) -> (StatusCode, Value) {
    (
        status,
        json!({ "error": {
            "message": title,
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": detail },
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"
        }}),
    )
}
