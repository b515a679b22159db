//! Load benchmark of the suite as it is deployed: one child process per role
//! (gateway, queue, messaging, form, history) on PostgreSQL (one database)
//! or, with `BENCH_DATABASE=sqlite`, on the embedded default (a SQLite file
//! per service).
//! Each scenario prints, next to it, a baseline measured in the same run:
//!
//! 1. Webhook ingest. Signed webhooks — one customer message to three
//!    statuses (sent, delivered, read) of a message the business sent, as
//!    WhatsApp delivers them — are offered at increasing rates, each at its
//!    scheduled time, with at most `BENCH_INGEST_CONCURRENCY` in flight; then
//!    a burst is posted as fast as they are taken. Per step: accepted (200)
//!    webhooks per second, p50/p99 of the time to the 200, webhooks
//!    processed per second (until their events reached an agent's live
//!    stream), and p50/p99 from sending a webhook until its event (the
//!    message, or the status) is on that stream. A status overtaken by a
//!    later one of its message (posted at once, stored in the other order)
//!    is not announced: the step counts them. Baseline: single-row durable
//!    inserts per second into the same database server at the same
//!    concurrency (on SQLite: a file of its own, through the one connection
//!    a service has).
//! 2. Agent actions. Agents of one campaign list, open, answer, fill the
//!    form and finish attentions through the gateway, first one agent alone,
//!    then many at once: p50/p99 per call. Every other open is made instead
//!    as the gateway makes it, straight to the backend services (the same
//!    calls, in the same two rounds as `gateway/src/desk.rs`): the gateway's
//!    open against the slowest single backend call of an open, and against
//!    the whole direct open, is the gateway's overhead.
//! 3. Resident memory (VmRSS) of each process: idle after start, and the
//!    peak sampled every 100 ms during scenarios 1 and 2.
//!
//! Then what the processes logged at WARN or ERROR.
//!
//! Run: `cargo bench -p atenciones-tests --bench load` (about a minute and
//! a half, once the `atenciones` binary is built).
//! PostgreSQL from `ATENCIONES_TEST_POSTGRES_URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres); the benchmark makes its own
//! database and drops it. `BENCH_DATABASE=sqlite` runs it on SQLite files in
//! a temporary directory instead. Sizes:
//! - `BENCH_INGEST_RATES` (`50,100,200,400`): offered webhooks per second, a
//!   step each; no higher rate is offered after a step the suite did not
//!   keep up with (accepted or processed below 90% of the offer, or events
//!   missing);
//! - `BENCH_INGEST_SECONDS` (8): length of a step;
//! - `BENCH_INGEST_BURST` (2,000): webhooks of the burst;
//! - `BENCH_INGEST_CONCURRENCY` (32): webhooks in flight at most;
//! - `BENCH_INGEST_CUSTOMERS` (100): customers writing (each has an attention);
//! - `BENCH_AGENTS` (50) and `BENCH_AGENT_ROUNDS` (6): agents at once, and
//!   the attentions each serves.
//!
//! The processes run the `atenciones` binary. Only that binary's own package
//! gets its path from cargo (`CARGO_BIN_EXE_atenciones`), and a binary found
//! next to this one may be stale, so the benchmark first asks cargo to build
//! it in its own profile (a no-op when it is up to date) and runs the file
//! cargo reports. Every process keeps the default settings (a pool of 5
//! database connections per service), except that a business number may
//! send 1,000 messages per second (Meta's top tier), so pacing does not
//! time the sends. The benchmark's clients and the fake Cloud API share the
//! machine with the suite and PostgreSQL.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::history::v1 as history_pb;
use atenciones_proto::history::v1::history_service_client::HistoryServiceClient;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::grpc::Channel;
use atenciones_test_support::webhook::{
    self, APP_SECRET, http_client, signature, status_webhook, text_webhook,
};
use atenciones_test_support::{CloudApi, SuiteProcess, desk, free_port, services, suite_env};
use atenciones_tests::bench::{Summary, cores, postgres_server, rss_kib, size};
use atenciones_tests::{Admin, Backend, Desk, Role, TestDatabase, campaign, configure};

/// The demo's ventas number; its campaign has the demo form.
const VENTAS_NUMBER: &str = "1122334455667";
/// The ingest scenario's own campaign and number, so its thousands of
/// messages do not crowd the agents' lists.
const INGEST_CAMPAIGN: &str = "carga";
const INGEST_NUMBER: &str = "5550000000888";
/// The agent whose live stream receives the ingest's events.
const WATCHER: &str = "vigia";
/// The roles, in start order, each in a process of its own.
const ROLES: [&str; 5] = ["queue", "messaging", "form", "history", "gateway"];

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rates: Vec<usize> = std::env::var("BENCH_INGEST_RATES")
        .unwrap_or_else(|_| "50,100,200,400".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let ingest = Ingest {
        seconds: size("BENCH_INGEST_SECONDS", 8),
        concurrency: size("BENCH_INGEST_CONCURRENCY", 32),
        customers: size("BENCH_INGEST_CUSTOMERS", 100),
        burst: size("BENCH_INGEST_BURST", 2_000),
    };
    let agents = size("BENCH_AGENTS", 50);
    let rounds = size("BENCH_AGENT_ROUNDS", 6);

    let binary = atenciones_binary();
    let (db, backend) = match std::env::var("BENCH_DATABASE").as_deref() {
        Ok("sqlite") => (TestDatabase::create(Backend::Sqlite).await, "SQLite"),
        Ok("postgres") | Err(_) => (
            Some(TestDatabase::create_postgres(postgres_server()).await),
            "PostgreSQL",
        ),
        Ok(other) => panic!("BENCH_DATABASE is sqlite or postgres, not {other}"),
    };
    let db = db.expect("SQLite is always available");
    let cloud_api = CloudApi::start().await;
    let suite = Suite::start(&binary, &db, &cloud_api).await;
    println!(
        "load benchmark: one process per role ({}) on {backend}; {} cores, shared with the \
         database and the benchmark's clients",
        ROLES.join(", "),
        cores()
    );
    let memory = Memory::sample(&suite);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = memory.take_peaks();

    println!();
    ingest.run(&suite, &db, &rates).await;
    let during_ingest = memory.take_peaks();

    println!();
    agent_actions(&suite, agents, rounds).await;
    let during_agents = memory.take_peaks();

    println!();
    println!("3. resident memory (VmRSS) of each process, MiB");
    println!(
        "{:<10} {:>12} {:>20} {:>24}",
        "process", "idle", "peak during ingest", "peak during agent load"
    );
    for (i, (role, _)) in suite.processes.iter().enumerate() {
        let mib = |kib: &[u64]| kib[i] as f64 / 1024.0;
        println!(
            "{role:<10} {:>12.1} {:>20.1} {:>24.1}",
            mib(&idle),
            mib(&during_ingest),
            mib(&during_agents)
        );
    }
    println!();
    problems_logged(&suite);
    // The processes stop before their database is dropped.
    drop(memory);
    drop(suite);
}

/// Builds the `atenciones` binary in this benchmark's profile and returns
/// the path cargo reports for it.
fn atenciones_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--manifest-path",
        manifest,
        "-p",
        "atenciones",
        "--bin",
        "atenciones",
        "--message-format=json-render-diagnostics",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    // cargo runs a benchmark with its package's variables (CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME, …); build scripts that read them (ring's) would see a
    // change, and this build and the benchmark's would rebuild each other's
    // dependencies on every run.
    for (name, _) in std::env::vars_os() {
        let package_variable = name.to_str().is_some_and(|name| {
            [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        });
        if package_variable {
            command.env_remove(name);
        }
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "building atenciones failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "atenciones")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the atenciones executable")
}

/// The suite, one process per role.
struct Suite {
    /// By role, in [`ROLES`] order.
    processes: Vec<(&'static str, SuiteProcess)>,
    http: reqwest::Client,
}

impl Suite {
    async fn start(binary: &std::path::Path, db: &TestDatabase, cloud_api: &CloudApi) -> Self {
        let mut env = suite_env(db, cloud_api);
        for role in ROLES {
            let address = format!("127.0.0.1:{}", free_port());
            let role = role.to_uppercase();
            if role != "GATEWAY" {
                env.insert(
                    format!("ATENCIONES_{role}__URL"),
                    format!("http://{address}"),
                );
            }
            env.insert(format!("ATENCIONES_{role}__LISTEN"), address);
        }
        env.insert(
            "ATENCIONES_MESSAGING__WEBHOOK_LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        );
        env.insert(
            "ATENCIONES_WHATSAPP__MESSAGES_PER_SECOND".into(),
            "1000".into(),
        );
        let mut processes = Vec::new();
        for role in ROLES {
            processes.push((role, SuiteProcess::start_roles(binary, &env, &[role]).await));
        }
        Self {
            processes,
            http: http_client(),
        }
    }

    /// The URL of `server` (the role's gRPC service, or `webhook`) of
    /// `role`'s process.
    fn url(&self, role: &str, server: &str) -> String {
        self.processes
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, p)| p.url(server))
            .expect("started")
    }

    fn webhook(&self) -> String {
        format!("{}/webhooks/whatsapp", self.url("messaging", "webhook"))
    }

    /// A client of a backend service, signed as a service.
    fn channel(&self, role: &str) -> Channel {
        services::service_channel(&self.url(role, role))
    }

    async fn gateway_channel(&self) -> tonic::transport::Channel {
        Endpoint::from_shared(self.url("gateway", "gateway"))
            .expect("url")
            .connect()
            .await
            .expect("gateway reachable")
    }

    /// `agent`'s desk, on a connection of its own (as each agent's browser).
    async fn desk(&self, agent: &str) -> Desk {
        desk::agent_desk(self.gateway_channel().await, agent)
    }

    async fn sofia(&self) -> Admin {
        desk::admin(self.gateway_channel().await, "sofia", Role::Supervisor)
    }

    /// POSTs `bodies`, `concurrency` at a time, each until it is stored.
    async fn post_all(&self, bodies: Vec<Vec<u8>>, concurrency: usize) {
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut posts = JoinSet::new();
        let webhook = self.webhook();
        for body in bodies {
            let permit = permits.clone().acquire_owned().await.expect("open");
            let (http, url) = (self.http.clone(), webhook.clone());
            posts.spawn(async move {
                let signature = signature(APP_SECRET, &body);
                let status = post(&http, &url, body, &signature).await;
                drop(permit);
                assert_eq!(status, 200, "a set-up webhook was refused");
            });
        }
        posts.join_all().await;
    }

    /// Waits until `agent` sees `count` queued attentions; returns them.
    async fn queued(&self, agent: &str, count: usize) -> Vec<queue_pb::Attention> {
        let mut desk = self.desk(agent).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let list = desk
                .list_attentions(pb::ListAttentionsRequest::default())
                .await
                .expect("ListAttentions")
                .into_inner();
            if list.queued_count as usize >= count {
                return list
                    .attentions
                    .into_iter()
                    .filter(|a| a.state() == queue_pb::AttentionState::Queued)
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} attentions queued after 2 minutes",
                list.queued_count
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The webhook's answer to a signed POST: its status, 0 if none came.
async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>, signature: &str) -> u16 {
    webhook::post(http, url, body, signature)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// The peak resident memory of each process since it was last taken.
struct Memory {
    peaks: Arc<Mutex<Vec<u64>>>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Memory {
    fn sample(suite: &Suite) -> Self {
        let pids: Vec<String> = suite
            .processes
            .iter()
            .map(|(_, p)| p.pid().to_string())
            .collect();
        let peaks = Arc::new(Mutex::new(vec![0; pids.len()]));
        let shared = peaks.clone();
        let sampler = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                let mut peaks = shared.lock().expect("not poisoned");
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    *peak = (*peak).max(rss_kib(pid));
                }
            }
        });
        Self { peaks, sampler }
    }

    fn take_peaks(&self) -> Vec<u64> {
        let mut peaks = self.peaks.lock().expect("not poisoned");
        let taken = peaks.clone();
        peaks.iter_mut().for_each(|p| *p = 0);
        taken
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

/// Scenario 1's sizes.
struct Ingest {
    seconds: usize,
    concurrency: usize,
    customers: usize,
    burst: usize,
}

/// A customer of the ingest campaign, with the attention their first
/// message opened.
struct Customer {
    wa_id: String,
    attention_id: String,
}

/// What a webhook carries, as its event on the stream is recognised.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A message from this customer (`attention.message_received`, whose
    /// actor is the customer).
    Message(String),
    /// A status of the business's message with this id
    /// (`attention.message_status`).
    Status(String, &'static str),
}

impl Key {
    /// Whether its event always reaches the stream: every message does, and
    /// so does `read`, the last status WhatsApp sends of a message; `sent`
    /// and `delivered` are not announced when a later status overtook them
    /// (webhooks posted at once are processed in the order they were stored).
    fn is_final(&self) -> bool {
        matches!(self, Key::Message(_) | Key::Status(_, "read"))
    }
}

/// What reached the stream of what was accepted.
struct OnStream {
    /// From sending to the stream, of each message and of each status.
    messages: Vec<Duration>,
    statuses: Vec<Duration>,
    /// Events that always reach it ([`Key::is_final`]) among them.
    finals: usize,
    /// When the last one arrived.
    last: Option<Instant>,
}

struct Posted {
    key: Key,
    sent: Instant,
    took: Duration,
    status: u16,
}

impl Ingest {
    async fn run(&self, suite: &Suite, db: &TestDatabase, rates: &[usize]) {
        let baseline = self.baseline(&db.url("bench")).await;
        let customers = self.customers(suite).await;
        let (queue_db, messaging_db) = (db.connect("queue").await, db.connect("messaging").await);
        let feed_before = count(&queue_db, FEED_EVENTS).await;
        let watcher = Watcher::start(suite.desk(WATCHER).await).await;
        let mut steps = Steps {
            suite,
            queue_db,
            messaging_db,
            feed_before,
            customers: &customers,
            watcher: &watcher,
            messaging: MessagingServiceClient::new(suite.channel("messaging")),
            concurrency: self.concurrency,
            baseline,
            next_customer: 0,
            next_step: 0,
        };
        println!(
            "1. webhook ingest: {} customers; 1 message : 3 statuses; at most {} webhooks in \
             flight; {} s per rate",
            customers.len(),
            self.concurrency,
            self.seconds
        );
        println!(
            "baseline: single-row durable inserts, {} at a time: {baseline:.0} /s",
            self.concurrency
        );
        println!(
            "{:>10} {:>10} {:>7} {:>7} {:>15} {:>10} {:>21} {:>21}",
            "offered",
            "accepted",
            "of base",
            "refused",
            "to 200 p50/p99",
            "processed",
            "message→stream p50/p99",
            "status→stream p50/p99"
        );
        for &rate in rates {
            if !steps.run(Some(rate), rate * self.seconds).await {
                println!("           (saturated: no higher rate offered)");
                break;
            }
        }
        steps.run(None, self.burst).await;
        println!(
            "(the last row: {} webhooks posted as fast as {} senders can; `processed`: webhooks \
             per second from the first post until the last one's event reached the stream)",
            self.burst, self.concurrency
        );
    }

    /// Single-row inserts of a webhook-sized row, each its own committed
    /// transaction, `concurrency` at a time, for three seconds: on
    /// PostgreSQL a connection each, on SQLite through one connection as a
    /// service has.
    async fn baseline(&self, url: &str) -> f64 {
        let (db, table) = if url.starts_with("sqlite:") {
            let settings = atenciones_runtime::Settings::load(None).expect("default settings");
            let db = atenciones_runtime::database::connect(url, &settings.database).await;
            (
                db.expect("baseline connection"),
                "CREATE TABLE bench_inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                 body TEXT NOT NULL, received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            )
        } else {
            let mut options = ConnectOptions::new(url);
            options
                .max_connections(self.concurrency as u32)
                .sqlx_logging(false);
            (
                Database::connect(options)
                    .await
                    .expect("baseline connection"),
                "CREATE TABLE bench_inbox (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL, \
                 received_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
        };
        db.execute_unprepared(table).await.expect("baseline table");
        let body = String::from_utf8(text_webhook(INGEST_NUMBER, "1", "C", "w", "Hola"))
            .expect("UTF-8")
            .replace('\'', "''");
        let rate = atenciones_tests::bench::statements_per_second(
            &db,
            self.concurrency,
            Duration::from_secs(3),
            move |_| format!("INSERT INTO bench_inbox (body) VALUES ('{body}')"),
        )
        .await;
        db.close().await.expect("close");
        rate
    }

    /// The ingest campaign, its watcher, and the customers with an attention
    /// each (their first message).
    async fn customers(&self, suite: &Suite) -> Vec<Customer> {
        let campaign = queue_pb::Campaign {
            id: INGEST_CAMPAIGN.into(),
            name: "Carga".into(),
            assignment_mode: queue_pb::AssignmentMode::Manual.into(),
            accept_timeout_seconds: 3600,
            default_agent_capacity: 10,
            orphan_grace_seconds: 3600,
            active: true,
            ..Default::default()
        };
        configure(
            &mut suite.sofia().await,
            campaign,
            Some(INGEST_NUMBER),
            &[(WATCHER, 0)],
        )
        .await;
        let wa_ids: Vec<String> = (0..self.customers)
            .map(|n| format!("549300{n:07}"))
            .collect();
        let first = wa_ids
            .iter()
            .map(|wa_id| {
                text_webhook(
                    INGEST_NUMBER,
                    wa_id,
                    "Cliente",
                    &format!("wamid.first.{wa_id}"),
                    "Hola",
                )
            })
            .collect();
        suite.post_all(first, self.concurrency).await;
        let attentions = suite.queued(WATCHER, self.customers).await;
        let by_customer: HashMap<String, String> = attentions
            .into_iter()
            .filter_map(|a| Some((a.customer?.wa_id, a.id)))
            .collect();
        wa_ids
            .into_iter()
            .map(|wa_id| Customer {
                attention_id: by_customer[&wa_id].clone(),
                wa_id,
            })
            .collect()
    }
}

/// Scenario 1's steps: each offers a load and waits until its events have
/// reached the watcher's stream.
struct Steps<'a> {
    suite: &'a Suite,
    /// To see, when events are missing, where they are.
    queue_db: DatabaseConnection,
    messaging_db: DatabaseConnection,
    /// The feed's message and status events before the watcher started.
    feed_before: i64,
    customers: &'a [Customer],
    watcher: &'a Watcher,
    messaging: MessagingServiceClient<Channel>,
    concurrency: usize,
    baseline: f64,
    next_customer: usize,
    next_step: usize,
}

impl Steps<'_> {
    /// Offers `events` webhooks at `rate` per second (as fast as they are
    /// taken when `None`) and prints what happened; false when the suite
    /// did not keep up.
    async fn run(&mut self, rate: Option<usize>, events: usize) -> bool {
        let groups = (events / 4).max(1);
        let sent = send_outbound(
            &mut self.messaging,
            self.customers,
            self.next_customer,
            groups,
        )
        .await;
        let step = self.next_step;
        let plan: Vec<(Key, Vec<u8>)> = sent
            .iter()
            .enumerate()
            .flat_map(|(g, (message_id, wamid, customer))| {
                let writer = &self.customers[(self.next_customer + g) % self.customers.len()].wa_id;
                let inbound = text_webhook(
                    INGEST_NUMBER,
                    writer,
                    "Cliente",
                    &format!("wamid.load.{step}.{g}"),
                    "Hola, ¿cómo va mi pedido?",
                );
                std::iter::once((Key::Message(writer.clone()), inbound)).chain(
                    ["sent", "delivered", "read"].map(|status| {
                        let body = status_webhook(INGEST_NUMBER, customer, wamid, status, None);
                        (Key::Status(message_id.clone(), status), body)
                    }),
                )
            })
            .collect();
        self.next_customer += groups;
        self.next_step += 1;

        let from = self.watcher.arrived();
        let started = Instant::now();
        let (posted, window) = self.offer(rate, plan).await;
        let accepted: Vec<&Posted> = posted.iter().filter(|p| p.status == 200).collect();
        let finals = accepted.iter().filter(|p| p.key.is_final()).count();
        let drained = self.watcher.wait_for(from, finals).await;
        let on = self.watcher.to_stream(&accepted, from);
        let accepted_rate = accepted.len() as f64 / window.as_secs_f64();
        // Once every final event arrived, every webhook was processed (an
        // overtaken status too, announcing nothing).
        let handled = if drained {
            accepted.len()
        } else {
            on.messages.len() + on.statuses.len()
        };
        let processed = handled as f64 / on.last.map_or(0.0, |last| (last - started).as_secs_f64());
        let to_200 = Summary::of(&accepted.iter().map(|p| p.took).collect::<Vec<_>>());
        let (m, s) = (Summary::of(&on.messages), Summary::of(&on.statuses));
        let offered = rate.map_or("burst".to_owned(), |r| format!("{r}/s"));
        println!(
            "{offered:>10} {accepted_rate:>8.1}/s {:>7.3} {:>7} {:>6.1} /{:>5.1} ms {processed:>8.1}/s \
             {:>7.0} /{:>7.0} ms {:>9.0} /{:>7.0} ms",
            accepted_rate / self.baseline,
            posted.len() - accepted.len(),
            to_200.p50,
            to_200.p99,
            m.p50,
            m.p99,
            s.p50,
            s.p99
        );
        let statuses = accepted
            .iter()
            .filter(|p| matches!(p.key, Key::Status(..)))
            .count();
        if drained && on.statuses.len() < statuses {
            println!(
                "           {} of {statuses} statuses announced: the others were overtaken by a \
                 later status of their message",
                on.statuses.len()
            );
        }
        let missing = finals - on.finals;
        if missing > 0 {
            let unprocessed = count(&self.messaging_db, UNPROCESSED).await;
            let in_feed = count(&self.queue_db, FEED_EVENTS).await - self.feed_before;
            let unsequenced = count(&self.queue_db, UNSEQUENCED).await;
            println!(
                "           {missing} messages and last statuses accepted were not on the stream \
                 30 s after the last event arrived: {unprocessed} webhooks wait in the inbox; the \
                 queue's feed holds {} events the stream did not deliver ({unsequenced} events \
                 without a position)",
                in_feed - self.watcher.arrived() as i64
            );
        }
        let offered = rate.map_or(f64::INFINITY, |r| r as f64);
        drained && accepted_rate >= 0.9 * offered && processed >= 0.9 * offered
    }

    /// Posts `plan` at `rate` per second, each webhook at its time (or as
    /// soon as fewer than `concurrency` are in flight). Returns every post
    /// and the time from the first post to the last answer.
    async fn offer(
        &self,
        rate: Option<usize>,
        plan: Vec<(Key, Vec<u8>)>,
    ) -> (Vec<Posted>, Duration) {
        // Signing is the sender's work, not the suite's: done before timing.
        let plan: Vec<(Key, Vec<u8>, String)> = plan
            .into_iter()
            .map(|(key, body)| {
                let signature = signature(APP_SECRET, &body);
                (key, body, signature)
            })
            .collect();
        let interval = rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r as f64));
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let started = tokio::time::Instant::now();
        let mut posts = JoinSet::new();
        let webhook = self.suite.webhook();
        for (i, (key, body, signature)) in plan.into_iter().enumerate() {
            tokio::time::sleep_until(started + interval * i as u32).await;
            let permit = permits.clone().acquire_owned().await.expect("open");
            let (http, url) = (self.suite.http.clone(), webhook.clone());
            posts.spawn(async move {
                let sent = Instant::now();
                let status = post(&http, &url, body, &signature).await;
                let took = sent.elapsed();
                drop(permit);
                Posted {
                    key,
                    sent,
                    took,
                    status,
                }
            });
        }
        let posted = posts.join_all().await;
        (posted, started.elapsed())
    }
}

/// Sends `count` messages to the customers from `first` on (as agents
/// would, straight to the messaging service, so the ingest has real
/// messages to report statuses of). Returns (message id, wamid, customer).
async fn send_outbound(
    messaging: &mut MessagingServiceClient<Channel>,
    customers: &[Customer],
    first: usize,
    count: usize,
) -> Vec<(String, String, String)> {
    let mut sends = JoinSet::new();
    let permits = Arc::new(Semaphore::new(16));
    for n in first..first + count {
        let customer = &customers[n % customers.len()];
        let request = messaging_pb::SendTextRequest {
            recipient: Some(messaging_pb::Recipient {
                attention_id: customer.attention_id.clone(),
                business_phone_number_id: INGEST_NUMBER.into(),
                customer: Some(atenciones_proto::common::v1::Customer {
                    id: customer.wa_id.clone(),
                    wa_id: customer.wa_id.clone(),
                    ..Default::default()
                }),
                agent_id: WATCHER.into(),
            }),
            text: "Su pedido está en camino.".into(),
            idempotency_key: format!("load-out-{n}"),
            ..Default::default()
        };
        let (mut messaging, wa_id) = (messaging.clone(), customer.wa_id.clone());
        let permit = permits.clone().acquire_owned().await.expect("open");
        sends.spawn(async move {
            let message = messaging
                .send_text(request)
                .await
                .expect("SendText")
                .into_inner()
                .message
                .expect("the message");
            drop(permit);
            assert!(!message.wamid.is_empty(), "sent at once");
            (n, (message.id, message.wamid, wa_id))
        });
    }
    let mut sent = sends.join_all().await;
    sent.sort_by_key(|(n, _)| *n);
    sent.into_iter().map(|(_, s)| s).collect()
}

/// An agent's live stream, read for the rest of the scenario: when each
/// customer message and status arrived.
struct Watcher {
    arrivals: Arc<Mutex<Vec<(Key, Instant)>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start(mut desk: Desk) -> Self {
        // The gateway fixes where the stream starts before it answers:
        // whatever is posted after this call returns reaches the stream.
        let mut stream = desk
            .stream_events(pb::StreamEventsRequest::default())
            .await
            .expect("StreamEvents")
            .into_inner();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let recorded = arrivals.clone();
        let reader = tokio::spawn(async move {
            loop {
                let item = match stream.message().await {
                    Ok(Some(item)) => item,
                    Ok(None) => return eprintln!("the watcher's stream ended"),
                    Err(status) => return eprintln!("the watcher's stream failed: {status}"),
                };
                let at = Instant::now();
                let Some(pb::stream_events_response::Item::Event(event)) = item.item else {
                    continue;
                };
                let payload: serde_json::Value =
                    serde_json::from_str(&event.payload_json).unwrap_or_default();
                let text = |field: &str| payload[field].as_str().unwrap_or_default().to_owned();
                let key = match event.kind.as_str() {
                    "attention.message_received" => Key::Message(text("actor")),
                    "attention.message_status" => match payload["status"].as_str() {
                        Some("sent") => Key::Status(text("message_id"), "sent"),
                        Some("delivered") => Key::Status(text("message_id"), "delivered"),
                        Some("read") => Key::Status(text("message_id"), "read"),
                        _ => continue,
                    },
                    _ => continue,
                };
                recorded.lock().expect("not poisoned").push((key, at));
            }
        });
        Self { arrivals, reader }
    }

    /// Events arrived so far.
    fn arrived(&self) -> usize {
        self.arrivals.lock().expect("not poisoned").len()
    }

    /// Waits until `count` events that always arrive ([`Key::is_final`])
    /// arrived after the first `from`; false when no event arrived for 30 s
    /// before that.
    async fn wait_for(&self, from: usize, count: usize) -> bool {
        let mut last = (0, Instant::now());
        loop {
            let (arrived, finals) = {
                let arrivals = self.arrivals.lock().expect("not poisoned");
                let finals = arrivals[from..]
                    .iter()
                    .filter(|(k, _)| k.is_final())
                    .count();
                (arrivals.len(), finals)
            };
            if finals >= count {
                return true;
            }
            if arrived != last.0 {
                last = (arrived, Instant::now());
            }
            if last.1.elapsed() > Duration::from_secs(30) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// From sending each accepted webhook to its event on the stream, for
    /// the events arrived after the first `from` (a customer's messages
    /// arrive in the order they were sent, so the n-th sent pairs with the
    /// n-th arrived).
    fn to_stream(&self, accepted: &[&Posted], from: usize) -> OnStream {
        let mut by_time = accepted.to_vec();
        by_time.sort_by_key(|p| p.sent);
        let mut sent: HashMap<&Key, VecDeque<Instant>> = HashMap::new();
        for posted in by_time {
            sent.entry(&posted.key).or_default().push_back(posted.sent);
        }
        let mut on = OnStream {
            messages: Vec::new(),
            statuses: Vec::new(),
            finals: 0,
            last: None,
        };
        for (key, at) in &self.arrivals.lock().expect("not poisoned")[from..] {
            let Some(sent) = sent.get_mut(key).and_then(VecDeque::pop_front) else {
                continue;
            };
            let took = at.saturating_duration_since(sent);
            match key {
                Key::Message(_) => on.messages.push(took),
                Key::Status(..) => on.statuses.push(took),
            }
            on.finals += usize::from(key.is_final());
            on.last = Some(*at);
        }
        on
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Prints what each process logged at WARN or ERROR during the run, by
/// message, with one example of the details.
fn problems_logged(suite: &Suite) {
    println!("warnings and errors the processes logged:");
    let mut any = false;
    for (role, process) in &suite.processes {
        let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for line in process.logs() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let level = entry["level"].as_str().unwrap_or_default();
            if level != "WARN" && level != "ERROR" {
                continue;
            }
            let fields = &entry["fields"];
            let message = fields["message"].as_str().unwrap_or_default();
            let seen = seen
                .entry(format!("{level} {message}"))
                .or_insert_with(|| (0, fields.to_string()));
            seen.0 += 1;
        }
        for (what, (count, example)) in seen {
            any = true;
            let example: String = example.chars().take(240).collect();
            println!("  {role:<10} {count:>6} × {what}\n             e.g. {example}");
        }
    }
    if !any {
        println!("  none");
    }
}

/// Samples of each call kind, by name.
#[derive(Default)]
struct Calls(HashMap<&'static str, Vec<Duration>>);

impl Calls {
    fn add(&mut self, other: Calls) {
        for (name, samples) in other.0 {
            self.0.entry(name).or_default().extend(samples);
        }
    }

    fn get(&self, name: &str) -> Summary {
        Summary::of(self.0.get(name).map_or(&[][..], Vec::as_slice))
    }

    /// Runs `call`, recording how long it took under `name`.
    async fn time<T>(
        &mut self,
        name: &'static str,
        call: impl Future<Output = Result<T, tonic::Status>>,
    ) -> T {
        let (value, took) = timed(name, call).await;
        self.0.entry(name).or_default().push(took);
        value
    }
}

async fn timed<T>(
    name: &str,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> (T, Duration) {
    let started = Instant::now();
    let value = call
        .await
        .unwrap_or_else(|status| panic!("{name}: {status}"));
    (value, started.elapsed())
}

/// The backend services, called directly as the gateway calls them.
#[derive(Clone)]
struct Backends {
    queue: QueueServiceClient<Channel>,
    messaging: MessagingServiceClient<Channel>,
    form: FormServiceClient<Channel>,
    history: HistoryServiceClient<Channel>,
}

/// The queue's message and status events (what the watcher streams).
const FEED_EVENTS: &str = "SELECT COUNT(*) FROM queue_outbox \
     WHERE kind IN ('attention.message_received', 'attention.message_status')";
/// Webhooks stored but not processed yet.
const UNPROCESSED: &str = "SELECT COUNT(*) FROM messaging_inbox WHERE processed_at IS NULL";
/// Committed events not yet sequenced into the feed.
const UNSEQUENCED: &str = "SELECT COUNT(*) FROM queue_outbox WHERE position IS NULL";

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("count")
        .and_then(|row| row.try_get_by_index::<i64>(0).ok())
        .expect("a count")
}

/// The slowest backend call of each direct open, and the whole direct open.
const SLOWEST: &str = "slowest single backend call of each";
const DIRECT: &str = "the whole open, both rounds";
/// The gateway's calls, in the order an agent makes them.
const DESK_CALLS: [&str; 5] = [
    "ListAttentions",
    "OpenAttention",
    "SendText",
    "SaveFormDraft",
    "FinishAttention",
];
/// Attentions one agent serves alone before everyone starts.
const ALONE: usize = 20;

/// Backend calls of an open, in the order `gateway/src/desk.rs` lists them.
const BACKEND_CALLS: [&str; 7] = [
    "queue OpenAttention",
    "queue GetAgent",
    "messaging ListMessages",
    "messaging GetWindow",
    "history ListCustomerAttentions",
    "form GetForm",
    "form GetDraft",
];

impl Backends {
    /// Opens the attention as the gateway's OpenAttention does: the queue's
    /// open and the agent first, then everything the screen needs at once.
    /// Records each call, and the slowest of them as `slowest`.
    async fn open(&self, agent: &str, attention_id: &str, calls: &mut Calls) {
        let started = Instant::now();
        let (mut queue, mut agents) = (self.queue.clone(), self.queue.clone());
        let ((opened, t_open), (found, t_agent)) = tokio::join!(
            timed(
                BACKEND_CALLS[0],
                queue.open_attention(queue_pb::OpenAttentionRequest {
                    attention_id: attention_id.into(),
                    agent_id: agent.into(),
                })
            ),
            timed(
                BACKEND_CALLS[1],
                agents.get_agent(queue_pb::GetAgentRequest {
                    agent_id: agent.into()
                })
            ),
        );
        let attention = opened.into_inner().attention.expect("attention");
        let agent = found.into_inner().agent.expect("agent");
        let customer_id = attention.customer.map(|c| c.id).unwrap_or_default();
        let (mut messages, mut window) = (self.messaging.clone(), self.messaging.clone());
        let (mut history, mut form, mut draft) =
            (self.history.clone(), self.form.clone(), self.form.clone());
        let (t_messages, t_window, t_history, t_form, t_draft) = tokio::join!(
            timed(
                BACKEND_CALLS[2],
                messages.list_messages(messaging_pb::ListMessagesRequest {
                    attention_id: attention.id.clone(),
                    page_size: 20,
                    page_token: String::new(),
                })
            ),
            timed(
                BACKEND_CALLS[3],
                window.get_window(messaging_pb::GetWindowRequest {
                    business_phone_number_id: attention.business_phone_number_id.clone(),
                    customer_id: customer_id.clone(),
                })
            ),
            timed(
                BACKEND_CALLS[4],
                history.list_customer_attentions(history_pb::ListCustomerAttentionsRequest {
                    customer_id,
                    campaign_ids: agent.campaign_ids,
                    page_size: 0,
                    page_token: String::new(),
                })
            ),
            timed(
                BACKEND_CALLS[5],
                form.get_form(form_pb::GetFormRequest {
                    form_id: attention.form_id.clone(),
                })
            ),
            timed(
                BACKEND_CALLS[6],
                draft.get_draft(form_pb::GetDraftRequest {
                    attention_id: attention.id.clone(),
                    form_id: attention.form_id.clone(),
                })
            ),
        );
        let took = [
            t_open,
            t_agent,
            t_messages.1,
            t_window.1,
            t_history.1,
            t_form.1,
            t_draft.1,
        ];
        for (name, took) in BACKEND_CALLS.into_iter().zip(took) {
            calls.0.entry(name).or_default().push(took);
        }
        let slowest = took.into_iter().max().unwrap_or_default();
        calls.0.entry(SLOWEST).or_default().push(slowest);
        calls.0.entry(DIRECT).or_default().push(started.elapsed());
    }
}

/// Scenario 2: one agent of the ventas campaign serves [`ALONE`] attentions
/// alone, then `agents` agents each serve `rounds`, all at once.
async fn agent_actions(suite: &Suite, agents: usize, rounds: usize) {
    let names: Vec<String> = (0..agents).map(|n| format!("agente-{n:03}")).collect();
    let mut sofia = suite.sofia().await;
    let ventas = campaign(&mut sofia, "ventas").await;
    let members: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 0)).collect();
    configure(&mut sofia, ventas, None, &members).await;
    let mut desks = Vec::new();
    for name in &names {
        let mut desk = suite.desk(name).await;
        desk.set_presence(pb::SetPresenceRequest {
            state: queue_pb::PresenceState::Available.into(),
            pause_reason: String::new(),
        })
        .await
        .expect("SetPresence");
        desks.push(desk);
    }
    let total = ALONE + agents * rounds;
    let customers: Vec<Vec<u8>> = (0..total)
        .map(|n| {
            text_webhook(
                VENTAS_NUMBER,
                &format!("549400{n:07}"),
                "Cliente",
                &format!("wamid.agents.{n}"),
                "Quiero el plan anual",
            )
        })
        .collect();
    suite.post_all(customers, 32).await;
    let queued: Vec<String> = suite
        .queued(&names[0], total)
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();
    let backends = Backends {
        queue: QueueServiceClient::new(suite.channel("queue")),
        messaging: MessagingServiceClient::new(suite.channel("messaging")),
        form: FormServiceClient::new(suite.channel("form")),
        history: HistoryServiceClient::new(suite.channel("history")),
    };

    let (first, rest) = queued.split_at(ALONE);
    let (alone, _) = serve(
        vec![(names[0].clone(), desks[0].clone(), first.to_vec())],
        &backends,
    )
    .await;
    let work = names
        .into_iter()
        .zip(desks)
        .enumerate()
        .map(|(n, (name, desk))| {
            let mine = rest.iter().skip(n).step_by(agents).cloned().collect();
            (name, desk, mine)
        })
        .collect();
    let (together, spent) = serve(work, &backends).await;
    println!(
        "2. agent actions: each agent lists, opens, answers, fills the form and finishes, one \
         attention after another; first one agent alone ({ALONE} attentions), then {agents} \
         agents at once ({rounds} each): {} served in {:.1} s = {:.1} attentions/s",
        agents * rounds,
        spent.as_secs_f64(),
        (agents * rounds) as f64 / spent.as_secs_f64()
    );
    println!(
        "{:<38} {:>21} {:>21}",
        "p50 / p99 ms",
        "1 agent alone",
        format!("{agents} agents at once")
    );
    let row = |name: &str| {
        let (a, t) = (alone.get(name), together.get(name));
        println!(
            "  {name:<36} {:>9.1} / {:>8.1} {:>9.1} / {:>8.1}",
            a.p50, a.p99, t.p50, t.p99
        );
    };
    println!("through the gateway:");
    DESK_CALLS.into_iter().for_each(row);
    println!("every other open made as the gateway makes it, straight to the backends:");
    BACKEND_CALLS
        .into_iter()
        .chain([SLOWEST, DIRECT])
        .for_each(row);
    let ratio = |calls: &Calls, of: &str| {
        let (gateway, backend) = (calls.get("OpenAttention"), calls.get(of));
        format!(
            "p50 {:.2}×, p99 {:.2}×",
            gateway.p50 / backend.p50.max(0.001),
            gateway.p99 / backend.p99.max(0.001)
        )
    };
    println!(
        "OpenAttention through the gateway vs its slowest backend call: alone {}; at once {}",
        ratio(&alone, SLOWEST),
        ratio(&together, SLOWEST)
    );
    println!(
        "OpenAttention through the gateway vs the same calls made directly: alone {}; at once {}",
        ratio(&alone, DIRECT),
        ratio(&together, DIRECT)
    );
}

/// Each agent serves its attentions one after another, all agents at once:
/// list, open (every other one straight to the backends), answer, fill the
/// form, finish. Returns every call's time and how long it all took.
async fn serve(work: Vec<(String, Desk, Vec<String>)>, backends: &Backends) -> (Calls, Duration) {
    let started = Instant::now();
    let mut agents = JoinSet::new();
    for (name, mut desk, mine) in work {
        let backends = backends.clone();
        agents.spawn(async move {
            let mut calls = Calls::default();
            for (round, id) in mine.into_iter().enumerate() {
                calls
                    .time(
                        DESK_CALLS[0],
                        desk.list_attentions(pb::ListAttentionsRequest::default()),
                    )
                    .await;
                if round % 2 == 0 {
                    calls
                        .time(
                            DESK_CALLS[1],
                            desk.open_attention(pb::OpenAttentionRequest {
                                attention_id: id.clone(),
                                message_page_size: 20,
                            }),
                        )
                        .await;
                } else {
                    backends.open(&name, &id, &mut calls).await;
                }
                calls
                    .time(
                        DESK_CALLS[2],
                        desk.send_text(pb::SendTextRequest {
                            attention_id: id.clone(),
                            text: "Hola, ¿en qué puedo ayudarle?".into(),
                            idempotency_key: format!("{id}-reply"),
                            ..Default::default()
                        }),
                    )
                    .await;
                let motivo = form_pb::FieldValue {
                    kind: Some(form_pb::field_value::Kind::Choice("compra".into())),
                };
                calls
                    .time(
                        DESK_CALLS[3],
                        desk.save_form_draft(pb::SaveFormDraftRequest {
                            attention_id: id.clone(),
                            values: [("motivo".to_owned(), motivo)].into(),
                        }),
                    )
                    .await;
                calls
                    .time(
                        DESK_CALLS[4],
                        desk.finish_attention(pb::FinishAttentionRequest { attention_id: id }),
                    )
                    .await;
            }
            calls
        });
    }
    let mut calls = Calls::default();
    for done in agents.join_all().await {
        calls.add(done);
    }
    (calls, started.elapsed())
}
