//! Test kit: starts the whole suite on port 0 against a fresh database (a
//! SQLite directory, or a PostgreSQL database made for the test and dropped
//! after it) with a fake WhatsApp Cloud API, and gives agents gRPC clients.

pub mod bench;
pub mod raw;

use atenciones_test_support::services;
use std::net::SocketAddr;
use std::path::PathBuf;

use tonic::Status;
use tonic::transport::Channel;

use atenciones_proto::common::v1 as common;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::gateway::v1::admin_service_client::AdminServiceClient;
use atenciones_proto::gateway::v1::agent_desk_service_client::AgentDeskServiceClient;
use atenciones_proto::history::v1 as history_pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_proto::queue::v1::{Attention, AttentionState};

pub use atenciones_gateway::auth::Role;
use atenciones_runtime::{CancellationToken, ServiceName, Settings};
use sea_orm::{ConnectionTrait, Statement};

pub use atenciones_test_support::desk::{self, Admin, Bearer, Desk};
pub use atenciones_test_support::webhook::{
    self, chrono_now, status_webhook, text_webhook, text_webhook_at,
};
pub use atenciones_test_support::{
    Answer, Backend, CloudApi, SentRequest, TestDatabase, UploadedMedia, eventually,
    on_both_databases,
};

/// The app secret of the real signed fixture (`signed_inbound_text_pywa.json`);
/// the kit signs every other payload with it too.
pub const APP_SECRET: &str = "1222e786b144d0e85b9f365372d93676";
pub const VERIFY_TOKEN: &str = "verify-me";
pub const ACCESS_TOKEN: &str = "test-access-token";

/// A running suite. Dropping it stops the servers and drops its database.
pub struct TestSuite {
    pub settings: Settings,
    pub addresses: atenciones::Addresses,
    pub cloud_api: CloudApi,
    shutdown: CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    database: TestDatabase,
    http: reqwest::Client,
}

impl TestSuite {
    /// Starts every role on `database` (see [`on_both_databases!`]).
    pub async fn start(database: TestDatabase) -> Self {
        Self::start_with(database, |_| {}).await
    }

    /// Starts every role on `database` with the kit's settings changed by
    /// `configure` (pacing, timeouts, retries…).
    pub async fn start_with(database: TestDatabase, configure: impl FnOnce(&mut Settings)) -> Self {
        let cloud_api = CloudApi::start().await;
        let mut settings = Settings::load(None).expect("default settings load");
        settings.data_dir = database.data_dir().to_path_buf();
        settings.demo = true;
        settings.database.max_connections = 2;
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
        settings.gateway.listen = any_port;
        // Tests change membership and act on it at once; tests/tests/membership.rs
        // covers the cache.
        settings.gateway.membership_cache_ms = 0;
        settings.queue.listen = any_port;
        settings.messaging.listen = any_port;
        settings.messaging.webhook_listen = any_port;
        settings.form.listen = any_port;
        settings.history.listen = any_port;
        for (service, url) in [
            (ServiceName::Queue, &mut settings.queue.database_url),
            (ServiceName::Messaging, &mut settings.messaging.database_url),
            (ServiceName::Form, &mut settings.form.database_url),
            (ServiceName::History, &mut settings.history.database_url),
        ] {
            *url = database.url(service.as_str());
        }
        settings.whatsapp.app_secret = APP_SECRET.into();
        settings.whatsapp.verify_token = VERIFY_TOKEN.into();
        settings.whatsapp.access_token = ACCESS_TOKEN.into();
        settings.whatsapp.api_base_url = cloud_api.base_url();
        settings.whatsapp.api_version = "v23.0".into();
        // Retries within a second, not minutes (yet slow enough that a send's
        // answer is read before its first retry changes it); a short lease.
        settings.whatsapp.request_timeout_ms = 2_000;
        settings.whatsapp.send_lease_ms = 5_000;
        settings.whatsapp.retry_initial_backoff_ms = 250;
        settings.whatsapp.retry_max_backoff_ms = 500;
        configure(&mut settings);

        let shutdown = CancellationToken::new();
        let running = atenciones::start(settings.clone(), &atenciones::Role::ALL, shutdown.clone())
            .await
            .expect("the suite starts");
        let addresses = running.addresses.clone();
        let token = shutdown.clone();
        let running = tokio::spawn(running.wait(token));
        Self {
            settings,
            addresses,
            cloud_api,
            shutdown,
            running: Some(running),
            database,
            http: webhook::http_client(),
        }
    }

    /// Stops every server, waiting for in-flight calls, and reports a role's failure.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("roles joined")
                .expect("roles stopped cleanly");
        }
    }

    pub fn gateway_url(&self) -> String {
        format!(
            "http://{}",
            self.addresses.gateway.expect("gateway started")
        )
    }

    pub fn webhook_url(&self) -> String {
        format!(
            "http://{}/webhooks/whatsapp",
            self.addresses.webhook.expect("webhook started")
        )
    }

    /// A gateway client acting as `agent` (a demo agent: ana, luis, marta).
    pub async fn desk(&self, agent: &str) -> Desk {
        self.desk_with_token(&self.token(agent, Role::Agent)).await
    }

    /// A signed credential for `subject` in `role`.
    pub fn token(&self, subject: &str, role: Role) -> String {
        desk::token(&self.settings.gateway.auth, subject, role)
    }

    /// A gateway admin client acting as `subject` in `role` (the demo
    /// supervisor is sofia).
    pub async fn admin(&self, subject: &str, role: Role) -> Admin {
        AdminServiceClient::with_interceptor(
            self.gateway_channel().await,
            Bearer::new(&self.token(subject, role)),
        )
    }

    /// A client of the queue service itself (its event feed is not on the
    /// gateway yet).
    pub async fn queue(&self) -> QueueServiceClient<atenciones_runtime::grpc::Channel> {
        let url = format!("http://{}", self.addresses.queue.expect("queue started"));
        QueueServiceClient::new(services::service_channel(&url))
    }

    /// Starts another replica of the queue service on the suite's database
    /// (it stops with the suite) and returns a client of it.
    pub async fn queue_replica(&self) -> QueueServiceClient<atenciones_runtime::grpc::Channel> {
        let address = self
            .replica(&[atenciones::Role::Queue])
            .await
            .queue
            .expect("queue started");
        QueueServiceClient::new(services::service_channel(&format!("http://{address}")))
    }

    /// Starts `roles` again, on the same databases, as another replica of
    /// each (stopped with the suite). The new roles call one another; any
    /// other service they need is the suite's first replica.
    pub async fn replica(&self, roles: &[atenciones::Role]) -> atenciones::Addresses {
        self.replica_with(roles, |_| {}).await
    }

    /// [`TestSuite::replica_with`] that stops, alone, when the returned token
    /// is cancelled (as a replica restarted by Kubernetes would).
    pub async fn stoppable_replica(
        &self,
        roles: &[atenciones::Role],
        configure: impl FnOnce(&mut Settings),
    ) -> (atenciones::Addresses, CancellationToken) {
        let stop = self.shutdown.child_token();
        let addresses = self.replica_until(roles, configure, stop.clone()).await;
        (addresses, stop)
    }

    /// [`TestSuite::replica`] with its settings changed by `configure` (say,
    /// a service it reaches at another address).
    pub async fn replica_with(
        &self,
        roles: &[atenciones::Role],
        configure: impl FnOnce(&mut Settings),
    ) -> atenciones::Addresses {
        self.replica_until(roles, configure, self.shutdown.clone())
            .await
    }

    async fn replica_until(
        &self,
        roles: &[atenciones::Role],
        configure: impl FnOnce(&mut Settings),
        shutdown: CancellationToken,
    ) -> atenciones::Addresses {
        let mut settings = self.settings.clone();
        for (service, address) in [
            (ServiceName::Queue, self.addresses.queue),
            (ServiceName::Messaging, self.addresses.messaging),
            (ServiceName::Form, self.addresses.form),
            (ServiceName::History, self.addresses.history),
        ] {
            settings.set_service_url(service, address.expect("role started"));
        }
        configure(&mut settings);
        let running = atenciones::start(settings, roles, shutdown.clone())
            .await
            .expect("the replica starts");
        let addresses = running.addresses.clone();
        tokio::spawn(running.wait(shutdown));
        addresses
    }

    async fn gateway_channel(&self) -> Channel {
        Channel::from_shared(self.gateway_url())
            .expect("url")
            .connect()
            .await
            .expect("gateway reachable")
    }

    /// A gateway client sending `token` as its credential, whatever it is.
    pub async fn desk_with_token(&self, token: &str) -> Desk {
        self.desk_via(self.gateway_url(), token).await
    }

    /// A desk client of the gateway at `gateway_url` (another replica's).
    pub async fn desk_via(&self, gateway_url: String, token: &str) -> Desk {
        let channel = Channel::from_shared(gateway_url)
            .expect("url")
            .connect()
            .await
            .expect("gateway reachable");
        AgentDeskServiceClient::with_interceptor(channel, Bearer::new(token))
    }

    /// The attentions `agent` sees now (queued in their campaigns, and their open ones).
    pub async fn attentions(&self, agent: &str) -> Vec<Attention> {
        self.desk(agent)
            .await
            .list_attentions(pb::ListAttentionsRequest::default())
            .await
            .expect("ListAttentions")
            .into_inner()
            .attentions
    }

    /// `agent` opens an attention, with the default first page of messages.
    pub async fn open(&self, agent: &str, attention_id: &str) -> pb::OpenAttentionResponse {
        self.desk(agent)
            .await
            .open_attention(pb::OpenAttentionRequest {
                attention_id: attention_id.to_owned(),
                message_page_size: 0,
            })
            .await
            .expect("OpenAttention")
            .into_inner()
    }

    /// A gateway client sending no credential.
    pub async fn anonymous_desk(&self) -> Desk {
        let channel = Channel::from_shared(self.gateway_url())
            .expect("url")
            .connect()
            .await
            .expect("gateway reachable");
        AgentDeskServiceClient::with_interceptor(channel, Bearer::anonymous())
    }

    /// POSTs `body` to the webhook signed with the app secret, as Meta does.
    pub async fn post_webhook(&self, body: &[u8]) -> reqwest::Response {
        self.post_webhook_with_signature(body, Some(&sign(body)))
            .await
    }

    pub async fn post_webhook_with_signature(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        self.post_webhook_via(self.webhook_url(), body, signature)
            .await
    }

    /// POSTs a webhook to the messaging replica at `webhook_url`.
    pub async fn post_webhook_via(
        &self,
        webhook_url: String,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(webhook_url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.expect("webhook reachable")
    }

    /// POSTs a signed webhook and waits until `agent` sees the queued
    /// attention it creates (the first queued one in the agent's list).
    pub async fn queued_attention(&self, body: &[u8], agent: &str) -> String {
        assert_eq!(self.post_webhook(body).await.status(), 200);
        let desk = self.desk(agent).await;
        eventually("the queued attention", || {
            let mut desk = desk.clone();
            async move {
                let list = desk
                    .list_attentions(pb::ListAttentionsRequest::default())
                    .await
                    .ok()?
                    .into_inner();
                list.attentions
                    .into_iter()
                    .find(|a| a.state() == AttentionState::Queued)
                    .map(|a| a.id)
            }
        })
        .await
    }

    /// A demo ventas customer's whole attention with `agent`: the customer's
    /// `inbound` webhook, open, one reply, the form's required `motivo`, and
    /// Finish. Returns the attention id once history holds its record.
    pub async fn serve_and_finish(&self, inbound: &[u8], agent: &str) -> String {
        let id = self.queued_attention(inbound, agent).await;
        self.open(agent, &id).await;
        let mut desk = self.desk(agent).await;
        desk.send_text(pb::SendTextRequest {
            attention_id: id.clone(),
            text: "Hola, ¿en qué puedo ayudarle?".into(),
            idempotency_key: format!("{id}-reply"),
            ..Default::default()
        })
        .await
        .expect("reply");
        self.finish(agent, &id).await;
        id
    }

    /// `agent` fills the demo ventas form's required `motivo` and presses
    /// Finish on an attention they hold; returns its history record.
    pub async fn finish(&self, agent: &str, attention_id: &str) -> history_pb::AttentionRecord {
        let mut desk = self.desk(agent).await;
        let motivo = atenciones_proto::form::v1::FieldValue {
            kind: Some(atenciones_proto::form::v1::field_value::Kind::Choice(
                "compra".into(),
            )),
        };
        desk.save_form_draft(pb::SaveFormDraftRequest {
            attention_id: attention_id.to_owned(),
            values: [("motivo".to_owned(), motivo)].into(),
        })
        .await
        .expect("draft");
        desk.finish_attention(pb::FinishAttentionRequest {
            attention_id: attention_id.to_owned(),
        })
        .await
        .expect("finish");
        self.record(agent, attention_id).await
    }

    /// The history record of a finished attention, once history has it.
    pub async fn record(&self, agent: &str, attention_id: &str) -> history_pb::AttentionRecord {
        let desk = self.desk(agent).await;
        eventually("the history record", || {
            let mut desk = desk.clone();
            async move {
                desk.get_attention_record(pb::GetAttentionRecordRequest {
                    attention_id: attention_id.to_owned(),
                })
                .await
                .ok()?
                .into_inner()
                .record
            }
        })
        .await
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.expect("reachable")
    }

    /// Rows in a table of the messaging service's own database (to prove that
    /// a rejected webhook stored nothing).
    pub async fn count_rows(&self, table: &str) -> i64 {
        self.count_rows_where(table, "1 = 1").await
    }

    /// Rows of a messaging table that match an SQL condition (to see what no
    /// agent can: messages kept aside for a number bound to no campaign).
    pub async fn count_rows_where(&self, table: &str, condition: &str) -> i64 {
        self.count_service_rows(ServiceName::Messaging, table, condition)
            .await
    }

    /// As the demo supervisor sofia: saves `campaign`, binds `number` to it
    /// (when given) and saves each agent with their capacity there (0: the
    /// campaign's default), leaving them in that campaign only.
    pub async fn configure(
        &self,
        campaign: queue_pb::Campaign,
        number: Option<&str>,
        agents: &[(&str, u32)],
    ) {
        let mut sofia = self.admin("sofia", Role::Supervisor).await;
        configure(&mut sofia, campaign, number, agents).await;
    }

    /// The queue's whole event feed, in order: (kind, attention id, payload).
    pub async fn events(&self) -> Vec<(String, String, serde_json::Value)> {
        let mut queue = self.queue().await;
        let mut all = Vec::new();
        let mut after_position = 0;
        loop {
            let page = queue
                .list_events(queue_pb::ListEventsRequest {
                    after_position,
                    limit: 1000,
                })
                .await
                .expect("ListEvents")
                .into_inner()
                .events;
            let Some(last) = page.last() else {
                return all;
            };
            after_position = last.position;
            all.extend(page.into_iter().map(|e| {
                let payload = serde_json::from_str(&e.payload_json).expect("JSON payload");
                (e.kind, e.attention_id, payload)
            }));
        }
    }

    /// Runs an SQL statement on `service`'s own database (to stage what a
    /// crash would leave); returns the rows it changed.
    pub async fn execute_service_sql(&self, service: ServiceName, sql: &str) -> u64 {
        let db = self.database.connect(service.as_str()).await;
        let changed = db
            .execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("the statement runs")
            .rows_affected();
        db.close().await.expect("close");
        changed
    }

    /// Rows of a table of `service`'s own database that match an SQL condition.
    pub async fn count_service_rows(
        &self,
        service: ServiceName,
        table: &str,
        condition: &str,
    ) -> i64 {
        let db = self.database.connect(service.as_str()).await;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        let n: i64 = row.try_get("", "n").expect("a count");
        db.close().await.expect("close");
        n
    }
}

impl Drop for TestSuite {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Campaign `id` as the supervisor `sofia` reads it.
pub async fn campaign(sofia: &mut Admin, id: &str) -> queue_pb::Campaign {
    sofia
        .list_campaigns(pb::ListCampaignsRequest::default())
        .await
        .expect("ListCampaigns")
        .into_inner()
        .campaigns
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("campaign {id}"))
}

/// [`TestSuite::configure`] through any supervisor's admin client (of a
/// suite in this process or a child process).
pub async fn configure(
    sofia: &mut Admin,
    campaign: queue_pb::Campaign,
    number: Option<&str>,
    agents: &[(&str, u32)],
) {
    let id = campaign.id.clone();
    sofia
        .save_campaign(pb::SaveCampaignRequest {
            campaign: Some(campaign),
        })
        .await
        .expect("SaveCampaign");
    if let Some(number) = number {
        sofia
            .save_business_number(pb::SaveBusinessNumberRequest {
                business_number: Some(queue_pb::BusinessNumber {
                    phone_number_id: number.into(),
                    display_phone_number: number.into(),
                    campaign_id: id.clone(),
                    active: true,
                }),
            })
            .await
            .expect("SaveBusinessNumber");
    }
    for (agent, capacity) in agents {
        sofia
            .save_agent(pb::SaveAgentRequest {
                agent: Some(queue_pb::AgentSettings {
                    id: (*agent).into(),
                    name: format!("Agent {agent}"),
                    campaigns: vec![queue_pb::AgentCampaign {
                        campaign_id: id.clone(),
                        capacity: *capacity,
                    }],
                }),
            })
            .await
            .expect("SaveAgent");
    }
}

/// The fields named in a status's `google.rpc.BadRequest` field violations.
pub fn violations(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// What messaging tells the queue when `customer` (name = number) writes
/// to `number`; `message_id` must be unique, as WhatsApp's are.
pub fn inbound(
    number: &str,
    customer: &str,
    message_id: String,
) -> queue_pb::RecordInboundMessageRequest {
    queue_pb::RecordInboundMessageRequest {
        business_phone_number_id: number.into(),
        customer: Some(common::Customer {
            id: customer.into(),
            wa_id: customer.into(),
            user_id: String::new(),
            name: format!("Cliente {customer}"),
        }),
        message_id,
        preview: "Hola".into(),
        time: None,
    }
}

/// `X-Hub-Signature-256` of `body` under the test app secret.
pub fn sign(body: &[u8]) -> String {
    webhook::signature(APP_SECRET, body)
}

/// A fixture's raw bytes, exactly as Meta sent them.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/whatsapp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
