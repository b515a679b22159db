//! The agent's core loop in a real browser: headless Chromium loads a page
//! from another origin, and the page, using the shipped TypeScript client
//! over gRPC-Web, lists attentions, opens one, replies, fills the form and
//! finishes it. Needs Debian's Chromium and `npm ci` in gateway/typescript
//! (`.ci/run` installs both and sets ATENCIONES_TEST_REQUIRE_BROWSER, so
//! there the test cannot skip).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use atenciones_tests::{Backend, Role, TestDatabase, TestSuite, text_webhook};

fn typescript_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/typescript")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Whether the tools are here; without them the test fails only when
/// required.
fn tools_present() -> bool {
    let present = chromium().exists()
        && typescript_dir().join("node_modules/.bin/esbuild").exists()
        && typescript_dir()
            .join("node_modules/playwright-core")
            .exists();
    assert!(
        present || std::env::var_os("ATENCIONES_TEST_REQUIRE_BROWSER").is_none(),
        "Chromium or gateway/typescript/node_modules missing (see .ci/run)"
    );
    present
}

/// The page and its script, bundled by esbuild into `dir`.
async fn build_page(dir: &Path) {
    let status = tokio::process::Command::new(typescript_dir().join("node_modules/.bin/esbuild"))
        .current_dir(typescript_dir())
        .args(["browser-test/page.ts", "--bundle", "--format=esm"])
        .arg(format!("--outfile={}", dir.join("page.js").display()))
        .status()
        .await
        .expect("esbuild runs");
    assert!(status.success(), "esbuild bundled the page");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><meta charset=utf-8><title>atenciones</title>\
         <pre id=result></pre><script type=module src=page.js></script>",
    )
    .expect("index.html");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_an_attention_from_a_browser_over_grpc_web() {
    if !tools_present() {
        eprintln!("skipped: no Chromium or no gateway/typescript/node_modules");
        return;
    }
    // The page's own origin, which the gateway must allow.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", site.local_addr().expect("address"));
    let pages = tempfile::tempdir().expect("temp dir");
    build_page(pages.path()).await;
    let router =
        axum::Router::new().fallback_service(tower_http::services::ServeDir::new(pages.path()));
    tokio::spawn(async move { axum::serve(site, router).await });

    let db = TestDatabase::create(Backend::Sqlite).await.expect("SQLite");
    let allowed = origin.clone();
    let suite = TestSuite::start_with(db, move |settings| {
        settings.gateway.cors_allowed_origins = vec![allowed];
    })
    .await;
    let inbound = text_webhook("1122334455667", "5491100000042", "Nora", "wamid.b1", "Hola");
    let id = suite.queued_attention(&inbound, "ana").await;

    let url = format!(
        "{origin}/index.html?gateway={}&token={}",
        suite.gateway_url(),
        suite.token("ana", Role::Agent)
    );
    let output = tokio::process::Command::new("node")
        .current_dir(typescript_dir())
        .arg("browser-test/drive.mjs")
        .arg(&url)
        .env("CHROMIUM", chromium())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("node runs the driver");
    assert!(output.status.success(), "the driver ran the page");
    let outcome: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the page's JSON result");
    assert_eq!(outcome["ok"], true, "{outcome}");
    assert_eq!(outcome["agent"], "ana");
    assert_eq!(outcome["attention"], id.as_str());
    assert_eq!(outcome["customer"], "Nora");
    assert_eq!(outcome["firstMessage"], "Hola");
    assert_eq!(outcome["sentWamid"], "wamid.sent.1");
    // AttentionState.FINISHED
    assert_eq!(outcome["finishedState"], 3);
    let sent = suite.cloud_api.sent();
    assert_eq!(sent[0].body["text"]["body"], "Hola desde el navegador");
    let record = suite.record("ana", &id).await;
    assert_eq!(record.transcript.len(), 2);
    suite.stop().await;
}
