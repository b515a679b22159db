//! Prometheus metrics of a running suite, scraped from its metrics port:
//! calls by RPC and code, webhooks by outcome, messages by direction and
//! type, the queues' gauges, and the live streams connected. One test in
//! its own process: the recorder is global to a process.

use atenciones_proto::gateway::v1 as pb;
use atenciones_tests::{TestDatabase, TestSuite, eventually, text_webhook};

const VENTAS_NUMBER: &str = "1122334455667";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_shows_its_numbers_on_the_metrics_port() {
    let db = TestDatabase::create(atenciones_tests::Backend::Sqlite)
        .await
        .expect("SQLite always runs");
    let suite = TestSuite::start_with(db, |s| {
        s.telemetry.metrics_listen = "127.0.0.1:0".into();
    })
    .await;
    let url = format!(
        "http://{}/metrics",
        suite.addresses.metrics.expect("metrics served")
    );

    let hello = text_webhook(VENTAS_NUMBER, "5491100000042", "Mora", "wamid.m1", "Hola");
    assert_eq!(suite.post_webhook(&hello).await.status(), 200);
    let forged = suite.post_webhook_with_signature(&hello, None).await;
    assert_eq!(forged.status(), 401);
    let _stream = suite
        .desk("ana")
        .await
        .stream_events(pb::StreamEventsRequest::default())
        .await
        .expect("stream")
        .into_inner();
    suite.attentions("ana").await;

    let expected = [
        r#"atenciones_webhooks_total{outcome="accepted"} 1"#,
        r#"atenciones_webhooks_total{outcome="bad_signature"} 1"#,
        r#"atenciones_messages_total{direction="inbound",type="text",outcome="received"} 1"#,
        r#"atenciones_grpc_requests_total{service="atenciones.gateway.v1.AgentDeskService",method="ListAttentions",code="Ok"}"#,
        r#"atenciones_grpc_requests_total{service="atenciones.queue.v1.QueueService",method="RecordInboundMessage",code="Ok"}"#,
        r#"atenciones_grpc_request_duration_seconds_bucket{service="atenciones.queue.v1.QueueService",method="ListAttentions""#,
        r#"atenciones_attentions{campaign="ventas",state="queued"} 1"#,
        r#"atenciones_queue_longest_wait_seconds{campaign="ventas"}"#,
        "atenciones_live_streams 1",
    ];
    let http = reqwest::Client::new();
    let text = eventually("every metric", || async {
        let text = http.get(&url).send().await.ok()?.text().await.ok()?;
        expected
            .iter()
            .all(|line| text.contains(line))
            .then_some(text)
    })
    .await;
    // No customer's number or text is a label.
    assert!(
        !text.contains("5491100000042") && !text.contains("Hola"),
        "{text}"
    );
    suite.stop().await;
}
