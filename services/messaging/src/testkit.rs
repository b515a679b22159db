//! What messaging's tests share: its schema in a test database, a queue
//! service that behaves as told and remembers what it was asked, and
//! settings that point the service at the shared fake Cloud API.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use atenciones_proto::queue::v1 as queue;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_proto::queue::v1::queue_service_server::{QueueService, QueueServiceServer};
use atenciones_runtime::grpc::Channel;
use atenciones_runtime::settings::{DatabaseSettings, WhatsAppSettings};
use atenciones_runtime::{CancellationToken, Settings, database, grpc};
use atenciones_test_support::{CloudApi, TestDatabase, services};
use sea_orm::DatabaseConnection;
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain;
use crate::entity::media;
use crate::error::Error;
use crate::graph::Graph;
use crate::media::{Limits, Media, Storage, track_inbound};
use crate::notification::{self, Item};

pub const SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const ACCESS_TOKEN: &str = "test-access-token";
pub const API_VERSION: &str = "v23.0";

/// The messaging service's schema in `test_db`, connected as the service
/// connects (one connection for SQLite).
pub async fn migrated(test_db: &TestDatabase) -> DatabaseConnection {
    let settings = DatabaseSettings {
        migrate: true,
        max_connections: 4,
        acquire_timeout_secs: 10,
    };
    let db = database::connect(&test_db.url("messaging"), &settings)
        .await
        .expect("database");
    database::prepare::<atenciones_migrations::messaging::Migrator>(&db, true)
        .await
        .expect("migrations");
    db
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
    /// When set, answer this many more calls, then go down.
    pub answers_left: Option<usize>,
    /// (number, customer id) → attention.
    pub attentions: HashMap<(String, String), Uuid>,
    pub inbound: Vec<queue::RecordInboundMessageRequest>,
    /// Delivery statuses announced, in order.
    pub statuses: Vec<queue::RecordMessageStatusRequest>,
    /// The business's own messages recorded for the list preview.
    pub outbound: Vec<queue::RecordOutboundMessageRequest>,
    /// What every attention answers with, as one started out of hours.
    pub out_of_hours_template: Option<queue::TemplateRef>,
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
        tokio::spawn(services::serve(listener, routes, shutdown));
        format!("http://{address}")
    }

    pub async fn client(&self, shutdown: CancellationToken) -> QueueServiceClient<Channel> {
        let url = self.serve(shutdown).await;
        QueueServiceClient::new(services::service_channel(&url))
    }
}

/// The fake's QueueService: the methods given in braces, and every other
/// listed method answering UNIMPLEMENTED. One macro builds the whole impl so
/// `async_trait` sees every method.
macro_rules! fake_queue_service {
    ({ $($served:tt)* } $($name:ident($request:ident) -> $response:ident;)*) => {
        #[tonic::async_trait]
        impl QueueService for FakeQueue {
            $($served)*
            $(
                async fn $name(
                    &self,
                    _: Request<queue::$request>,
                ) -> Result<Response<queue::$response>, Status> {
                    Err(Status::unimplemented("fake"))
                }
            )*
        }
    };
}

fake_queue_service! {
{
    async fn record_inbound_message(
        &self,
        request: Request<queue::RecordInboundMessageRequest>,
    ) -> Result<Response<queue::RecordInboundMessageResponse>, Status> {
        let request = request.into_inner();
        let mut state = self.state();
        if let Some(left) = state.answers_left {
            state.answers_left = Some(left.saturating_sub(1));
            state.down |= left == 0;
        }
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
            out_of_hours_template: state.out_of_hours_template.clone(),
        }))
    }

    async fn record_message_status(
        &self,
        request: Request<queue::RecordMessageStatusRequest>,
    ) -> Result<Response<queue::RecordMessageStatusResponse>, Status> {
        let mut state = self.state();
        if state.down {
            return Err(Status::unavailable("queue is down"));
        }
        state.statuses.push(request.into_inner());
        Ok(Response::new(queue::RecordMessageStatusResponse { recorded: true }))
    }

    async fn record_outbound_message(
        &self,
        request: Request<queue::RecordOutboundMessageRequest>,
    ) -> Result<Response<queue::RecordOutboundMessageResponse>, Status> {
        let mut state = self.state();
        if state.down {
            return Err(Status::unavailable("queue is down"));
        }
        state.outbound.push(request.into_inner());
        Ok(Response::new(queue::RecordOutboundMessageResponse::default()))
    }
}
    // Messaging only records messages and statuses; nothing else is faked.
        list_attentions(ListAttentionsRequest) -> ListAttentionsResponse;
        get_attention(GetAttentionRequest) -> GetAttentionResponse;
        open_attention(OpenAttentionRequest) -> OpenAttentionResponse;
        start_outbound_attention(StartOutboundAttentionRequest) -> StartOutboundAttentionResponse;
        create_dialer(CreateDialerRequest) -> CreateDialerResponse;
        add_dialer_contacts(AddDialerContactsRequest) -> AddDialerContactsResponse;
        get_dialer(GetDialerRequest) -> GetDialerResponse;
        set_dialer_state(SetDialerStateRequest) -> SetDialerStateResponse;
        list_dialers(ListDialersRequest) -> ListDialersResponse;
        list_dialer_contacts(ListDialerContactsRequest) -> ListDialerContactsResponse;
        finish_attention(FinishAttentionRequest) -> FinishAttentionResponse;
        get_agent(GetAgentRequest) -> GetAgentResponse;
        save_campaign(SaveCampaignRequest) -> SaveCampaignResponse;
        deactivate_campaign(DeactivateCampaignRequest) -> DeactivateCampaignResponse;
        save_business_number(SaveBusinessNumberRequest) -> SaveBusinessNumberResponse;
        deactivate_business_number(DeactivateBusinessNumberRequest) -> DeactivateBusinessNumberResponse;
        save_agent(SaveAgentRequest) -> SaveAgentResponse;
        save_supervisor(SaveSupervisorRequest) -> SaveSupervisorResponse;
        deactivate_agent(DeactivateAgentRequest) -> DeactivateAgentResponse;
        deactivate_supervisor(DeactivateSupervisorRequest) -> DeactivateSupervisorResponse;
        set_vip_customer(SetVipCustomerRequest) -> SetVipCustomerResponse;
        set_agent_presence(SetAgentPresenceRequest) -> SetAgentPresenceResponse;
        get_agent_presence(GetAgentPresenceRequest) -> GetAgentPresenceResponse;
        list_events(ListEventsRequest) -> ListEventsResponse;
        heartbeat(HeartbeatRequest) -> HeartbeatResponse;
        decline_offer(DeclineOfferRequest) -> DeclineOfferResponse;
        transfer_attention(TransferAttentionRequest) -> TransferAttentionResponse;
        set_attention_tag(SetAttentionTagRequest) -> SetAttentionTagResponse;
        get_campaign_snapshot(GetCampaignSnapshotRequest) -> GetCampaignSnapshotResponse;
        list_campaigns(ListCampaignsRequest) -> ListCampaignsResponse;
        list_agents(ListAgentsRequest) -> ListAgentsResponse;
        list_audit_entries(ListAuditEntriesRequest) -> ListAuditEntriesResponse;
        purge_attentions(PurgeAttentionsRequest) -> PurgeAttentionsResponse;
        record_window_closing(RecordWindowClosingRequest) -> RecordWindowClosingResponse;
}

// ---- Cloud API ----

/// The built-in settings, pointed at `api_base_url`, with retries quick
/// enough for tests, yet slow enough that a Send* call reads its message back
/// before the sender's retry changes it.
/// The sending side on `db`, talking to the fake Cloud API `graph` (no
/// background sender: first tries only).
pub fn messaging(db: &DatabaseConnection, graph: &CloudApi) -> Arc<crate::messaging::Messaging> {
    let settings = whatsapp_settings(&graph.base_url());
    let client = Arc::new(Graph::new(&settings).expect("graph client"));
    let policy = crate::sender::RetryPolicy::new(&settings).expect("policy");
    let sender = crate::sender::Sender::new(db.clone(), client.clone(), policy);
    Arc::new(crate::messaging::Messaging::new(db.clone(), client, sender))
}

pub fn whatsapp_settings(api_base_url: &str) -> WhatsAppSettings {
    let defaults = Settings::load(None).expect("default settings").whatsapp;
    WhatsAppSettings {
        app_secret: SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
        access_token: ACCESS_TOKEN.into(),
        api_base_url: api_base_url.into(),
        api_version: API_VERSION.into(),
        request_timeout_ms: 2_000,
        send_lease_ms: 5_000,
        retry_initial_backoff_ms: 250,
        retry_max_backoff_ms: 500,
        ..defaults
    }
}

/// A Cloud API client talking to `cloud_api`.
pub fn graph(cloud_api: &CloudApi) -> Graph {
    Graph::new(&whatsapp_settings(&cloud_api.base_url())).expect("graph client")
}

// ---- media ----

/// Limits as the defaults set them, with a small chunk size so tests move a
/// file in several chunks.
pub fn media_limits() -> Limits {
    Limits {
        max_chunk_bytes: 64 * 1024,
        download_chunk_bytes: 64 * 1024,
        upload_expiry: chrono::Duration::hours(1),
        poll_interval: std::time::Duration::from_millis(50),
        download_attempts: 3,
    }
}

/// The media side of the service on `db`, storing in memory and talking to
/// `cloud_api`.
pub fn media(db: &DatabaseConnection, cloud_api: &CloudApi) -> Media {
    Media::new(
        db.clone(),
        Storage::memory(),
        graph(cloud_api),
        media_limits(),
    )
}

/// The media side on a fresh database, with a fake Cloud API.
pub struct MediaHarness {
    pub db: DatabaseConnection,
    pub graph: CloudApi,
    pub media: Media,
    _test_db: TestDatabase,
}

pub async fn media_harness(test_db: TestDatabase) -> MediaHarness {
    let db = migrated(&test_db).await;
    let graph = CloudApi::start().await;
    MediaHarness {
        media: media(&db, &graph),
        db,
        graph,
        _test_db: test_db,
    }
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/whatsapp");
/// The media id of `inbound_image.json`.
pub const FIXTURE_MEDIA: &str = "65463453";

/// 150 kB of image-like bytes.
pub fn image() -> Vec<u8> {
    (0..150_000).map(|i| (i % 253) as u8).collect()
}

impl MediaHarness {
    /// Stores the messages of a webhook body as the processor does and
    /// records their files; returns the first message's file.
    pub async fn receive(&self, body: &[u8]) -> media::Model {
        let items = notification::parse(body, domain::now()).expect("parses");
        let mut first = None;
        for item in items {
            if let Item::Message(inbound) = item {
                let stored = crate::store::store_inbound(&self.db, &inbound)
                    .await
                    .expect("stored");
                track_inbound(&self.db, &stored).await.expect("tracked");
                first.get_or_insert(stored.id);
            }
        }
        let message_id = first.expect("a message");
        crate::media::of_messages(&self.db, &[message_id])
            .await
            .expect("files")
            .remove(&message_id)
            .expect("a file")
    }

    /// [`MediaHarness::receive`] of a fixture.
    pub async fn fixture(&self, name: &str) -> media::Model {
        let body = std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture");
        self.receive(&body).await
    }
}

// ---- errors ----

/// The fields an INVALID_ARGUMENT names, in order; panics on anything else.
pub fn violated<T: std::fmt::Debug>(result: Result<T, Error>) -> Vec<String> {
    match result {
        Err(Error::InvalidArgument(violations)) => {
            violations.into_iter().map(|v| v.field).collect()
        }
        other => panic!("expected invalid argument, got {other:?}"),
    }
}
