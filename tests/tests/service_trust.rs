//! Services trust only the deployment: a call without the internal
//! credential, or signed with another secret, is UNAUTHENTICATED on every
//! service; a call signed for a person may act only as that person; health
//! checks stay open for probes.

use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::history::v1 as history_pb;
use atenciones_proto::history::v1::history_service_client::HistoryServiceClient;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::caller::{Caller, Keys, Role};
use atenciones_runtime::grpc;
use atenciones_runtime::settings::InternalSettings;
use atenciones_test_support::services::{channel_as, service_channel};
use atenciones_tests::{TestDatabase, TestSuite, on_both_databases};

/// The code a call ended with.
fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.map_or_else(|status| status.code(), |_| Code::Ok)
}

/// One call to each service, over `channel`: the code each answered.
async fn codes<C>(suite: &TestSuite, channel: impl Fn(String) -> C) -> [Code; 4]
where
    C: tonic::client::GrpcService<tonic::body::Body> + Clone,
    C::Error: Into<tonic::codegen::StdError>,
    C::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let url =
        |address: Option<std::net::SocketAddr>| format!("http://{}", address.expect("started"));
    let a = &suite.addresses;
    [
        code(
            QueueServiceClient::new(channel(url(a.queue)))
                .list_campaigns(queue_pb::ListCampaignsRequest {
                    actor_id: "sofia".into(),
                })
                .await,
        ),
        code(
            MessagingServiceClient::new(channel(url(a.messaging)))
                .mark_attention_read(messaging_pb::MarkAttentionReadRequest {
                    attention_id: uuid::Uuid::new_v4().to_string(),
                })
                .await,
        ),
        code(
            FormServiceClient::new(channel(url(a.form)))
                .get_submission(form_pb::GetSubmissionRequest {
                    attention_id: uuid::Uuid::new_v4().to_string(),
                })
                .await,
        ),
        code(
            HistoryServiceClient::new(channel(url(a.history)))
                .get_attention_record(history_pb::GetAttentionRecordRequest {
                    attention_id: uuid::Uuid::new_v4().to_string(),
                })
                .await,
        ),
    ]
}

async fn services_refuse_callers_without_the_internal_credential(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let unsigned = |url: String| Endpoint::from_shared(url).expect("url").connect_lazy();
    assert_eq!(codes(&suite, unsigned).await, [Code::Unauthenticated; 4]);

    let forged = Keys::new(&InternalSettings {
        secret: "not-the-deployment's".into(),
        ..Default::default()
    });
    let forged = |url: String| {
        grpc::channel(&url, forged.clone(), Caller::service("intruder")).expect("channel")
    };
    assert_eq!(codes(&suite, forged).await, [Code::Unauthenticated; 4]);

    // Signed: the calls reach the services (answering as they would).
    let signed = |url: String| service_channel(&url);
    let answered = codes(&suite, signed).await;
    assert!(
        !answered.contains(&Code::Unauthenticated),
        "signed calls are served: {answered:?}"
    );

    // Probes carry no credential.
    let queue = format!("http://{}", suite.addresses.queue.expect("queue"));
    let health = HealthClient::new(Endpoint::from_shared(queue).expect("url").connect_lazy())
        .check(HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "health is open: {health:?}");
    suite.stop().await;
}

on_both_databases!(services_refuse_callers_without_the_internal_credential);

async fn a_person_signed_by_the_gateway_acts_only_as_themselves(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let queue = format!("http://{}", suite.addresses.queue.expect("queue"));
    let as_ana = channel_as(
        &queue,
        Caller {
            subject: "ana".into(),
            role: Role::Agent,
        },
    );
    let mut client = QueueServiceClient::new(as_ana);
    let own = client
        .list_attentions(queue_pb::ListAttentionsRequest {
            agent_id: "ana".into(),
            ..Default::default()
        })
        .await;
    assert!(own.is_ok(), "ana lists her own attentions: {own:?}");
    let other = client
        .list_attentions(queue_pb::ListAttentionsRequest {
            agent_id: "bruno".into(),
            ..Default::default()
        })
        .await
        .expect_err("ana is not bruno");
    assert_eq!(other.code(), Code::PermissionDenied);
    assert_eq!(atenciones_tests::violations(&other), ["agent_id"]);
    suite.stop().await;
}

on_both_databases!(a_person_signed_by_the_gateway_acts_only_as_themselves);

/// A CA and a certificate it signed for 127.0.0.1 and localhost: (chain,
/// key, CA), PEM.
fn certificates() -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().expect("key"))
        .expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let services =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("signed");
    (services.pem(), key.serialize_pem(), ca.pem())
}

/// With certificates in the settings, the services serve only TLS and every
/// process calls them over it: a whole attention (webhook, routing, agent,
/// form, history) works, and a plain-text call reaches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_talk_over_tls_when_given_certificates() {
    let (chain, key, ca) = certificates();
    let db = TestDatabase::create(atenciones_tests::Backend::Sqlite)
        .await
        .expect("SQLite always runs");
    let suite = TestSuite::start_with(db, |s| {
        s.internal.tls_cert_pem = chain;
        s.internal.tls_key_pem = key;
        s.internal.tls_ca_pem = ca;
    })
    .await;
    assert!(
        suite
            .settings
            .service_url(atenciones_runtime::ServiceName::Queue)
            .starts_with("https://")
    );
    let hello = atenciones_tests::text_webhook(
        "1122334455667",
        "5491100000077",
        "Tania",
        "wamid.tls.1",
        "Hola",
    );
    suite.serve_and_finish(&hello, "ana").await;

    for address in [
        suite.addresses.queue,
        suite.addresses.messaging,
        suite.addresses.form,
        suite.addresses.history,
    ] {
        let plain = Endpoint::from_shared(format!("http://{}", address.expect("started")))
            .expect("url")
            .connect()
            .await;
        let answered = match plain {
            Ok(channel) => HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .is_ok(),
            Err(_) => false,
        };
        assert!(!answered, "{address:?} answered plain text");
    }
    suite.stop().await;
}
