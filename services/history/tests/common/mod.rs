//! The history service started for a test, and helpers its tests share.
// Each test file uses its own subset of these.
#![allow(dead_code)]

use atenciones_history::Application;
use atenciones_proto::common::v1::{Customer, Direction};
use atenciones_proto::form::v1 as form;
use atenciones_proto::history::v1::{self as pb, history_service_client::HistoryServiceClient};
use atenciones_proto::messaging::v1::{Message, MessageDirection, MessageError, MessageStatus};
use atenciones_runtime::grpc::Channel;
use atenciones_runtime::{CancellationToken, Settings};
use atenciones_test_support::TestDatabase;
use atenciones_test_support::services;
use prost_types::Timestamp;
use tokio::net::TcpListener;
use tonic::Code;
use tonic_types::StatusExt;

/// The history service, serving on port 0 from its own database.
pub struct Service {
    pub client: HistoryServiceClient<Channel>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub database: TestDatabase,
}

impl Service {
    pub async fn start(database: TestDatabase) -> Self {
        let mut settings = Settings::load(None).expect("settings");
        settings.data_dir = database.data_dir().to_path_buf();
        settings.demo = false;
        settings.database.migrate = true;
        settings.history.database_url = database.url("history");
        // Retention tests wait for a sweep.
        settings.history.retention_sweep_seconds = 1;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = Application::build(&settings, listener)
            .await
            .expect("build");
        let url = format!("http://{}", app.address());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run(shutdown.clone()));
        let client = HistoryServiceClient::new(services::service_channel(&url));
        Self {
            client,
            shutdown,
            server,
            database,
        }
    }

    /// Stops the server and checks it stopped cleanly; then drops its database.
    pub async fn stop(self) {
        self.halt().await;
    }

    /// Stops the server and starts it again on the same database.
    pub async fn restart(self) -> Self {
        let database = self.halt().await;
        Self::start(database).await
    }

    async fn halt(self) -> TestDatabase {
        self.shutdown.cancel();
        self.server.await.expect("server task").expect("server ran");
        self.database
    }
}

pub fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

pub fn violations(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("bad request details");
    bad_request
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

pub fn customer(id: &str) -> Customer {
    Customer {
        id: id.into(),
        wa_id: id.into(),
        user_id: String::new(),
        name: format!("Cliente {id}"),
    }
}

pub fn message(n: i64, direction: MessageDirection, status: MessageStatus, text: &str) -> Message {
    Message {
        id: format!("m-{n}"),
        attention_id: String::new(),
        wamid: format!("wamid.{n}"),
        business_phone_number_id: String::new(),
        customer: None,
        direction: direction.into(),
        r#type: "text".into(),
        text: text.into(),
        status: status.into(),
        error: None,
        time: at(1_764_115_200 + n, 0),
        agent_id: if direction == MessageDirection::Outbound {
            "ana".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

pub fn submission(attention_id: &str) -> form::Submission {
    form::Submission {
        attention_id: attention_id.into(),
        form_id: "4f1c2d9e-0000-4000-8000-000000000001".into(),
        answers: vec![form::Answer {
            key: "motivo".into(),
            label: "Motivo".into(),
            value: Some(form::FieldValue {
                kind: Some(form::field_value::Kind::Choice("compra".into())),
            }),
            display_value: "Compra".into(),
        }],
        submit_time: at(1_764_115_300, 0),
        disposition: vec!["contactado".into(), "venta".into()],
    }
}

/// A finished attention of `customer_id` in `campaign`, finished at `finish`.
pub fn record(
    id: &str,
    customer_id: &str,
    campaign: &str,
    finish: Option<Timestamp>,
) -> pb::AttentionRecord {
    let mut failed = message(
        2,
        MessageDirection::Outbound,
        MessageStatus::Failed,
        "¿Sigue ahí?",
    );
    failed.error = Some(MessageError {
        code: 131_047,
        title: "Re-engagement message".into(),
        detail: "More than 24 hours have passed".into(),
    });
    pb::AttentionRecord {
        attention_id: id.into(),
        campaign_id: campaign.into(),
        campaign_name: format!("Campaña {campaign}"),
        business_phone_number_id: "1122334455667".into(),
        customer: Some(customer(customer_id)),
        direction: Direction::Inbound.into(),
        agent_id: "ana".into(),
        create_time: at(1_764_115_000, 0),
        open_time: at(1_764_115_100, 500_000_000),
        finish_time: finish,
        transcript: vec![
            message(
                1,
                MessageDirection::Inbound,
                MessageStatus::Received,
                "Hola, quiero comprar",
            ),
            failed,
            message(
                3,
                MessageDirection::Outbound,
                MessageStatus::Read,
                "Listo, gracias",
            ),
        ],
        form: Some(submission(id)),
        message_count: 0,
        agent_ids: vec!["ana".into()],
        ..Default::default()
    }
}

pub async fn store(
    client: &mut HistoryServiceClient<Channel>,
    record: pb::AttentionRecord,
) -> bool {
    client
        .record_attention(pb::RecordAttentionRequest {
            record: Some(record),
        })
        .await
        .expect("recorded")
        .into_inner()
        .created
}
