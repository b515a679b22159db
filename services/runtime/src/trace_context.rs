//! W3C trace context across services, so one agent action is one trace: every
//! call a service makes carries the current span's `traceparent`, and every
//! call a server takes starts its span as a child of the caller's. (Spans
//! have trace ids only when a collector is configured; otherwise this costs
//! an empty header check.)

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of one incoming call: named by its path, carrying the request
/// id when the caller sent one, and continuing the caller's trace.
pub fn call_span<B>(request: &http::Request<B>) -> Span {
    let headers = request.headers();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!("grpc", path = %request.uri().path(), request_id = %request_id);
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // Without a caller's context (or without OpenTelemetry) this is a root span.
    let _ = span.set_parent(parent);
    span
}

/// Puts the current span's context on an outgoing call's `headers`.
pub fn inject(headers: &mut http::HeaderMap) {
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
