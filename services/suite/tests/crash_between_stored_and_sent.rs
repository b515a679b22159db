//! A crash between "stored" and "sent": the suite runs as a child process,
//! WhatsApp holds its first send open, the process is killed (SIGKILL: no
//! shutdown, nothing flushed) and started again on the same data. The
//! restarted suite sends the message once and it ends ACCEPTED.

use atenciones_test_support::services;
use std::time::{Duration, Instant};

use atenciones_proto::common::v1::Customer;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::messaging::v1::{MessageStatus, Recipient, SendTemplateRequest};
use atenciones_runtime::grpc::Channel;
use atenciones_test_support::{
    Answer, CloudApi, SuiteProcess, TestDatabase, on_both_databases, suite_env,
};
use sea_orm::{ConnectionTrait, Statement};

/// The binary `cargo test` built for this crate's tests.
const ATENCIONES: &str = env!("CARGO_BIN_EXE_atenciones");
const KEY: &str = "crash-1";

async fn messaging(suite: &SuiteProcess) -> MessagingServiceClient<Channel> {
    MessagingServiceClient::new(services::service_channel(&suite.url("messaging")))
}

/// The stored status of the message with the test's key, read straight from
/// the messaging database (the service is dead when this matters).
async fn stored_status(db: &TestDatabase) -> Option<String> {
    let connection = db.connect("messaging").await;
    let row = connection
        .query_one_raw(Statement::from_string(
            connection.get_database_backend(),
            format!("SELECT status FROM messaging_messages WHERE idempotency_key = '{KEY}'"),
        ))
        .await
        .expect("query");
    let status = row.map(|row| row.try_get::<String>("", "status").expect("status"));
    connection.close().await.expect("close");
    status
}

async fn a_send_cut_by_a_crash_goes_out_once_after_the_restart(db: TestDatabase) {
    let cloud_api = CloudApi::start().await;
    let mut env = suite_env(&db, &cloud_api);
    // A try may take 3 s; whoever holds a send keeps it 4 s, so the restarted
    // suite takes the orphaned send over within seconds.
    env.insert(
        "ATENCIONES_WHATSAPP__REQUEST_TIMEOUT_MS".into(),
        "3000".into(),
    );
    env.insert("ATENCIONES_WHATSAPP__SEND_LEASE_MS".into(), "4000".into());
    cloud_api.script(&[Answer::Hold]);

    let suite = SuiteProcess::start(ATENCIONES.as_ref(), &env).await;
    // A template needs no 24-hour window: no customer message to set up.
    let request = SendTemplateRequest {
        recipient: Some(Recipient {
            attention_id: uuid::Uuid::new_v4().to_string(),
            business_phone_number_id: "1122334455667".into(),
            customer: Some(Customer {
                id: "972987654321".into(),
                wa_id: "972987654321".into(),
                ..Default::default()
            }),
            agent_id: "ana".into(),
        }),
        name: "bienvenida".into(),
        language: "es".into(),
        body_parameters: vec!["Ana".into()],
        reply_to_message_id: String::new(),
        idempotency_key: KEY.into(),
        validate_only: false,
    };
    let mut client = messaging(&suite).await;
    let call = {
        let request = request.clone();
        tokio::spawn(async move { client.send_template(request).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while cloud_api.sent().is_empty() {
        assert!(Instant::now() < deadline, "the send reached WhatsApp");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Stored, its first try at WhatsApp and unanswered: kill it now.
    suite.kill().await;
    assert_eq!(stored_status(&db).await.as_deref(), Some("pending"));
    let cut = call.await.expect("joined");
    assert!(cut.is_err(), "the caller saw the crash: {cut:?}");

    let restarted = SuiteProcess::start(ATENCIONES.as_ref(), &env).await;
    let mut client = messaging(&restarted).await;
    // The agent's screen retries with the same key until it is through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let message = loop {
        let message = client
            .send_template(request.clone())
            .await
            .expect("the same message")
            .into_inner()
            .message
            .expect("message");
        if message.status() != MessageStatus::Pending {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "still pending; logs: {:#?}",
            restarted.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(message.status(), MessageStatus::Accepted);

    let tries = cloud_api.sent_for(&message.id);
    let answers: Vec<_> = tries.iter().map(|t| t.status).collect();
    assert_eq!(
        answers,
        [None, Some(200)],
        "the cut try never answered, then exactly one send"
    );
    assert_eq!(cloud_api.accepted().len(), 1, "one message sent in all");
    assert_eq!(message.wamid, "wamid.sent.2");
    restarted.kill().await;
}
on_both_databases!(a_send_cut_by_a_crash_goes_out_once_after_the_restart);
