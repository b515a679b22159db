//! Wiring: database, clients, media storage, the gRPC server, the webhook
//! server, the inbox processor, the background sender and the media worker,
//! started and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use atenciones_proto::messaging::v1::messaging_service_server::MessagingServiceServer;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::grpc;
use atenciones_runtime::settings::InternalSettings;
use atenciones_runtime::{ServiceName, Settings, database};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::graph::Graph;
use crate::grpc::MessagingGrpc;
use crate::media::{self, Media, Storage};
use crate::messaging::Messaging;
use crate::processor::Processor;
use crate::sender::{RetryPolicy, Sender};
use crate::webhook::{self, WebhookState};
use crate::window_watch::WindowWatch;

pub struct Application {
    grpc: TcpListener,
    address: SocketAddr,
    webhook: TcpListener,
    webhook_address: SocketAddr,
    service: MessagingGrpc,
    router: axum::Router,
    processor: Processor,
    media: Media,
    sender: Sender,
    window_watch: WindowWatch,
    /// Verifies the callers of its gRPC calls.
    internal: InternalSettings,
}

impl Application {
    /// Connects and migrates the database, builds the clients, the gRPC
    /// service and the webhook router on the given (already bound) listeners.
    pub async fn build(
        settings: &Settings,
        grpc: TcpListener,
        webhook: TcpListener,
    ) -> anyhow::Result<Self> {
        let address = grpc.local_addr()?;
        let webhook_address = webhook.local_addr()?;
        let db = database::connect(
            &settings.database_url(ServiceName::Messaging),
            &settings.database,
        )
        .await
        .context("connecting the messaging database")?;
        database::prepare::<atenciones_migrations::messaging::Migrator>(
            &db,
            settings.database.migrate,
        )
        .await
        .context("preparing the messaging schema")?;
        let queue = QueueServiceClient::new(
            grpc::service_channel(settings, "messaging", ServiceName::Queue)
                .context("queue service URL")?,
        );
        let graph =
            Arc::new(Graph::new(&settings.whatsapp).context("building the Cloud API client")?);
        let policy = RetryPolicy::new(&settings.whatsapp).map_err(anyhow::Error::msg)?;
        let sender = Sender::new(db.clone(), graph.clone(), policy);
        let storage = Storage::open(&settings.media_store(), &settings.media.store_options)
            .context("opening the media store")?;
        let media = Media::new(
            db.clone(),
            storage,
            Graph::new(&settings.whatsapp).context("building the media Graph client")?,
            media::Limits::from(&settings.media),
        );
        let wake = Arc::new(Notify::new());
        let messaging = Arc::new(Messaging::new(db.clone(), graph, sender.clone()));
        if settings.demo {
            let numbers = atenciones_domain::demo::NUMBERS.map(|(id, _, _)| id);
            messaging
                .templates()
                .seed_demo(&numbers)
                .await
                .context("registering the demo templates")?;
        }
        let router = webhook::router(
            WebhookState {
                db: db.clone(),
                app_secret: settings.whatsapp.app_secret.as_str().into(),
                verify_token: settings.whatsapp.verify_token.as_str().into(),
                wake: wake.clone(),
            },
            settings.messaging.webhook_max_in_flight,
        );
        if settings.whatsapp.app_secret.is_empty() {
            tracing::warn!(
                "whatsapp.app_secret is empty: every webhook notification will be refused"
            );
        }
        Ok(Self {
            internal: settings.internal.clone(),
            grpc,
            address,
            webhook,
            webhook_address,
            service: MessagingGrpc::new(messaging.clone(), media.clone()),
            router,
            window_watch: WindowWatch {
                db: db.clone(),
                queue: queue.clone(),
                warning: settings.messaging.window_warning(),
                every: settings.messaging.window_watch(),
            },
            processor: Processor::new(db, queue, messaging, wake),
            media,
            sender,
        })
    }

    /// The gRPC address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The webhook (HTTP) address; the path is `/webhooks/whatsapp`.
    pub fn webhook_address(&self) -> SocketAddr {
        self.webhook_address
    }

    /// Serves gRPC and the webhook and runs the inbox processor and the sender until
    /// `shutdown` is cancelled (or one of them fails, which stops the others).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // build() has connected and migrated the database: ready.
        let routes = grpc::routes(MessagingServiceServer::new(self.service)).await;

        let stop = shutdown.child_token();
        let grpc_server = {
            let stop = stop.clone();
            async move {
                let result = grpc::serve(self.grpc, routes, &self.internal, stop.clone())
                    .await
                    .context("gRPC server");
                stop.cancel();
                result
            }
        };
        let webhook_server = {
            let stop = stop.clone();
            async move {
                let result = axum::serve(self.webhook, self.router)
                    .with_graceful_shutdown(stop.clone().cancelled_owned())
                    .await
                    .context("webhook server");
                stop.cancel();
                result
            }
        };
        // Its own task: parsing and database work must not delay accepting connections.
        let processor = tokio::spawn(self.processor.run(stop.clone()));
        // Retries and sends left behind by a crash; its own task for the same reason.
        let sender = tokio::spawn(self.sender.run(stop.clone()));
        // Downloads must not wait for webhook processing, nor slow it down.
        let media_worker = tokio::spawn(media::run_worker(self.media, stop.clone()));
        // Warnings of windows about to close, for the agents' screens.
        let window_watch = tokio::spawn(self.window_watch.run(stop.clone()));
        let (grpc_result, webhook_result) = tokio::join!(grpc_server, webhook_server);
        stop.cancel();
        processor.await.context("inbox processor")?;
        sender.await.context("sender")?;
        media_worker.await.context("media worker")?;
        window_watch.await.context("window watch")?;
        grpc_result?;
        webhook_result?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use atenciones_proto::common::v1::Customer;
    use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
    use atenciones_proto::messaging::v1::messaging_service_server::SERVICE_NAME;
    use atenciones_proto::messaging::v1::{
        GetWindowRequest, ListMessagesRequest, MessageStatus, Recipient, SaveTemplateRequest,
        SendTemplateRequest, SendTextRequest, Template, TemplateCategory, TemplateStatus,
    };
    use atenciones_test_support::{Answer, CloudApi, TestDatabase, on_both_databases};
    use tonic::Code;
    use tonic_health::pb::health_check_response::ServingStatus as HealthStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_types::StatusExt;

    use super::*;
    use crate::signature;
    use crate::testkit::{FakeQueue, SECRET, VERIFY_TOKEN, whatsapp_settings};

    const PYWA_NUMBER: &str = "277321005464405";

    async fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.expect("bind")
    }

    async fn the_service_receives_webhooks_routes_them_and_sends_replies(db: TestDatabase) {
        let stop_fakes = CancellationToken::new();
        let queue = FakeQueue::default();
        queue.state().bound.insert(PYWA_NUMBER.to_owned());
        let graph = CloudApi::start().await;
        let mut settings = Settings::load(None).expect("settings");
        settings.data_dir = db.data_dir().to_path_buf();
        settings.messaging.database_url = db.url("messaging");
        settings.database.migrate = true;
        settings.queue.url = queue.serve(stop_fakes.clone()).await;
        settings.whatsapp = whatsapp_settings(&graph.base_url());

        let app = Application::build(&settings, listener().await, listener().await)
            .await
            .expect("build");
        let grpc_url = format!("http://{}", app.address());
        let webhook_url = format!("http://{}{}", app.webhook_address(), webhook::PATH);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(app.run(shutdown.clone()));

        let channel = atenciones_test_support::services::service_channel(&grpc_url);
        let mut health = HealthClient::new(channel.clone());
        let mut client = MessagingServiceClient::new(channel);
        let serving = health
            .check(HealthCheckRequest {
                service: SERVICE_NAME.to_owned(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(serving.status, HealthStatus::Serving as i32);

        let http = reqwest::Client::new();
        let challenge = http
            .get(format!(
                "{webhook_url}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42"
            ))
            .send()
            .await
            .expect("verify");
        assert_eq!(challenge.status(), 200);
        assert_eq!(challenge.text().await.expect("body"), "42");

        // Meta's notification, signed as Meta signs it.
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/whatsapp/signed_inbound_text_pywa.json"
        ))
        .expect("fixture");
        let unsigned = http
            .post(&webhook_url)
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(unsigned.status(), 401);
        let too_big = http
            .post(&webhook_url)
            .header("X-Hub-Signature-256", "sha256=00")
            .body(vec![b' '; webhook::MAX_BODY_BYTES + 1])
            .send()
            .await
            .expect("post");
        assert_eq!(too_big.status(), 413);
        let accepted = http
            .post(&webhook_url)
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(accepted.status(), 200);

        // The processor routes it to the queue's attention.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let attention = loop {
            let found = queue.state().attentions.values().next().copied();
            if let Some(attention) = found {
                break attention;
            }
            assert!(tokio::time::Instant::now() < deadline, "message routed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut listed = Vec::new();
        while listed.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "message listed");
            listed = client
                .list_messages(ListMessagesRequest {
                    attention_id: attention.to_string(),
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner()
                .messages;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(listed[0].text, "Hey there! I am using PyWa.");
        assert_eq!(listed[0].status, MessageStatus::Received as i32);
        assert_eq!(
            listed[0].customer.as_ref().map(|c| c.wa_id.as_str()),
            Some("972544401243")
        );

        // The agent answers (the customer wrote just now: the window is open).
        let reply = SendTextRequest {
            recipient: Some(Recipient {
                attention_id: attention.to_string(),
                business_phone_number_id: PYWA_NUMBER.to_owned(),
                customer: listed[0].customer.clone(),
                agent_id: "agent-1".to_owned(),
            }),
            text: "¡Hola! ¿En qué te ayudo?".to_owned(),
            preview_url: false,
            reply_to_message_id: listed[0].id.clone(),
            idempotency_key: "reply-1".to_owned(),
        };
        // PyWa's message is from 2024: its window closed long ago.
        let window_request = GetWindowRequest {
            business_phone_number_id: PYWA_NUMBER.to_owned(),
            customer_id: "972544401243".to_owned(),
        };
        let window = client
            .get_window(window_request.clone())
            .await
            .expect("window")
            .into_inner()
            .window
            .expect("window");
        assert!(!window.open);
        assert_eq!(
            window.expire_time.map(|t| t.seconds),
            Some(1_730_231_903 + 24 * 3600)
        );
        let closed = client
            .send_text(reply.clone())
            .await
            .expect_err("window closed");
        assert_eq!(closed.code(), Code::FailedPrecondition);
        assert!(graph.sent().is_empty());

        // The customer writes again (a few seconds ago): the window opens.
        let now = chrono::Utc::now().timestamp() - 5;
        let fresh = serde_json::json!({ "object": "whatsapp_business_account", "entry": [{
            "id": "1", "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "phone_number_id": PYWA_NUMBER },
                "contacts": [{ "wa_id": "972544401243", "profile": { "name": "PyWa Tests" } }],
                "messages": [{ "from": "972544401243", "id": "wamid.fresh",
                    "timestamp": now.to_string(), "type": "text", "text": { "body": "¿Hola?" } }]
            }}]
        }]})
        .to_string()
        .into_bytes();
        let accepted = http
            .post(&webhook_url)
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &fresh),
            )
            .body(fresh)
            .send()
            .await
            .expect("post");
        assert_eq!(accepted.status(), 200);
        while !client
            .get_window(window_request.clone())
            .await
            .expect("window")
            .into_inner()
            .window
            .is_some_and(|w| w.open)
        {
            assert!(tokio::time::Instant::now() < deadline, "window opened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = client
            .send_text(reply.clone())
            .await
            .expect("sent")
            .into_inner()
            .message
            .expect("message");
        assert_eq!(sent.status, MessageStatus::Accepted as i32);
        assert_eq!(sent.wamid, "wamid.sent.1");
        assert_eq!(sent.agent_id, "agent-1");
        assert_eq!(
            sent.reply_to.as_ref().map(|r| r.wamid.as_str()),
            Some(listed[0].wamid.as_str())
        );
        let again = client
            .send_text(reply.clone())
            .await
            .expect("replayed")
            .into_inner()
            .message;
        assert_eq!(again.as_ref(), Some(&sent));
        assert_eq!(graph.sent().len(), 1);

        let page = client
            .list_messages(ListMessagesRequest {
                attention_id: attention.to_string(),
                page_size: 1,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert_eq!(page.messages[0].id, sent.id, "newest first");
        assert!(!page.next_page_token.is_empty());

        let invalid = client
            .send_text(SendTextRequest {
                text: String::new(),
                recipient: Some(Recipient {
                    customer: Some(Customer::default()),
                    ..reply.recipient.clone().unwrap_or_default()
                }),
                ..reply.clone()
            })
            .await
            .expect_err("invalid");
        assert_eq!(invalid.code(), Code::InvalidArgument);
        let fields: Vec<String> = invalid
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["recipient.customer.wa_id", "text"]);

        graph.answer(Answer::Refuse);
        let refused = client
            .send_text(SendTextRequest {
                idempotency_key: "reply-2".to_owned(),
                ..reply.clone()
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(
            refused.message().contains("131047"),
            "{}",
            refused.message()
        );
        // 131047 closed the window: free text is refused before WhatsApp.
        let closed = client
            .send_text(SendTextRequest {
                idempotency_key: "reply-3".to_owned(),
                ..reply.clone()
            })
            .await
            .expect_err("window closed");
        assert_eq!(closed.code(), Code::FailedPrecondition);
        assert_eq!(
            closed
                .get_error_details()
                .error_info()
                .map(|i| i.reason.as_str()),
            Some("WINDOW_CLOSED")
        );
        assert_eq!(graph.sent().len(), 2);

        // A template still goes (once registered for the number); WhatsApp
        // being down leaves it pending.
        let number = reply
            .recipient
            .as_ref()
            .map(|r| r.business_phone_number_id.clone())
            .unwrap_or_default();
        client
            .save_template(SaveTemplateRequest {
                template: Some(Template {
                    business_phone_number_id: number,
                    name: "seguimiento".to_owned(),
                    language: "es".to_owned(),
                    category: TemplateCategory::Utility.into(),
                    status: TemplateStatus::Approved.into(),
                    body: "Hola {{1}}, ¿pudimos ayudarle?".to_owned(),
                    ..Default::default()
                }),
            })
            .await
            .expect("SaveTemplate");
        graph.answer(Answer::Fail);
        let pending = client
            .send_template(SendTemplateRequest {
                recipient: reply.recipient.clone(),
                name: "seguimiento".to_owned(),
                language: "es".to_owned(),
                body_parameters: vec!["Ana".to_owned()],
                reply_to_message_id: String::new(),
                idempotency_key: "reply-4".to_owned(),
                validate_only: false,
            })
            .await
            .expect("pending")
            .into_inner()
            .message
            .expect("message");
        assert_eq!(pending.status, MessageStatus::Pending as i32);

        let bad_token = client
            .list_messages(ListMessagesRequest {
                attention_id: attention.to_string(),
                page_token: "nope".to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("bad token");
        assert_eq!(bad_token.code(), Code::InvalidArgument);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("stops on shutdown")
            .expect("task")
            .expect("clean exit");
        stop_fakes.cancel();
    }
    on_both_databases!(the_service_receives_webhooks_routes_them_and_sends_replies);
}
