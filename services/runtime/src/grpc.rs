//! Serving a gRPC service the same way everywhere: health, reflection, tracing,
//! graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use std::convert::Infallible;
use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::trace_context::{Traced, call_span};

/// A bound listener: bind first so port 0 works and the real address is known.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The routes of a server offering `service`, with gRPC health (SERVING for
/// the whole server and for `service`) and server reflection (v1 and v1alpha,
/// which grpcurl and many tools still ask) advertising `service` and health.
///
/// Call it once the server is ready to answer: after `build` has reached and
/// migrated its database.
pub async fn routes<S>(service: S) -> Routes
where
    S: Service<http::Request<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in ["", S::NAME] {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(atenciones_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(S::NAME)
            .with_service_name("grpc.health.v1.Health")
    };
    let v1 = reflection()
        .build_v1()
        .expect("the compiled descriptor set is valid");
    let v1alpha = reflection()
        .build_v1alpha()
        .expect("the compiled descriptor set is valid");
    Routes::new(service)
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha)
}

/// Serves `routes` on `listener` until `shutdown` is cancelled, then stops
/// accepting and lets in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    // Without TCP_NODELAY a response's last segment can wait for the peer's
    // delayed ACK (~40 ms) — the cost of every call that returns a few KiB.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        // Keeps idle client connections alive through NATs and load balancers.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // A span per call, continuing the caller's trace, so every log line
        // carries the RPC (and the action) it belongs to.
        .trace_fn(call_span)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}

/// A channel to another service, carrying the caller's trace context.
pub type Channel = Traced<tonic::transport::Channel>;

/// A client channel to another service. It connects on first use and reconnects
/// by itself, so services can start in any order.
pub fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Traced::new(
        tonic::transport::Endpoint::from_shared(url.to_owned())?
            // Fail fast when the peer is down; callers retry or report UNAVAILABLE.
            .connect_timeout(Duration::from_secs(3))
            // No call between services should take longer; a hung peer must not hang us.
            .timeout(Duration::from_secs(30))
            .connect_lazy(),
    ))
}
