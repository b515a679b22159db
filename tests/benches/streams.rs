//! Live-stream benchmark on PostgreSQL: many agent screens streaming from one
//! gateway at once. Prints the delivery latency of an inbound message to every
//! screen (p50 / p99 / slowest, from the webhook's 200 to each screen's
//! event) and the process's resident memory per connected screen, next to a
//! baseline measured in the same run: the same latency with one screen.
//!
//! Run: `cargo bench -p atenciones-tests --bench streams`
//! (PostgreSQL from `ATENCIONES_TEST_POSTGRES_URL`, default
//! postgres://postgres@127.0.0.1:5432/postgres; `BENCH_STREAMS` (2,000)
//! and `BENCH_MESSAGES` (10) change the sizes). The screens' clients run in
//! the same process as the suite, so memory per screen counts both ends.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::Streaming;

use atenciones_proto::gateway::v1 as pb;
use atenciones_tests::{TestDatabase, TestSuite, text_webhook};

const VENTAS_NUMBER: &str = "1122334455667";
/// Screens share this many HTTP/2 connections, as browsers behind a few
/// proxies would.
const CONNECTIONS: usize = 20;

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

async fn first_event(
    mut stream: Streaming<pb::StreamEventsResponse>,
) -> Streaming<pb::StreamEventsResponse> {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("an event within a minute")
            .expect("healthy")
            .expect("open");
        if let Some(pb::stream_events_response::Item::Event(event)) = item.item
            && event.kind == "attention.queued"
        {
            return stream;
        }
    }
}

/// Opens `count` screens of agent ana over [`CONNECTIONS`] connections.
async fn screens(suite: &TestSuite, count: usize) -> Vec<Streaming<pb::StreamEventsResponse>> {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS.min(count) {
        clients.push(suite.desk("ana").await);
    }
    let mut opened = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = clients[i % clients.len()].clone();
        let stream = client
            .stream_events(pb::StreamEventsRequest::default())
            .await
            .expect("stream")
            .into_inner();
        opened.push(stream);
    }
    opened
}

/// For each of `messages` new customers: the time from the webhook's 200 to
/// each screen's `attention.queued`, in ms.
async fn deliveries(
    suite: &TestSuite,
    mut streams: Vec<Streaming<pb::StreamEventsResponse>>,
    messages: usize,
    tag: &str,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    for n in 0..messages {
        let customer = format!("54911{tag}{n:05}");
        let body = text_webhook(
            VENTAS_NUMBER,
            &customer,
            "Bench",
            &format!("wamid.{tag}.{n}"),
            "Hola",
        );
        let mut waiting = JoinSet::new();
        for stream in streams.drain(..) {
            waiting.spawn(async move {
                let stream = first_event(stream).await;
                (stream, Instant::now())
            });
        }
        assert_eq!(suite.post_webhook(&body).await.status(), 200);
        let accepted = Instant::now();
        while let Some(done) = waiting.join_next().await {
            let (stream, at) = done.expect("screen");
            latencies.push(at.saturating_duration_since(accepted).as_secs_f64() * 1000.0);
            streams.push(stream);
        }
    }
    latencies
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut latencies: Vec<f64>) -> (f64, f64, f64) {
    latencies.sort_by(f64::total_cmp);
    (
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let count = size("BENCH_STREAMS", 2_000);
    let messages = size("BENCH_MESSAGES", 10);
    let server = std::env::var("ATENCIONES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = TestDatabase::create_postgres(server).await;
    let suite = TestSuite::start_with(db, |settings| {
        settings.telemetry.log_filter = "warn".into();
    })
    .await;
    println!(
        "streams benchmark: {count} screens over {CONNECTIONS} connections, {messages} messages; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let one = screens(&suite, 1).await;
    let (b50, b99, bmax) = summary(deliveries(&suite, one, messages, "1").await);
    println!("baseline, 1 screen:     p50 {b50:7.1} ms  p99 {b99:7.1} ms  slowest {bmax:7.1} ms");

    let before = rss_kib();
    let many = screens(&suite, count).await;
    // Let every stream settle (catch-up read done, listening).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib();
    let (p50, p99, max) = summary(deliveries(&suite, many, messages, "2").await);
    println!("{count} screens:         p50 {p50:7.1} ms  p99 {p99:7.1} ms  slowest {max:7.1} ms");
    println!(
        "p99 ratio to baseline: {:.2}; memory: {:.1} KiB per connected screen (idle, both ends)",
        p99 / b99.max(0.001),
        (idle.saturating_sub(before)) as f64 / count as f64
    );
    suite.stop().await;
}
