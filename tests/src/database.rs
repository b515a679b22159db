//! Fresh databases per test.

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use uuid::Uuid;

use atenciones_runtime::{ServiceName, Settings};

/// Where a test's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file per service in a temporary directory: always available.
    Sqlite,
    /// A database created on the server at `ATENCIONES_TEST_POSTGRES_URL` (an
    /// admin URL such as postgres://postgres@127.0.0.1:5432/postgres) and dropped
    /// after the test. Without the variable the test is skipped, unless
    /// `ATENCIONES_TEST_REQUIRE_POSTGRES=1` (CI), where that is a failure.
    Postgres,
}

const URL_VAR: &str = "ATENCIONES_TEST_POSTGRES_URL";
const REQUIRE_VAR: &str = "ATENCIONES_TEST_REQUIRE_POSTGRES";

pub(crate) struct TestDatabase {
    dir: tempfile::TempDir,
    postgres: Option<Postgres>,
}

struct Postgres {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub(crate) async fn create(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var(URL_VAR) else {
                    assert!(
                        std::env::var(REQUIRE_VAR).is_err(),
                        "{REQUIRE_VAR} is set but {URL_VAR} is not: PostgreSQL tests must run"
                    );
                    eprintln!(
                        "SKIPPED on PostgreSQL: set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it"
                    );
                    return None;
                };
                let name = format!("atenciones_test_{}", Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url)
                    .await
                    .expect("PostgreSQL reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                admin.close().await.expect("close");
                Some(Postgres { admin_url, name })
            }
        };
        Some(Self { dir, postgres })
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The test database's URL for PostgreSQL; `None` for SQLite (files under data_dir).
    pub(crate) fn url(&self) -> Option<String> {
        self.postgres
            .as_ref()
            .map(|pg| database_url(&pg.admin_url, &pg.name))
    }

    pub(crate) async fn count_rows(&self, settings: &Settings, table: &str) -> i64 {
        let db: DatabaseConnection =
            Database::connect(settings.database_url(ServiceName::Messaging))
                .await
                .expect("connect");
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        let n: i64 = row.try_get("", "n").expect("a count");
        db.close().await.expect("close");
        n
    }
}

fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    format!("{base}/{name}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else {
            return;
        };
        let name = pg.name.clone();
        // Drop runs outside async: use a private runtime on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let admin = Database::connect(&pg.admin_url).await?;
                admin
                    .execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        pg.name
                    ))
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {name}");
        }
    }
}
