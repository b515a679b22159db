//! Test doubles: a fresh database per test, a queue service and a Cloud API
//! that behave as told and remember what they were asked.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use atenciones_proto::queue::v1 as queue;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_proto::queue::v1::queue_service_server::{QueueService, QueueServiceServer};
use atenciones_runtime::settings::{DatabaseSettings, WhatsAppSettings};
use atenciones_runtime::{CancellationToken, database, grpc};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::graph::Graph;

pub const SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const ACCESS_TOKEN: &str = "test-access-token";
pub const API_VERSION: &str = "v23.0";

/// A migrated database for one test: a SQLite file in a temporary directory,
/// or, when `ATENCIONES_TEST_POSTGRES_URL` holds an admin URL (as for the
/// workspace's end-to-end tests: `postgres://postgres@127.0.0.1:5432/postgres`),
/// a fresh PostgreSQL database on that server, dropped with this value.
pub struct TestDatabase {
    pub db: DatabaseConnection,
    _dir: TempDir,
    postgres: Option<(String, String)>,
}

pub async fn database() -> TestDatabase {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = DatabaseSettings {
        migrate: true,
        max_connections: 4,
        acquire_timeout_secs: 10,
    };
    let mut postgres = None;
    let url = match std::env::var("ATENCIONES_TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let server = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(server, _)| server)
                .to_owned();
            // The prefix CI sweeps for databases left by interrupted runs.
            let name = format!("atenciones_test_messaging_{}", Uuid::new_v4().simple());
            let admin = database::connect(&admin_url, &settings)
                .await
                .expect("postgres");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            postgres = Some((admin_url.clone(), name.clone()));
            format!("{server}/{name}")
        }
        _ => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("messaging.db").display()
        ),
    };
    let db = database::connect(&url, &settings).await.expect("database");
    database::prepare::<atenciones_migrations::messaging::Migrator>(&db, true)
        .await
        .expect("migrations");
    TestDatabase {
        db,
        _dir: dir,
        postgres,
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop is not async: a private runtime on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(admin_url).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                admin.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---- queue ----

#[derive(Default)]
pub struct QueueState {
    /// Numbers bound to a campaign; others get NOT_FOUND.
    pub bound: HashSet<String>,
    /// Answer UNAVAILABLE to everything.
    pub down: bool,
    /// (number, customer id) → attention.
    pub attentions: HashMap<(String, String), Uuid>,
    pub inbound: Vec<queue::RecordInboundMessageRequest>,
}

#[derive(Clone, Default)]
pub struct FakeQueue(pub Arc<Mutex<QueueState>>);

impl FakeQueue {
    pub fn state(&self) -> MutexGuard<'_, QueueState> {
        lock(&self.0)
    }

    /// Serves on 127.0.0.1:0; returns the URL.
    pub async fn serve(&self, shutdown: CancellationToken) -> String {
        let (listener, address) = grpc::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let routes = Routes::new(QueueServiceServer::new(self.clone()));
        tokio::spawn(grpc::serve(listener, routes, shutdown));
        format!("http://{address}")
    }

    pub async fn client(&self, shutdown: CancellationToken) -> QueueServiceClient<Channel> {
        let url = self.serve(shutdown).await;
        QueueServiceClient::new(grpc::channel(&url).expect("channel"))
    }
}

#[tonic::async_trait]
impl QueueService for FakeQueue {
    async fn record_inbound_message(
        &self,
        request: Request<queue::RecordInboundMessageRequest>,
    ) -> Result<Response<queue::RecordInboundMessageResponse>, Status> {
        let request = request.into_inner();
        let mut state = self.state();
        if state.down {
            return Err(Status::unavailable("queue is down"));
        }
        if !state.bound.contains(&request.business_phone_number_id) {
            return Err(Status::not_found("business number bound to no campaign"));
        }
        let customer = request.customer.clone().unwrap_or_default();
        let key = (
            request.business_phone_number_id.clone(),
            customer.id.clone(),
        );
        let created = !state.attentions.contains_key(&key);
        let id = *state.attentions.entry(key).or_insert_with(Uuid::new_v4);
        state.inbound.push(request.clone());
        let attention = queue::Attention {
            id: id.to_string(),
            business_phone_number_id: request.business_phone_number_id,
            customer: Some(customer),
            last_message_preview: request.preview,
            ..Default::default()
        };
        Ok(Response::new(queue::RecordInboundMessageResponse {
            attention: Some(attention),
            created,
        }))
    }

    async fn record_outbound_message(
        &self,
        _: Request<queue::RecordOutboundMessageRequest>,
    ) -> Result<Response<queue::RecordOutboundMessageResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_attentions(
        &self,
        _: Request<queue::ListAttentionsRequest>,
    ) -> Result<Response<queue::ListAttentionsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_attention(
        &self,
        _: Request<queue::GetAttentionRequest>,
    ) -> Result<Response<queue::GetAttentionResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn open_attention(
        &self,
        _: Request<queue::OpenAttentionRequest>,
    ) -> Result<Response<queue::OpenAttentionResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn finish_attention(
        &self,
        _: Request<queue::FinishAttentionRequest>,
    ) -> Result<Response<queue::FinishAttentionResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_agent(
        &self,
        _: Request<queue::GetAgentRequest>,
    ) -> Result<Response<queue::GetAgentResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

// ---- Cloud API ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphMode {
    #[default]
    Accept,
    /// 400 with a Graph error body (the 24-hour window is closed).
    Refuse,
    /// 503.
    Fail,
}

#[derive(Debug, Clone)]
pub struct GraphCall {
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Default)]
pub struct GraphState {
    pub mode: GraphMode,
    pub calls: Vec<GraphCall>,
    /// The wamid of the next accepted message (default: wamid.sent.<n>).
    pub next_wamid: Option<String>,
}

#[derive(Clone, Default)]
pub struct FakeGraph(pub Arc<Mutex<GraphState>>);

impl FakeGraph {
    pub fn state(&self) -> MutexGuard<'_, GraphState> {
        lock(&self.0)
    }

    /// Serves on 127.0.0.1:0; returns the base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let router = axum::Router::new()
            .route("/{version}/{phone_number_id}/messages", post(graph_send))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}")
    }

    pub async fn client(&self) -> Graph {
        let base = self.serve().await;
        Graph::new(&whatsapp_settings(&base)).expect("graph client")
    }
}

pub fn whatsapp_settings(api_base_url: &str) -> WhatsAppSettings {
    WhatsAppSettings {
        app_secret: SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
        access_token: ACCESS_TOKEN.into(),
        api_base_url: api_base_url.into(),
        api_version: API_VERSION.into(),
    }
}

async fn graph_send(
    State(graph): State<FakeGraph>,
    Path((version, number)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut state = graph.state();
    state.calls.push(GraphCall {
        path: format!("/{version}/{number}/messages"),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: body.clone(),
    });
    match state.mode {
        GraphMode::Accept => {
            let n = state.calls.len();
            let wamid = state
                .next_wamid
                .take()
                .unwrap_or_else(|| format!("wamid.sent.{n}"));
            let to = body["to"].clone();
            (
                StatusCode::OK,
                Json(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{ "input": to, "wa_id": to }],
                    "messages": [{ "id": wamid }],
                })),
            )
        }
        GraphMode::Refuse => (
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
        GraphMode::Fail => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    }
}
