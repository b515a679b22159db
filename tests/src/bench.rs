//! What the load binaries in `tests/benches` share: sizes from the
//! environment, the PostgreSQL server, latency percentiles, resident memory
//! and the durable-transaction baseline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::task::JoinSet;

/// A size from the environment variable `var`, or `default`.
pub fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The PostgreSQL server benchmarks make their database on:
/// `ATENCIONES_TEST_POSTGRES_URL`, or the local one.
pub fn postgres_server() -> String {
    std::env::var("ATENCIONES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Resident memory of process `pid` (`"self"` for this one), in KiB; 0 when
/// it cannot be read (not Linux, or the process is gone).
pub fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
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

/// Count, p50, p99 and slowest of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |p: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Self {
            n: sorted.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// How many statements per second `concurrency` callers complete on `db`,
/// each statement its own committed (durable) transaction, for `duration`.
/// `statement(n)` is the `n`-th statement (n from 1, unique across callers).
pub async fn statements_per_second(
    db: &DatabaseConnection,
    concurrency: usize,
    duration: Duration,
    statement: impl Fn(usize) -> String + Send + Sync + 'static,
) -> f64 {
    let statement = Arc::new(statement);
    let next = Arc::new(AtomicUsize::new(1));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (db, next, statement) = (db.clone(), next.clone(), statement.clone());
        tasks.spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                db.execute_unprepared(&statement(n))
                    .await
                    .expect("baseline statement");
                done += 1;
            }
            done
        });
    }
    let total: usize = tasks.join_all().await.into_iter().sum();
    total as f64 / started.elapsed().as_secs_f64()
}
