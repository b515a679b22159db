//! What the workspace's tests share: a fresh database per test (a SQLite
//! directory, or a PostgreSQL database made for the test and dropped after it),
//! the `on_both_databases!` macro that runs a test on each, a fake WhatsApp
//! Cloud API, signed webhook bodies, signed channels to services, the suite
//! as a child process for crash tests, and a private PostgreSQL server that
//! fault tests may stop and start.

pub mod cloud_api;
mod database;
pub mod desk;
mod ports;
mod private_postgres;
pub mod process;
pub mod services;
pub mod webhook;

pub use cloud_api::{Answer, CloudApi, SentRequest, UploadedMedia};
pub use database::{Backend, TestDatabase};
pub use desk::{Desk, agent_desk};
pub use ports::free_port;
pub use private_postgres::PrivatePostgres;
pub use process::{SuiteProcess, suite_env};

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it returns `Some` (processing is asynchronous by design:
/// webhooks are acknowledged first, then processed). Gives up after 15 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `async fn $name(db: TestDatabase)` once on each database, as
/// `mod $name { sqlite, postgres }`. The PostgreSQL test returns at once
/// (skipped) when [`TestDatabase::create`] gives `None`. The calling crate
/// needs tokio with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::TestDatabase::create($crate::Backend::Sqlite)
                    .await
                    .expect("SQLite always runs");
                super::$name(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::TestDatabase::create($crate::Backend::Postgres).await else {
                    return;
                };
                super::$name(db).await;
            }
        }
    };
}
