//! Routing benchmark on PostgreSQL: 200 agents drain 10,000 queued
//! attentions (offer → accept → finish), then customers keep arriving while
//! agents have room. Prints assignments per second and the time from queued
//! (or from a freed slot) to offered, next to a baseline measured in the same
//! run: durable single-row transactions (one conditional update and one
//! event insert, what an assignment at least costs) at the same concurrency.
//!
//! Run: `cargo bench -p atenciones-tests --bench routing`
//! (PostgreSQL from `ATENCIONES_TEST_POSTGRES_URL`, default
//! postgres://postgres@127.0.0.1:5432/postgres; `BENCH_AGENTS`,
//! `BENCH_QUEUED` and `BENCH_ARRIVALS` change the sizes).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atenciones_runtime::grpc::Channel;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_tests::bench::{Summary, cores, postgres_server, size, statements_per_second};
use atenciones_tests::{TestDatabase, TestSuite, inbound};

type Queue = QueueServiceClient<Channel>;

const CAMPAIGN: &str = "bench";
const NUMBER: &str = "5550000000777";
/// Concurrent callers loading the queue, and the baseline's concurrency.
const LOADERS: usize = 32;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let agents = size("BENCH_AGENTS", 200);
    let queued = size("BENCH_QUEUED", 10_000);
    let arrivals = size("BENCH_ARRIVALS", 2_000);
    let db = TestDatabase::create_postgres(postgres_server()).await;
    let baseline = baseline(&db.url("bench"), LOADERS).await;

    let suite = TestSuite::start_with(db, |settings| {
        settings.database.max_connections = 20;
        settings.telemetry.log_filter = "warn".into();
    })
    .await;
    let queue = suite.queue().await;
    set_up(&suite, agents).await;

    println!(
        "routing benchmark: {agents} agents (capacity 5), {queued} queued, then {arrivals} arrivals"
    );
    println!("machine: {} cores", cores());
    println!();
    println!(
        "baseline  durable update+insert transactions, {LOADERS} at a time: {baseline:>8.0} /s"
    );

    let started = Instant::now();
    write(&queue, 0, queued).await;
    let loading = started.elapsed();
    println!(
        "arrivals  {queued} attentions queued (nobody logged in):        {:>8.0} /s",
        queued as f64 / loading.as_secs_f64()
    );

    // Drain: everyone logs in; offers are accepted and finished at once.
    let (feed, mut workers, done) = start_agents(&queue, agents).await;
    let drain_started = Instant::now();
    let log_ins = log_in_all(&queue, agents).await;
    let heartbeats = tokio::spawn(heartbeats(queue.clone(), agents));
    wait_for(&done, queued).await;
    let drain = drain_started.elapsed();
    let rate = queued as f64 / drain.as_secs_f64();
    println!(
        "drain     {queued} offered, accepted and finished in {:.1} s:   {rate:>8.0} assignments/s ({:.2} of baseline)",
        drain.as_secs_f64(),
        rate / baseline
    );
    println!("          {log_ins} agents logged in while the queue was full");

    // Arrivals while agents have room: the queue stays short.
    let arrivals_started = Instant::now();
    write(&queue, queued, arrivals).await;
    wait_for(&done, queued + arrivals).await;
    let spent = arrivals_started.elapsed();
    println!(
        "steady    {arrivals} arrivals served in {:.1} s:                  {:>8.0} assignments/s",
        spent.as_secs_f64(),
        arrivals as f64 / spent.as_secs_f64()
    );
    feed.abort();
    heartbeats.abort();
    workers.abort_all();

    let timing = timing(&mut queue.clone(), queued).await;
    report(
        "backlog wait (queued → offered, the backlog)",
        &timing.backlog_wait,
    );
    report(
        "freed slot → next offer (during the drain)",
        &timing.slot_to_offer,
    );
    report(
        "queued → offered (arrivals with agents free)",
        &timing.arrival_to_offer,
    );
    suite.stop().await;
}

fn report(what: &str, samples: &[Duration]) {
    let s = Summary::of(samples);
    println!(
        "{what:<46} n={:<6} p50 {:>9.1} ms   p99 {:>9.1} ms",
        s.n, s.p50, s.p99
    );
}

/// Durable transactions of the shape of one assignment: a conditional
/// update of one row and one inserted event, `concurrency` at a time, for
/// three seconds.
async fn baseline(url: &str, concurrency: usize) -> f64 {
    let db = Database::connect(url).await.expect("baseline connection");
    for sql in [
        "CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, state TEXT NOT NULL)",
        "CREATE TABLE bench_events (id BIGSERIAL PRIMARY KEY, row_id BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        "INSERT INTO bench_rows SELECT g, 'queued' FROM generate_series(1, 100000) g",
    ] {
        exec(&db, sql).await;
    }
    statements_per_second(&db, concurrency, Duration::from_secs(3), |id| {
        format!(
            "WITH moved AS (UPDATE bench_rows SET state = 'offered' WHERE id = {id} AND state = 'queued' RETURNING id) \
             INSERT INTO bench_events (row_id) SELECT id FROM moved"
        )
    })
    .await
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .expect("baseline statement");
}

async fn set_up(suite: &TestSuite, agents: usize) {
    let campaign = queue_pb::Campaign {
        id: CAMPAIGN.into(),
        name: "Benchmark".into(),
        assignment_mode: queue_pb::AssignmentMode::LeastBusy.into(),
        accept_timeout_seconds: 3600,
        default_agent_capacity: 5,
        orphan_grace_seconds: 3600,
        ..Default::default()
    };
    let ids: Vec<String> = (0..agents).map(agent).collect();
    let with_default: Vec<(&str, u32)> = ids.iter().map(|id| (id.as_str(), 0)).collect();
    suite.configure(campaign, Some(NUMBER), &with_default).await;
}

fn agent(n: usize) -> String {
    format!("agent-{n:03}")
}

/// Customers `from..from + count` write, `LOADERS` at a time.
async fn write(queue: &Queue, from: usize, count: usize) {
    let next = Arc::new(AtomicUsize::new(from));
    let end = from + count;
    let mut tasks = JoinSet::new();
    for _ in 0..LOADERS {
        let mut queue = queue.clone();
        let next = next.clone();
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    return;
                }
                let customer = format!("54911{n:08}");
                queue
                    .record_inbound_message(inbound(NUMBER, &customer, format!("wamid.bench.{n}")))
                    .await
                    .expect("RecordInboundMessage");
            }
        });
    }
    tasks.join_all().await;
}

async fn log_in_all(queue: &Queue, agents: usize) -> usize {
    let mut tasks = JoinSet::new();
    for n in 0..agents {
        let mut queue = queue.clone();
        tasks.spawn(async move {
            queue
                .set_agent_presence(queue_pb::SetAgentPresenceRequest {
                    agent_id: agent(n),
                    state: queue_pb::PresenceState::Available.into(),
                    pause_reason: String::new(),
                })
                .await
                .expect("log in");
        });
    }
    tasks.join_all().await.len()
}

/// Every agent's screen sends a heartbeat every 20 s, as a real one does.
async fn heartbeats(queue: Queue, agents: usize) {
    let mut every = tokio::time::interval(Duration::from_secs(20));
    loop {
        every.tick().await;
        for n in 0..agents {
            let _ = queue
                .clone()
                .heartbeat(queue_pb::HeartbeatRequest { agent_id: agent(n) })
                .await;
        }
    }
}

/// One reader tails the event feed and hands each offer to its agent; each
/// agent accepts and finishes what it is offered. Returns the reader, the
/// agents and the count of finished attentions.
async fn start_agents(
    queue: &Queue,
    agents: usize,
) -> (tokio::task::JoinHandle<()>, JoinSet<()>, Arc<AtomicUsize>) {
    let done = Arc::new(AtomicUsize::new(0));
    let mut inboxes = HashMap::new();
    let mut workers = JoinSet::new();
    for n in 0..agents {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        inboxes.insert(agent(n), tx);
        let mut queue = queue.clone();
        let done = done.clone();
        workers.spawn(async move {
            while let Some(attention_id) = rx.recv().await {
                queue
                    .open_attention(queue_pb::OpenAttentionRequest {
                        attention_id: attention_id.clone(),
                        agent_id: agent(n),
                    })
                    .await
                    .expect("accept");
                queue
                    .finish_attention(queue_pb::FinishAttentionRequest {
                        attention_id,
                        agent_id: agent(n),
                    })
                    .await
                    .expect("finish");
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut reader = queue.clone();
    let feed = tokio::spawn(async move {
        // Positions follow commit order: resuming after the last one seen
        // misses nothing and repeats nothing.
        let mut cursor = 0;
        loop {
            let Ok(page) = reader
                .list_events(queue_pb::ListEventsRequest {
                    after_position: cursor,
                    limit: 1000,
                })
                .await
            else {
                return; // the suite stopped
            };
            let page = page.into_inner().events;
            let full = page.len() == 1000;
            for event in page {
                cursor = event.position;
                if event.kind == "attention.offered" {
                    let payload: serde_json::Value =
                        serde_json::from_str(&event.payload_json).unwrap_or_default();
                    let agent = payload["agent_id"].as_str().unwrap_or_default();
                    if let Some(inbox) = inboxes.get(agent) {
                        let _ = inbox.send(event.attention_id);
                    }
                }
            }
            if !full {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    (feed, workers, done)
}

/// Waits until `target` attentions are finished; a stall of 30 s (an agent
/// or the feed reader failed) ends the benchmark with what it knows.
async fn wait_for(done: &AtomicUsize, target: usize) {
    let mut last = (done.load(Ordering::Relaxed), Instant::now());
    while done.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = done.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(30),
            "stalled at {now} of {target} finished"
        );
    }
}

struct Timing {
    backlog_wait: Vec<Duration>,
    slot_to_offer: Vec<Duration>,
    arrival_to_offer: Vec<Duration>,
}

/// Reads the server's own timestamps from the event feed; the first
/// `backlog` attentions queued are the backlog, the rest arrived later.
async fn timing(queue: &mut Queue, backlog: usize) -> Timing {
    let mut queued_at: HashMap<String, DateTime<Utc>> = HashMap::new();
    // When each agent last freed a slot (finished), to time its next offer.
    let mut freed_at: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut holder: HashMap<String, String> = HashMap::new();
    let mut timing = Timing {
        backlog_wait: Vec::new(),
        slot_to_offer: Vec::new(),
        arrival_to_offer: Vec::new(),
    };
    let mut queued_count = 0;
    let mut backlog_done = false;
    let mut after_position = 0;
    loop {
        let page = queue
            .list_events(queue_pb::ListEventsRequest {
                after_position,
                limit: 1000,
            })
            .await
            .expect("ListEvents")
            .into_inner()
            .events;
        let Some(last) = page.last() else {
            return timing;
        };
        after_position = last.position;
        for event in page {
            let at = event
                .create_time
                .as_ref()
                .and_then(atenciones_proto::time::from_timestamp)
                .unwrap_or_default();
            let payload: serde_json::Value =
                serde_json::from_str(&event.payload_json).unwrap_or_default();
            match event.kind.as_str() {
                "attention.queued" => {
                    queued_count += 1;
                    backlog_done = queued_count > backlog;
                    queued_at.insert(event.attention_id.clone(), at);
                }
                "attention.offered" => {
                    let agent = payload["agent_id"].as_str().unwrap_or_default().to_owned();
                    if let Some(queued) = queued_at.remove(&event.attention_id) {
                        let wait = (at - queued).to_std().unwrap_or_default();
                        if backlog_done {
                            timing.arrival_to_offer.push(wait);
                        } else {
                            timing.backlog_wait.push(wait);
                        }
                    }
                    if let Some(freed) = freed_at.remove(&agent).filter(|_| !backlog_done) {
                        timing
                            .slot_to_offer
                            .push((at - freed).to_std().unwrap_or_default());
                    }
                    holder.insert(event.attention_id, agent);
                }
                "attention.finished" => {
                    if let Some(agent) = holder.remove(&event.attention_id) {
                        freed_at.insert(agent, at);
                    }
                }
                _ => {}
            }
        }
    }
}
