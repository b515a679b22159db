//! The gateway's request pipeline, declared in one place. From the outside
//! in, every call goes through:
//!
//! 1. CORS, so browsers on the origins in settings may call (preflights are
//!    answered here);
//! 2. gRPC-Web, translated to gRPC, on the same port as gRPC (HTTP/1.1 and 2);
//! 3. a request id (`x-request-id`: the client's, or a new UUID), returned
//!    on the response and carried by every log line of the call;
//! 4. tracing, one span per call, continuing the caller's W3C trace context
//!    (`traceparent`) when it sends one;
//! 5. internal errors (UNKNOWN, INTERNAL, DATA_LOSS), from the gateway or a
//!    service, logged in full in the call's span and answered without their
//!    message or details: what went wrong inside is not the caller's to see;
//! 6. the caller's credential and [`crate::authorize::TABLE`]: who may call
//!    what (UNAUTHENTICATED / PERMISSION_DENIED before any work is done);
//! 7. load shedding: beyond `max_concurrent_requests` calls in flight the
//!    next is refused at once with RESOURCE_EXHAUSTED instead of waiting in
//!    an unbounded queue;
//! 8. a deadline: `request_timeout_ms`, or the client's `grpc-timeout` if
//!    shorter (tonic's server timeout).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use atenciones_runtime::grpc::load_shedding;
use atenciones_runtime::settings::GatewaySettings;
use atenciones_runtime::trace_context::call_span;

use crate::auth::Authenticator;
use crate::authorize::AuthorizeLayer;

/// Headers a gRPC-Web client sends, and those it must be able to read.
const REQUEST_HEADERS: [&str; 7] = [
    "content-type",
    "authorization",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
    "traceparent",
];
const RESPONSE_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
];

/// CORS for gRPC-Web callers from `origins` (`*`: any).
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let names = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().copied().map(HeaderName::from_static).collect()
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(names(&REQUEST_HEADERS))
        .expose_headers(names(&RESPONSE_HEADERS))
        .max_age(Duration::from_secs(24 * 3600))
}

/// gRPC codes whose message and details describe the inside of the system.
const INTERNAL: [&str; 3] = ["2", "13", "15"];

/// Logs an internal error's message and details and answers with neither.
/// (Errors sent at the start of a response, as every unary call's are;
/// a stream's own ending errors are the gateway's.)
fn hide_internals<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let internal = headers
        .get("grpc-status")
        .and_then(|code| code.to_str().ok())
        .is_some_and(|code| INTERNAL.contains(&code));
    if internal {
        let message = headers.get("grpc-message").cloned();
        tracing::error!(?message, "internal error; the caller is told no more");
        headers.insert("grpc-message", HeaderValue::from_static("internal error"));
        headers.remove("grpc-status-details-bin");
    }
    response
}

/// Which answers the call log reports as failures (at ERROR): not a
/// caller's own mistakes (a bad argument, an unknown id, a refused
/// credential, a cancelled call), which are answered and logged at DEBUG
/// like any other answer; every code is counted in the metrics either way.
fn failures() -> SharedClassifier<GrpcErrorsAsFailures> {
    let callers_mistakes = [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::FailedPrecondition,
        GrpcCode::OutOfRange,
        GrpcCode::Unauthenticated,
    ];
    SharedClassifier::new(callers_mistakes.into_iter().fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    ))
}

/// Serves `routes` behind the pipeline until `shutdown`, then lets calls in
/// flight finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    settings: &GatewaySettings,
    authenticator: Authenticator,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let layers = ServiceBuilder::new()
        .layer(cors(&settings.cors_allowed_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(atenciones_runtime::metrics::RpcMetricsLayer)
        .layer(TraceLayer::new(failures()).make_span_with(call_span))
        .layer(MapResponseLayer::new(hide_internals))
        .layer(MapResponseLayer::new(
            atenciones_runtime::grpc::bounded_status,
        ))
        .layer(AuthorizeLayer::new(authenticator))
        .layer(load_shedding(settings.max_concurrent_requests))
        .into_inner();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .timeout(settings.request_timeout())
        .layer(layers)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_lose_their_message_and_other_errors_keep_theirs() {
        let leak = tonic::Status::internal("password authentication failed for db 10.0.0.3");
        let hidden = hide_internals(leak.into_http::<()>());
        let status = tonic::Status::from_header_map(hidden.headers()).expect("a status");
        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::Internal, "internal error")
        );
        let denied = tonic::Status::permission_denied("not your campaign");
        let kept = hide_internals(denied.into_http::<()>());
        let status = tonic::Status::from_header_map(kept.headers()).expect("a status");
        assert_eq!(status.message(), "not your campaign");
    }

    #[test]
    fn a_callers_mistake_is_not_a_failure_in_the_log_but_a_fault_is() {
        use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
        let failed = |code: tonic::Code| {
            let response = tonic::Status::new(code, "").into_http::<()>();
            let classifier = failures().make_classifier(&http::Request::new(()));
            !matches!(
                classifier.classify_response(&response),
                ClassifiedResponse::Ready(Ok(()))
            )
        };
        for mistake in [
            tonic::Code::InvalidArgument,
            tonic::Code::NotFound,
            tonic::Code::PermissionDenied,
            tonic::Code::Unauthenticated,
            tonic::Code::FailedPrecondition,
        ] {
            assert!(!failed(mistake), "{mistake:?}");
        }
        for fault in [
            tonic::Code::Internal,
            tonic::Code::Unavailable,
            tonic::Code::Unknown,
            tonic::Code::DeadlineExceeded,
            tonic::Code::ResourceExhausted,
        ] {
            assert!(failed(fault), "{fault:?}");
        }
    }
}
