//! Serving a gRPC service the same way everywhere: health, reflection, tracing,
//! graceful shutdown.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use std::convert::Infallible;
use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::channel::Change;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::ServingStatus;
use tower::layer::util::{Identity, Stack};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::load_shed::error::Overloaded;
use tower::util::MapErrLayer;
use tower::{BoxError, ServiceBuilder};

use crate::caller::{Caller, Keys, Signed, VerifyLayer};
use crate::settings::{InternalSettings, ServiceName, Settings};
use crate::trace_context::call_span;

/// Calls served to anyone: health checks and server reflection.
const OPEN: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Whether the call at `path` (`/package.Service/Method`) is open to callers
/// without a credential.
pub fn is_open(path: &str) -> bool {
    OPEN.iter().any(|prefix| path.starts_with(prefix))
}

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
/// accepting and lets in-flight calls finish. Only calls signed with the
/// internal secret are served (health and reflection are open), at most
/// `internal.max_concurrent_requests` at once.
pub fn serve(
    listener: TcpListener,
    routes: Routes,
    internal: &InternalSettings,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static {
    let keys = Keys::new(internal);
    let shedding = load_shedding(internal.max_concurrent_requests);
    async move {
        // Without TCP_NODELAY a response's last segment can wait for the peer's
        // delayed ACK (~40 ms) — the cost of every call that returns a few KiB.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut server = Server::builder();
        if let Some(tls) = keys.server_tls() {
            server = server.tls_config(tls)?;
        }
        server
            // Keeps idle client connections alive through NATs and load balancers.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            // A span per call, continuing the caller's trace, so every log line
            // carries the RPC (and the action) it belongs to.
            .trace_fn(call_span)
            .layer(crate::metrics::RpcMetricsLayer)
            .layer(tower::util::MapResponseLayer::new(bounded_status))
            .layer(VerifyLayer::new(keys))
            .layer(shedding)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    }
}

/// Layers refusing a call at once with RESOURCE_EXHAUSTED while `limit`
/// calls are in flight (every caller together), rather than queueing calls
/// without bound: memory stays bounded and callers learn at once to retry.
pub type LoadShedding = ServiceBuilder<
    Stack<
        GlobalConcurrencyLimitLayer,
        Stack<LoadShedLayer, Stack<MapErrLayer<fn(BoxError) -> BoxError>, Identity>>,
    >,
>;

/// [`LoadShedding`] at `limit` calls in flight (at least one).
pub fn load_shedding(limit: usize) -> LoadShedding {
    ServiceBuilder::new()
        .layer(MapErrLayer::new(overloaded as fn(BoxError) -> BoxError))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(limit.max(1)))
}

/// Says what a shed call met: tonic's own wording ("Too many active
/// requests for the connection") blames the caller's connection, but the
/// limit is the whole server's.
fn overloaded(error: BoxError) -> BoxError {
    if error.is::<Overloaded>() {
        Box::new(tonic::Status::resource_exhausted(
            "the server is at its limit of calls in flight; retry shortly",
        ))
    } else {
        error
    }
}

/// The most of a status's message or of one of its details' texts a
/// response carries, in characters.
const MAX_STATUS_TEXT: usize = 500;
/// Headers up to this size are left as they are.
const MAX_STATUS_HEADER: usize = 2048;

/// Cuts a status's message and field-violation descriptions to
/// [`MAX_STATUS_TEXT`] characters, ending with "…". They may quote what the
/// caller sent (an id of 40,000 characters), and a header beyond the peer's
/// limit (16 KiB in h2) fails the whole call as a protocol error instead of
/// telling what was wrong.
pub fn bounded_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    use tonic_types::{ErrorDetail, StatusExt};
    let headers = response.headers_mut();
    let oversized = ["grpc-message", "grpc-status-details-bin"]
        .iter()
        .any(|name| {
            headers
                .get(*name)
                .is_some_and(|v| v.len() > MAX_STATUS_HEADER)
        });
    let Some(status) = oversized
        .then(|| tonic::Status::from_header_map(headers))
        .flatten()
    else {
        return response;
    };
    let cut = |text: &str| match text.char_indices().nth(MAX_STATUS_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    };
    let details: Vec<ErrorDetail> = status
        .get_error_details_vec()
        .into_iter()
        .map(|detail| match detail {
            ErrorDetail::BadRequest(mut bad) => {
                for violation in &mut bad.field_violations {
                    violation.field = cut(&violation.field);
                    violation.description = cut(&violation.description);
                }
                ErrorDetail::BadRequest(bad)
            }
            other => other,
        })
        .collect();
    let bounded =
        tonic::Status::with_error_details_vec(status.code(), cut(status.message()), details);
    headers.remove("grpc-status-details-bin");
    if bounded.add_header(headers).is_err() {
        tracing::warn!("a status's headers could not be written");
    }
    response
}

/// A channel to another service, carrying the caller's trace context and
/// signed credential.
pub type Channel = Signed<tonic::transport::Channel>;

/// How often a service's name is resolved again: replicas come and go.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// A client channel to another service. It connects on first use and reconnects
/// by itself, so services can start in any order. A URL naming a host rather
/// than an IP address (a Kubernetes headless service) is resolved now and
/// every [`RESOLVE_EVERY`], and calls are spread over every address it has.
/// Calls are signed as `me` (see [`crate::caller`]).
pub fn channel(url: &str, keys: Keys, me: Caller) -> Result<Channel, tonic::transport::Error> {
    let given = endpoint(url)?;
    let uri = given.uri().clone();
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    // Every address of the name is verified as the name itself.
    let tls = keys.client_tls(host);
    let secure = move |endpoint: Endpoint| match &tls {
        Some(tls) => endpoint.tls_config(tls.clone()),
        None => Ok(endpoint),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        let given = secure(given)?;
        return Ok(Signed::new(given.connect_lazy(), keys, me));
    }
    let wrap = |channel| Signed::new(channel, keys, me);
    let scheme = uri.scheme_str().unwrap_or("http").to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let host = host.to_owned();
    let (channel, changes) = tonic::transport::Channel::balance_channel::<SocketAddr>(64);
    tokio::spawn(async move {
        let mut known = HashSet::new();
        while !changes.is_closed() {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(found) => {
                    let found: HashSet<SocketAddr> = found.collect();
                    let (added, removed) = difference(&known, &found);
                    for address in removed {
                        let _ = changes.send(Change::Remove(address)).await;
                    }
                    for address in added {
                        if let Ok(endpoint) =
                            endpoint(&format!("{scheme}://{address}")).and_then(&secure)
                        {
                            let _ = changes.send(Change::Insert(address, endpoint)).await;
                        }
                    }
                    known = found;
                }
                Err(error) => tracing::warn!(%host, %error, "cannot resolve a service"),
            }
            tokio::time::sleep(RESOLVE_EVERY).await;
        }
    });
    Ok(wrap(channel))
}

/// The channel from the service `me` to `service`, as settings say.
pub fn service_channel(
    settings: &Settings,
    me: &str,
    service: ServiceName,
) -> Result<Channel, tonic::transport::Error> {
    channel(
        &settings.service_url(service),
        Keys::new(&settings.internal),
        Caller::service(me),
    )
}

fn endpoint(url: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        // Fail fast when the peer is down; callers retry or report UNAVAILABLE.
        .connect_timeout(Duration::from_secs(3))
        // No call between services should take longer; a hung peer must not hang us.
        .timeout(Duration::from_secs(30)))
}

/// Addresses to add and to remove to go from `known` to `found`.
fn difference(
    known: &HashSet<SocketAddr>,
    found: &HashSet<SocketAddr>,
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    (
        found.difference(known).copied().collect(),
        known.difference(found).copied().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_status_is_cut_to_whole_characters_with_its_field_violations() {
        use tonic_types::{ErrorDetails, StatusExt};
        for long in ["x".repeat(50_000), "ñ".repeat(50_000)] {
            let status = tonic::Status::with_error_details(
                tonic::Code::InvalidArgument,
                format!("no campaign {long}"),
                ErrorDetails::with_bad_request_violation(
                    "campaign_ids",
                    format!("no campaign {long}"),
                ),
            );
            let response = bounded_status(status.into_http::<()>());
            for name in ["grpc-message", "grpc-status-details-bin"] {
                assert!(response.headers()[name].len() < 4096, "{name}");
            }
            let status = tonic::Status::from_header_map(response.headers()).expect("a status");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            let violations = status
                .get_details_bad_request()
                .expect("details kept")
                .field_violations;
            for text in [status.message(), violations[0].description.as_str()] {
                assert!(
                    text.starts_with("no campaign ") && text.ends_with('…'),
                    "{text}"
                );
                assert_eq!(text.chars().count(), MAX_STATUS_TEXT + 1);
            }
            assert_eq!(violations[0].field, "campaign_ids");
        }
        let short = bounded_status(tonic::Status::not_found("no campaign x").into_http::<()>());
        assert_eq!(short.headers()["grpc-message"], "no%20campaign%20x");
    }

    #[test]
    fn a_new_resolution_adds_and_removes_only_what_changed() {
        let a: SocketAddr = "10.0.0.1:50061".parse().expect("address");
        let b: SocketAddr = "10.0.0.2:50061".parse().expect("address");
        let c: SocketAddr = "10.0.0.3:50061".parse().expect("address");
        let known = HashSet::from([a, b]);
        let found = HashSet::from([b, c]);
        assert_eq!(difference(&known, &found), (vec![c], vec![a]));
        assert_eq!(difference(&found, &found), (vec![], vec![]));
    }

    /// A service reached by name: resolved, balanced, and answering.
    #[tokio::test]
    async fn a_service_named_by_host_is_resolved_and_reached() {
        let (listener, address) = bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let (_reporter, health) = tonic_health::server::health_reporter();
        let shutdown = CancellationToken::new();
        let internal = Settings::load(None).expect("settings").internal;
        let keys = Keys::new(&internal);
        let server = tokio::spawn(serve(
            listener,
            Routes::new(health),
            &internal,
            shutdown.clone(),
        ));
        // `localhost` may also resolve to ::1, where nothing listens: the
        // balancer must route around it.
        let url = format!("http://localhost:{}", address.port());
        let channel = channel(&url, keys, Caller::service("test")).expect("channel");
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        for _ in 0..5 {
            let status = client
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .expect("reached through the resolved address")
                .into_inner()
                .status;
            assert_eq!(
                status,
                i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
            );
        }
        shutdown.cancel();
        server.await.expect("joined").expect("served");
    }
}
