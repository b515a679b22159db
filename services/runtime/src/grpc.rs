//! Serving a gRPC service the same way everywhere: health, reflection, tracing,
//! graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A bound listener: bind first so port 0 works and the real address is known.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Health and reflection for a server. Health starts NOT_SERVING; call
/// [`Readiness::serving`] once the database is reachable and migrated.
pub struct Readiness {
    reporter: HealthReporter,
    routes: Routes,
}

impl Readiness {
    pub fn new(routes: Routes) -> Self {
        let (reporter, health) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(atenciones_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("the compiled descriptor set is valid");
        Self {
            reporter,
            routes: routes.add_service(health).add_service(reflection),
        }
    }

    pub fn reporter(&self) -> HealthReporter {
        self.reporter.clone()
    }

    pub fn into_routes(self) -> Routes {
        self.routes
    }
}

/// Marks the whole server (the "" service) and `names` SERVING or NOT_SERVING.
pub async fn set_status(reporter: &HealthReporter, names: &[&str], status: ServingStatus) {
    for name in std::iter::once(&"").chain(names) {
        reporter.set_service_status(*name, status).await;
    }
}

/// Serves `routes` on `listener` until `shutdown` is cancelled, then stops
/// accepting and lets in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        // Keeps idle client connections alive through NATs and load balancers.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // Spans per call, so every log line carries the RPC it belongs to.
        .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await
}

/// A client channel to another service. It connects on first use and reconnects
/// by itself, so services can start in any order.
pub fn channel(url: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        // Fail fast when the peer is down; callers retry or report UNAVAILABLE.
        .connect_timeout(Duration::from_secs(3))
        // No call between services should take longer; a hung peer must not hang us.
        .timeout(Duration::from_secs(30))
        .connect_lazy())
}
