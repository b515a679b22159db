//! A local server speaking the WhatsApp Cloud API's send endpoint, recording
//! what it was sent. The internet is not reachable from tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct SentRequest {
    pub phone_number_id: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    sent: Mutex<Vec<SentRequest>>,
    next_id: AtomicU64,
}

#[derive(Clone)]
pub struct CloudApi {
    base_url: String,
    shared: Arc<Shared>,
}

impl CloudApi {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/{version}/{phone_number_id}/messages", post(messages))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, shared }
    }

    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<SentRequest> {
        self.shared.sent.lock().expect("not poisoned").clone()
    }
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    shared.sent.lock().expect("not poisoned").push(SentRequest {
        phone_number_id,
        authorization,
        body,
    });
    let n = shared.next_id.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::OK,
        Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": format!("wamid.fake.{n}")}]
        })),
    )
}
