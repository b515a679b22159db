//! A PostgreSQL server of the test's own, for tests that stop and start the
//! database under load: a cluster made with `initdb` in a temporary directory,
//! listening on 127.0.0.1 on a free port (and on a socket in that directory),
//! trusting local connections. The shared server is never touched. Dropping it
//! stops the server and removes the directory.
//!
//! PostgreSQL refuses to run as root, so when the tests do (CI containers)
//! the cluster belongs to, and runs as, the `postgres` user.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::free_port;

/// The user a root test runs PostgreSQL as.
const OWNER: &str = "postgres";
/// Set (in CI), a test needing PostgreSQL fails instead of skipping, as with
/// [`crate::Backend::Postgres`].
const REQUIRE_VAR: &str = "ATENCIONES_TEST_REQUIRE_POSTGRES";

/// A running private cluster (see the module).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Whether commands run as [`OWNER`].
    as_owner: bool,
}

impl PrivatePostgres {
    /// Makes and starts a cluster, or `None` (skipped, with a message) when
    /// this machine has no PostgreSQL server binaries — a failure instead when
    /// `ATENCIONES_TEST_REQUIRE_POSTGRES` is set.
    pub async fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            skip_or_fail("no PostgreSQL server binaries (initdb, pg_ctl): install PostgreSQL");
            return None;
        };
        let as_owner = running_as_root();
        if as_owner && !user_exists(OWNER) {
            skip_or_fail("running as root without a `postgres` user to run PostgreSQL as");
            return None;
        }
        let cluster = Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            bin,
            port: free_port(),
            as_owner,
        };
        if as_owner {
            let mut chown = std_command("chown");
            chown.arg(OWNER).arg(cluster.dir.path());
            run(chown).await;
        }
        let mut initdb = cluster.command("initdb");
        initdb
            .arg("--pgdata")
            .arg(cluster.data())
            .args(["--username", "postgres", "--auth", "trust"])
            // Independent of the machine's locales; no fsync of a throwaway.
            .args(["--encoding", "UTF8", "--locale", "C", "--no-sync"]);
        run(initdb).await;
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             # Stopping the server (not the machine) loses nothing written to the OS.\n\
             fsync = off\n",
            cluster.port,
            cluster.dir.path().display(),
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data().join("postgresql.conf"))
            .and_then(|mut conf| conf.write_all(settings.as_bytes()))
            .expect("write postgresql.conf");
        cluster.start_again().await;
        Some(cluster)
    }

    /// The URL of the `postgres` database as its superuser, to create
    /// databases on it (see [`crate::TestDatabase::create_postgres`]).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash does: connections are cut, no
    /// checkpoint; the next start recovers from the WAL.
    pub async fn stop(&self) {
        run(self.pg_ctl(&["stop", "--mode", "immediate"])).await;
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub async fn start_again(&self) {
        let log = self.dir.path().join("server.log");
        let mut start = self.pg_ctl(&["start", "--wait", "--timeout", "60"]);
        start.arg("--log").arg(log);
        run(start).await;
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `pg_ctl <args>` on this cluster.
    fn pg_ctl(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.command("pg_ctl");
        command.args(args).arg("--pgdata").arg(self.data());
        command
    }

    /// One of the server binaries, as the user the cluster belongs to.
    fn command(&self, binary: &str) -> std::process::Command {
        let path = self.bin.join(binary);
        if !self.as_owner {
            return std_command(path);
        }
        let mut command = std_command("runuser");
        command.args(["-u", OWNER, "--"]).arg(path);
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Blocking, but short; the directory goes with `dir` after it.
        let stopped = self
            .pg_ctl(&["stop", "--mode", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(stopped, Ok(status) if status.success()) {
            eprintln!(
                "the private PostgreSQL in {} was not running at the end",
                self.dir.path().display()
            );
        }
    }
}

/// Runs `command` to its end; a failure fails the test with its output.
async fn run(command: std::process::Command) {
    let shown = format!("{command:?}");
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {shown}: {e}"));
    assert!(
        output.status.success(),
        "{shown} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// Skips the test with `why`, or fails it when [`REQUIRE_VAR`] is set.
fn skip_or_fail(why: &str) {
    assert!(
        std::env::var_os(REQUIRE_VAR).is_none(),
        "{REQUIRE_VAR} is set but {why}"
    );
    eprintln!("SKIPPED: {why}");
}

fn std_command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command.stdin(Stdio::null()).env_remove("PGDATA");
    command
}

/// The directory of `initdb` and `pg_ctl`: `pg_config --bindir` (the client
/// package may be installed without the server), else the newest
/// /usr/lib/postgresql/<version>/bin.
fn server_binaries() -> Option<PathBuf> {
    let has_server = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let configured = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    if let Some(dir) = configured.filter(|dir| has_server(dir)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// The effective user of this process owns its /proc entry.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn user_exists(name: &str) -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
