//! A fresh database per test.

use std::path::Path;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

/// Where a test's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file per service in a temporary directory: always available.
    Sqlite,
    /// A database created on the server at `ATENCIONES_TEST_POSTGRES_URL` (an
    /// admin URL such as postgres://postgres@127.0.0.1:5432/postgres) and dropped
    /// after the test. Without the variable the test is skipped, unless
    /// `ATENCIONES_TEST_REQUIRE_POSTGRES` is set (CI), where that is a failure.
    Postgres,
}

const URL_VAR: &str = "ATENCIONES_TEST_POSTGRES_URL";
const REQUIRE_VAR: &str = "ATENCIONES_TEST_REQUIRE_POSTGRES";
/// CI sweeps databases with this prefix left behind by interrupted runs.
const NAME_PREFIX: &str = "atenciones_test_";

/// One test's database. Every service of the test gets its own SQLite file in
/// the temporary directory, or shares the one PostgreSQL database (each
/// service's tables carry its prefix). Dropping it drops that database.
pub struct TestDatabase {
    dir: tempfile::TempDir,
    postgres: Option<Postgres>,
}

struct Postgres {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// A fresh database on `backend`, or `None` when PostgreSQL is not
    /// configured here (see [`Backend::Postgres`]).
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self {
                dir: tempfile::tempdir().expect("temporary directory"),
                postgres: None,
            }),
            Backend::Postgres => {
                let Some(admin_url) = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty())
                else {
                    assert!(
                        std::env::var_os(REQUIRE_VAR).is_none(),
                        "{REQUIRE_VAR} is set but {URL_VAR} is not: PostgreSQL tests must run"
                    );
                    eprintln!(
                        "SKIPPED on PostgreSQL: set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it"
                    );
                    return None;
                };
                Some(Self::create_postgres(admin_url).await)
            }
        }
    }

    /// A fresh database on the PostgreSQL server at `admin_url` (benchmarks
    /// use it with a default server).
    pub async fn create_postgres(admin_url: String) -> Self {
        let name = format!("{NAME_PREFIX}{}", Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        admin.close().await.expect("close");
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            postgres: Some(Postgres { admin_url, name }),
        }
    }

    /// A temporary directory that lives as long as the database.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL `service` (queue, messaging, …) stores its data at.
    pub fn url(&self, service: &str) -> String {
        match &self.postgres {
            Some(pg) => {
                let server = pg
                    .admin_url
                    .rsplit_once('/')
                    .map_or(pg.admin_url.as_str(), |(server, _)| server);
                format!("{server}/{}", pg.name)
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join(format!("{service}.db")).display()
            ),
        }
    }

    /// A plain connection to `service`'s database, for looking at what it stored.
    pub async fn connect(&self, service: &str) -> DatabaseConnection {
        Database::connect(self.url(service))
            .await
            .expect("test database reachable")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else {
            return;
        };
        let name = pg.name.clone();
        // Drop is not async, and may run inside a runtime that must not be
        // blocked on: a private runtime on a thread of its own. FORCE ends the
        // connections a stopped service's pool may still hold.
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
