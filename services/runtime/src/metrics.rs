//! Prometheus metrics: one recorder per process, served on a port of its
//! own (`telemetry.metrics_listen`), and the per-RPC counts and latencies
//! every gRPC server records through [`RpcMetricsLayer`]. Services record
//! their own (webhooks, messages, queues, streams) with the `metrics` macros,
//! which do nothing while no recorder is installed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Seconds; from a fast local call to the longest timeout.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (a process running several
/// roles, or several test suites, shares one).
fn handle() -> anyhow::Result<&'static PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    if HANDLE.set(handle).is_ok() {
        metrics::set_global_recorder(recorder)?;
    }
    HANDLE
        .get()
        .ok_or_else(|| anyhow::anyhow!("metrics recorder not installed"))
}

/// Serves `GET /metrics` on `listen` until `shutdown`; returns the address
/// it listens on.
pub async fn serve(listen: &str, shutdown: CancellationToken) -> anyhow::Result<SocketAddr> {
    let handle = handle()?;
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(handle.render())),
    );
    // Histograms are summed in buckets that need draining now and then.
    let upkeep = shutdown.clone();
    tokio::spawn(async move {
        while !upkeep.is_cancelled() {
            handle.run_upkeep();
            tokio::select! {
                () = upkeep.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
    tokio::spawn(async move {
        let stopped = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = stopped {
            tracing::warn!(%error, "metrics listener stopped");
        }
    });
    Ok(address)
}

/// Counts every gRPC call by service, method and status code, and times it
/// (`atenciones_grpc_requests_total`, `atenciones_grpc_request_duration_seconds`).
/// The code is the one in the response headers (every error a handler
/// returns); a call whose headers carry none ended OK or failed mid-stream.
#[derive(Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
                Err(_) => tonic::Code::Unavailable,
            };
            record(&path, code, started.elapsed());
            result
        })
    }
}

fn record(path: &str, code: tonic::Code, took: Duration) {
    // Only paths a server knows name a series: any other is one "unknown",
    // so a client making up paths cannot grow the metrics without bound.
    let (service, method) = match (code, path.trim_start_matches('/').split_once('/')) {
        (tonic::Code::Unimplemented, _) | (_, None) => ("unknown".to_owned(), "unknown".to_owned()),
        (_, Some((service, method))) => (service.to_owned(), method.to_owned()),
    };
    metrics::counter!(
        "atenciones_grpc_requests_total",
        "service" => service.clone(),
        "method" => method.clone(),
        "code" => format!("{code:?}"),
    )
    .increment(1);
    metrics::histogram!(
        "atenciones_grpc_request_duration_seconds",
        "service" => service,
        "method" => method,
    )
    .record(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_counted_by_method_and_code_and_served_on_metrics() {
        let shutdown = CancellationToken::new();
        let address = serve("127.0.0.1:0", shutdown.clone())
            .await
            .expect("serves");
        record(
            "/atenciones.queue.v1.QueueService/GetAttention",
            tonic::Code::NotFound,
            Duration::from_millis(3),
        );
        record("/made.up/Path", tonic::Code::Unimplemented, Duration::ZERO);
        let text = scrape(address).await;
        assert!(
            text.contains(r#"atenciones_grpc_requests_total{service="atenciones.queue.v1.QueueService",method="GetAttention",code="NotFound"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"method="unknown""#), "{text}");
        assert!(!text.contains("made.up"), "{text}");
        assert!(
            text.contains("atenciones_grpc_request_duration_seconds_bucket"),
            "{text}"
        );
        shutdown.cancel();
    }

    /// GET /metrics over a bare TCP connection (HTTP/1.0: the server closes).
    async fn scrape(address: SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connects");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .expect("writes");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("reads");
        text
    }
}
