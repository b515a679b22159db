//! Live-stream benchmark on PostgreSQL: many agent screens streaming from one
//! gateway at once, idle and busy. Prints the delivery latency of a new
//! customer's message to every screen (p50 / p99 / slowest, from the
//! webhook's 200 to each screen's `attention.queued`) and the process's
//! resident memory per connected screen, next to a baseline measured in the
//! same run: the same latency with one screen.
//!
//! Three phases: one screen (the baseline); every screen, idle but for the
//! measured messages; every screen, busy: customers already waiting keep
//! writing (`BENCH_BUSY_RATE` messages per second), and every message is an
//! event each screen receives while the measured messages are timed.
//!
//! Run: `cargo bench -p atenciones-tests --bench streams` (about 2 minutes).
//! PostgreSQL from `ATENCIONES_TEST_POSTGRES_URL`, default
//! postgres://postgres@127.0.0.1:5432/postgres; `BENCH_STREAMS` (5,000),
//! `BENCH_MESSAGES` (10 timed per phase) and `BENCH_BUSY_RATE` (20) change
//! the sizes. The screens' clients run in the same process as the suite, so
//! memory per screen counts both ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use atenciones_proto::gateway::v1 as pb;
use atenciones_tests::bench::{Summary, cores, postgres_server, rss_kib, size};
use atenciones_tests::{TestDatabase, TestSuite, eventually, text_webhook};

const VENTAS_NUMBER: &str = "1122334455667";
/// Screens share this many HTTP/2 connections, as browsers behind a few
/// proxies would.
const CONNECTIONS: usize = 20;
/// Customers whose attentions wait in the queue and who keep writing in the
/// busy phase.
const BUSY_CUSTOMERS: usize = 50;
/// Measured customers' numbers start with this, busy customers' do not.
const PROBE: &str = "54911";

/// Connected screens of agent ana. Each reads its stream all the time (as a
/// screen does; a screen that stops reading is let go) and reports when a
/// measured customer's attention arrives.
struct Screens {
    tasks: JoinSet<()>,
    /// (customer, when a screen got their `attention.queued`)
    arrived: mpsc::UnboundedReceiver<(String, Instant)>,
    /// Events of any kind the screens received.
    events: Arc<AtomicUsize>,
    /// Screens whose stream ended.
    ended: Arc<AtomicUsize>,
    count: usize,
}

impl Screens {
    async fn open(suite: &TestSuite, count: usize) -> Self {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS.min(count) {
            clients.push(suite.desk("ana").await);
        }
        let (report, arrived) = mpsc::unbounded_channel();
        let (events, ended): (Arc<AtomicUsize>, Arc<AtomicUsize>) = Default::default();
        let mut tasks = JoinSet::new();
        for i in 0..count {
            let mut stream = clients[i % clients.len()]
                .clone()
                .stream_events(pb::StreamEventsRequest::default())
                .await
                .expect("stream")
                .into_inner();
            let (report, events, ended) = (report.clone(), Arc::clone(&events), Arc::clone(&ended));
            tasks.spawn(async move {
                while let Ok(Some(item)) = stream.message().await {
                    let Some(pb::stream_events_response::Item::Event(event)) = item.item else {
                        continue;
                    };
                    events.fetch_add(1, Ordering::Relaxed);
                    if event.kind != "attention.queued" {
                        continue;
                    }
                    let payload: serde_json::Value =
                        serde_json::from_str(&event.payload_json).unwrap_or_default();
                    let actor = payload["actor"].as_str().unwrap_or_default();
                    if actor.starts_with(PROBE) {
                        let _ = report.send((actor.to_owned(), Instant::now()));
                    }
                }
                ended.fetch_add(1, Ordering::Relaxed);
            });
        }
        Self {
            tasks,
            arrived,
            events,
            ended,
            count,
        }
    }

    /// For each of `messages` new customers: the time from the webhook's 200
    /// to each screen's `attention.queued`.
    async fn deliveries(&mut self, suite: &TestSuite, messages: usize, tag: &str) -> Vec<Duration> {
        let mut latencies = Vec::new();
        for n in 0..messages {
            let customer = format!("{PROBE}{tag}{n:05}");
            let body = text_webhook(
                VENTAS_NUMBER,
                &customer,
                "Bench",
                &format!("wamid.{tag}.{n}"),
                "Hola",
            );
            assert_eq!(suite.post_webhook(&body).await.status(), 200);
            let accepted = Instant::now();
            let mut pending = self.count;
            while pending > 0 {
                let (actor, at) = tokio::time::timeout(
                    Duration::from_secs(60),
                    self.arrived.recv(),
                )
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{pending} screens lacked the event after a minute ({} streams ended)",
                        self.ended.load(Ordering::Relaxed)
                    )
                })
                .expect("screens running");
                assert_eq!(actor, customer, "one measured customer at a time");
                latencies.push(at.saturating_duration_since(accepted));
                pending -= 1;
            }
        }
        latencies
    }
}

impl Drop for Screens {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Customers already waiting write `rate` messages per second, for ever.
async fn busy_customers(suite: &TestSuite, rate: usize) {
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut n = 0;
    loop {
        every.tick().await;
        let body = text_webhook(
            VENTAS_NUMBER,
            &busy_customer(n % BUSY_CUSTOMERS),
            "Cliente",
            &format!("wamid.busy.{n}"),
            "¿Hay novedades?",
        );
        assert_eq!(suite.post_webhook(&body).await.status(), 200);
        n += 1;
    }
}

fn busy_customer(n: usize) -> String {
    format!("54922{n:05}")
}

fn report(what: &str, latencies: &[Duration]) -> Summary {
    let s = Summary::of(latencies);
    println!(
        "{what:<34} p50 {:7.1} ms  p99 {:7.1} ms  slowest {:7.1} ms",
        s.p50, s.p99, s.max
    );
    s
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let count = size("BENCH_STREAMS", 5_000);
    let messages = size("BENCH_MESSAGES", 10);
    let busy_rate = size("BENCH_BUSY_RATE", 20).max(1);
    let db = TestDatabase::create_postgres(postgres_server()).await;
    let suite = TestSuite::start_with(db, |settings| {
        settings.telemetry.log_filter = "warn".into();
    })
    .await;
    println!(
        "streams benchmark: {count} screens over {CONNECTIONS} connections, {messages} timed \
         messages per phase, busy: {busy_rate} messages/s; {} cores",
        cores()
    );
    // The busy customers' attentions wait in the queue from the start: their
    // later messages are events on every screen, not new attentions.
    for n in 0..BUSY_CUSTOMERS {
        let body = text_webhook(
            VENTAS_NUMBER,
            &busy_customer(n),
            "Cliente",
            &format!("wamid.waiting.{n}"),
            "Hola",
        );
        assert_eq!(suite.post_webhook(&body).await.status(), 200);
    }
    eventually("the waiting customers' attentions", || async {
        (suite.attentions("ana").await.len() >= BUSY_CUSTOMERS).then_some(())
    })
    .await;

    let mut one = Screens::open(&suite, 1).await;
    let baseline = report(
        "baseline, 1 screen:",
        &one.deliveries(&suite, messages, "1").await,
    );
    drop(one);

    let before = rss_kib("self");
    let started = Instant::now();
    let mut many = Screens::open(&suite, count).await;
    let connecting = started.elapsed();
    // Let every stream settle (catch-up read done, listening).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib("self");
    let quiet = report(
        &format!("{count} screens, idle:"),
        &many.deliveries(&suite, messages, "2").await,
    );

    let events_before = many.events.load(Ordering::Relaxed);
    let busy_started = Instant::now();
    let timed = async {
        // Let the busy traffic reach every screen before timing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let latencies = many.deliveries(&suite, messages, "3").await;
        (latencies, rss_kib("self"))
    };
    let (latencies, busy_rss) = tokio::select! {
        timed = timed => timed,
        () = busy_customers(&suite, busy_rate) => unreachable!("customers write for ever"),
    };
    let busy = report(&format!("{count} screens, busy:"), &latencies);
    let delivered = many.events.load(Ordering::Relaxed) - events_before;
    let ended = many.ended.load(Ordering::Relaxed);
    let busy_time = busy_started.elapsed();
    drop(many);

    println!(
        "p99 ratio to baseline: idle {:.2}, busy {:.2}; {count} screens connected in {:.1} s",
        quiet.p99 / baseline.p99.max(0.001),
        busy.p99 / baseline.p99.max(0.001),
        connecting.as_secs_f64()
    );
    println!(
        "busy: {:.0} events/s delivered to the screens in all; {ended} streams ended",
        delivered as f64 / busy_time.as_secs_f64()
    );
    let per_screen = |rss: u64| rss.saturating_sub(before) as f64 / count as f64;
    println!(
        "memory per connected screen (both ends): {:.1} KiB idle, {:.1} KiB busy",
        per_screen(idle),
        per_screen(busy_rss)
    );
    suite.stop().await;
}
