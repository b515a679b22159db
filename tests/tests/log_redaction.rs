//! Logs at every level, of every crate, during a whole attention (a
//! customer's webhook, the agent's reply, the form, Finish, the history
//! record): no message text, no credential and no customer's full number
//! appear. One test in its own process: it installs the process's logger.

use std::io::Write;
use std::sync::{Arc, Mutex};

use atenciones_tests::{ACCESS_TOKEN, APP_SECRET, Role, TestDatabase, TestSuite, text_webhook};
use tracing_subscriber::fmt::MakeWriter;

const VENTAS_NUMBER: &str = "1122334455667";
const CUSTOMER: &str = "5491176543210";
const SECRET_TEXT: &str = "mi-clave-es-ornitorrinco";

/// Every log line, kept to be read at the end.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_every_level_hold_no_text_credential_or_number() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();
    let db = TestDatabase::create(atenciones_tests::Backend::Sqlite)
        .await
        .expect("SQLite always runs");
    let suite = TestSuite::start(db).await;
    let token = suite.token("ana", Role::Agent);
    let hello = text_webhook(
        VENTAS_NUMBER,
        CUSTOMER,
        "Clienta",
        "wamid.secret.1",
        SECRET_TEXT,
    );
    suite.serve_and_finish(&hello, "ana").await;
    suite.stop().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    // Ours and our dependencies' (the calls' spans, hyper's connections).
    assert!(
        logs.contains("RecordInboundMessage"),
        "our logs were captured"
    );
    assert!(logs.contains("hyper"), "dependencies' logs were captured");
    for (what, secret) in [
        ("the customer's text", SECRET_TEXT),
        ("the agent's reply", "¿en qué puedo ayudarle?"),
        ("the customer's number", CUSTOMER),
        ("the WhatsApp access token", ACCESS_TOKEN),
        ("the app secret", APP_SECRET),
        ("the agent's credential", token.as_str()),
    ] {
        let leaks: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(secret))
            .take(3)
            .collect();
        assert!(leaks.is_empty(), "{what} is in the logs: {leaks:#?}");
    }
}
