//! Every server reports health (SERVING once its database is migrated) and
//! answers reflection (v1 and the v1alpha grpcurl asks), so grpcurl and
//! Kubernetes probes work.

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

use sea_orm::ConnectionTrait;

use atenciones_tests::{Backend, TestDatabase, TestSuite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_reports_serving() {
    let database = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let suite = TestSuite::start(database).await;
    let a = &suite.addresses;
    let servers = [
        (a.gateway, "atenciones.gateway.v1.AgentDeskService"),
        (a.queue, "atenciones.queue.v1.QueueService"),
        (a.messaging, "atenciones.messaging.v1.MessagingService"),
        (a.form, "atenciones.form.v1.FormService"),
        (a.history, "atenciones.history.v1.HistoryService"),
    ];
    for (address, service) in servers {
        let address = address.expect("started");
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel.clone());
        for name in ["", service] {
            let status = health
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .unwrap_or_else(|e| panic!("{service} health {name:?}: {e}"))
                .into_inner()
                .status();
            assert_eq!(status, ServingStatus::Serving, "{service} {name:?}");
        }
        let mut advertised = reflected_services(channel).await;
        advertised.sort();
        let mut expected = vec!["grpc.health.v1.Health".to_owned(), service.to_owned()];
        expected.sort();
        assert_eq!(advertised, expected, "reflection on {service}");
    }
    suite.stop().await;
}

/// With `database.migrate` off (Kubernetes), a service waits for the
/// migration job before it serves, reading only: it creates no table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_waits_for_the_migration_job() {
    let database = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let mut settings = atenciones_runtime::Settings::load(None).expect("settings");
    settings.data_dir = database.data_dir().to_path_buf();
    settings.demo = false;
    settings.database.migrate = false;
    settings.queue.listen = "127.0.0.1:0".parse().expect("address");
    let shutdown = atenciones_runtime::CancellationToken::new();
    let starting = tokio::spawn(atenciones::start(
        settings.clone(),
        &[atenciones::Role::Queue],
        shutdown.clone(),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(
        !starting.is_finished(),
        "started before the schema was there"
    );
    let db = database.connect("queue").await;
    let tables = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE type = 'table'",
        ))
        .await
        .expect("tables");
    assert!(tables.is_empty(), "waiting created a table");

    atenciones::migrate(&settings, &[atenciones_runtime::ServiceName::Queue])
        .await
        .expect("the migration job");
    let running = tokio::time::timeout(std::time::Duration::from_secs(10), starting)
        .await
        .expect("started once migrated")
        .expect("joined")
        .expect("started");
    let address = running.addresses.queue.expect("queue");
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("health")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    shutdown.cancel();
    running.wait(shutdown).await.expect("stopped");
}

/// The services a server advertises through v1alpha reflection.
async fn reflected_services(channel: Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a response")
        .expect("one message");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}
