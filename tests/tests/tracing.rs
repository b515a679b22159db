//! One agent action is one trace: the gateway's span for an OpenAttention
//! and the spans of every service call it fans out to share one trace id,
//! through the W3C `traceparent` each call carries. Spans are collected in
//! memory by the tracer this test installs (its own process: the global
//! subscriber is this test's alone).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use atenciones_proto::gateway::v1 as pb;
use atenciones_tests::{Backend, TestDatabase, TestSuite, text_webhook};

/// The `path` attribute of a call's span.
fn path(span: &SpanData) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "path")
        .map(|kv| kv.value.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spans_of_one_open_share_a_trace_id() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let db = TestDatabase::create(Backend::Sqlite).await.expect("SQLite");
    let suite = TestSuite::start(db).await;
    let inbound = text_webhook("1122334455667", "5491100000077", "Tina", "wamid.t1", "Hola");
    let id = suite.queued_attention(&inbound, "ana").await;
    suite
        .desk("ana")
        .await
        .open_attention(pb::OpenAttentionRequest {
            attention_id: id,
            message_page_size: 20,
        })
        .await
        .expect("open");
    suite.stop().await;
    provider.force_flush().expect("flush");

    let spans = exporter.get_finished_spans().expect("spans");
    let open = spans
        .iter()
        .find(|s| path(s) == "/atenciones.gateway.v1.AgentDeskService/OpenAttention")
        .expect("the gateway's span of the open");
    let trace = open.span_context.trace_id();
    let in_trace: Vec<String> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .map(path)
        .collect();
    for call in [
        "/atenciones.queue.v1.QueueService/OpenAttention",
        "/atenciones.messaging.v1.MessagingService/ListMessages",
        "/atenciones.messaging.v1.MessagingService/GetWindow",
        "/atenciones.form.v1.FormService/GetForm",
        "/atenciones.form.v1.FormService/GetDraft",
        "/atenciones.history.v1.HistoryService/ListCustomerAttentions",
    ] {
        assert!(
            in_trace.iter().any(|p| p == call),
            "{call} in the open's trace: {in_trace:?}"
        );
    }
    // Other actions are other traces.
    let other = spans
        .iter()
        .find(|s| path(s) == "/atenciones.gateway.v1.AgentDeskService/ListAttentions")
        .expect("the earlier list");
    assert_ne!(other.span_context.trace_id(), trace);
}
