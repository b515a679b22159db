//! The suite as a child process, for tests that must kill it the hard way
//! (SIGKILL: no shutdown, no flushing) and start it again on the same data.
//!
//! Settings travel as `ATENCIONES_*` environment variables; every server
//! listens on port 0 and the real addresses are read from the process's
//! JSON start-up log line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{CloudApi, TestDatabase};

/// The log line `atenciones run` writes once every server listens.
const LISTENING: &str = "atenciones is listening";

/// The environment of a suite on `database` that sends to `cloud_api`:
/// every server on port 0, JSON logs. Add or override variables as needed.
pub fn suite_env(database: &TestDatabase, cloud_api: &CloudApi) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        (
            "ATENCIONES_DATA_DIR",
            database.data_dir().display().to_string(),
        ),
        ("ATENCIONES_TELEMETRY__LOG_FORMAT", "json".into()),
        ("ATENCIONES_TELEMETRY__LOG_FILTER", "info".into()),
        ("ATENCIONES_WHATSAPP__API_BASE_URL", cloud_api.base_url()),
        (
            "ATENCIONES_WHATSAPP__ACCESS_TOKEN",
            "test-access-token".into(),
        ),
        (
            "ATENCIONES_WHATSAPP__APP_SECRET",
            crate::webhook::APP_SECRET.into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for role in ["GATEWAY", "QUEUE", "MESSAGING", "FORM", "HISTORY"] {
        env.insert(format!("ATENCIONES_{role}__LISTEN"), "127.0.0.1:0".into());
    }
    env.insert(
        "ATENCIONES_MESSAGING__WEBHOOK_LISTEN".into(),
        "127.0.0.1:0".into(),
    );
    for service in ["queue", "messaging", "form", "history"] {
        env.insert(
            format!("ATENCIONES_{}__DATABASE_URL", service.to_uppercase()),
            database.url(service),
        );
    }
    env
}

/// A running `atenciones` process. Dropping it kills the process.
pub struct SuiteProcess {
    child: Child,
    /// Where each server listens, by the name the start-up line gives it
    /// (`gateway`, `messaging`, `webhook`, …).
    pub addresses: HashMap<String, String>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl SuiteProcess {
    /// Starts `binary run` with `env` (and nothing else of this process's
    /// `ATENCIONES_*` or `RUST_LOG`) and waits until it listens.
    pub async fn start(binary: &Path, env: &HashMap<String, String>) -> Self {
        Self::start_roles(binary, env, &[]).await
    }

    /// As [`SuiteProcess::start`], running only `roles` (all when empty): a
    /// deployment split over processes, each of which can die on its own.
    pub async fn start_roles(binary: &Path, env: &HashMap<String, String>, roles: &[&str]) -> Self {
        let mut command = Command::new(binary);
        command.arg("run");
        if !roles.is_empty() {
            command.arg("--role").arg(roles.join(","));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("ATENCIONES_") || key == "RUST_LOG" {
                command.env_remove(key.as_ref());
            }
        }
        command.envs(env);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (listening, addresses) = tokio::sync::oneshot::channel();
        // Keeps draining stdout for the process's whole life: a full pipe
        // would block its logging, and with it the process.
        tokio::spawn(read_logs(BufReader::new(stdout), logs.clone(), listening));
        let addresses = tokio::time::timeout(Duration::from_secs(60), addresses)
            .await
            .unwrap_or_else(|_| panic!("{} did not start in 60 s", binary.display()))
            .unwrap_or_else(|_| panic!("{} exited before listening", binary.display()));
        Self {
            child,
            addresses,
            logs,
        }
    }

    /// `http://<address>` of a server (`messaging`, `gateway`, …).
    pub fn url(&self, server: &str) -> String {
        let address = self
            .addresses
            .get(server)
            .unwrap_or_else(|| panic!("no {server} address in {:?}", self.addresses));
        format!("http://{address}")
    }

    /// The process's id, to read its resident memory or signal it.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("a running process has an id")
    }

    /// SIGKILL: the process stops at once, mid-call, as in a crash.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill the suite");
    }

    /// Every log line so far, for a failing test to show.
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

async fn read_logs<R: tokio::io::AsyncRead + Unpin>(
    reader: BufReader<R>,
    logs: Arc<Mutex<Vec<String>>>,
    listening: tokio::sync::oneshot::Sender<HashMap<String, String>>,
) {
    let mut listening = Some(listening);
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addresses) = listening_addresses(&line)
            && let Some(listening) = listening.take()
        {
            let _ = listening.send(addresses);
        }
        logs.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }
}

/// The addresses in the start-up line, `webhook` as a socket address.
fn listening_addresses(line: &str) -> Option<HashMap<String, String>> {
    let entry: Value = serde_json::from_str(line).ok()?;
    let fields = entry.get("fields")?.as_object()?;
    if fields.get("message")?.as_str()? != LISTENING {
        return None;
    }
    Some(
        fields
            .iter()
            .filter(|(name, _)| name.as_str() != "message")
            .filter_map(|(name, value)| {
                let value = value.as_str()?;
                // The webhook is logged as its full URL.
                let address = value
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or_default();
                address
                    .parse::<SocketAddr>()
                    .ok()
                    .map(|_| (name.clone(), address.to_owned()))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_line_gives_every_address() {
        let line = r#"{"timestamp":"2026-11-26T02:00:00Z","level":"INFO","fields":{"message":"atenciones is listening","gateway":"127.0.0.1:4001","webhook":"http://127.0.0.1:4002/webhooks/whatsapp","queue":"-"},"target":"atenciones"}"#;
        let addresses = listening_addresses(line).expect("the line");
        assert_eq!(addresses["gateway"], "127.0.0.1:4001");
        assert_eq!(addresses["webhook"], "127.0.0.1:4002");
        assert!(!addresses.contains_key("queue"), "a role not started");
        assert_eq!(
            listening_addresses(r#"{"fields":{"message":"other"}}"#),
            None
        );
    }
}
