//! Every server reports health (SERVING once its database is migrated) and
//! answers reflection, so grpcurl and Kubernetes probes work.

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

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
        let mut health = HealthClient::new(channel);
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
    }
    suite.stop().await;
}
