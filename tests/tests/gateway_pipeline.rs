//! The gateway's request pipeline: gRPC-Web on the gRPC port with CORS for the
//! configured origins, request ids, field violations intact through gRPC-Web,
//! and load shedding and deadlines when a backend hangs.

use std::time::Duration;

use prost::Message as _;
use tonic::Code;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::gateway::v1::agent_desk_service_client::AgentDeskServiceClient;
use atenciones_runtime::{CancellationToken, Settings};
use atenciones_tests::{Role, TestDatabase, TestSuite, on_both_databases};

const ORIGIN: &str = "http://localhost:5173";

/// A gRPC-Web call's answer: HTTP status, headers, the message frames and
/// the trailers (as the text block gRPC-Web sends).
struct WebAnswer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    messages: Vec<Vec<u8>>,
    trailers: String,
}

impl WebAnswer {
    /// A trailer's value, from the trailer frame or, for a trailers-only
    /// answer (an error), from the headers.
    fn trailer(&self, name: &str) -> Option<String> {
        self.trailers
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
            .or_else(|| {
                self.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
    }
}

/// One gRPC-Web call over HTTP/1.1, as a browser's transport makes it.
async fn grpc_web(suite: &TestSuite, method: &str, token: &str, message: &[u8]) -> WebAnswer {
    let mut body = vec![0u8];
    body.extend(u32::try_from(message.len()).expect("small").to_be_bytes());
    body.extend(message);
    let response = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .post(format!(
            "{}/atenciones.gateway.v1.AgentDeskService/{method}",
            suite.gateway_url()
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", ORIGIN)
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .send()
        .await
        .expect("gateway reachable");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    let mut rest = &bytes[..];
    while rest.len() >= 5 {
        let flag = rest[0];
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = &rest[5..5 + length];
        if flag & 0x80 == 0 {
            messages.push(frame.to_vec());
        } else {
            trailers.push_str(&String::from_utf8_lossy(frame));
        }
        rest = &rest[5 + length..];
    }
    WebAnswer {
        status,
        headers,
        messages,
        trailers,
    }
}

async fn browsers_call_with_grpc_web_from_allowed_origins(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let token = suite.token("ana", Role::Agent);
    let answer = grpc_web(
        &suite,
        "GetMe",
        &token,
        &pb::GetMeRequest {}.encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.trailers.contains("grpc-status:0"),
        "{}",
        answer.trailers
    );
    let me = pb::GetMeResponse::decode(&answer.messages[0][..]).expect("a GetMeResponse");
    assert_eq!(me.agent.map(|a| a.id), Some("ana".to_owned()));
    assert_eq!(answer.headers["access-control-allow-origin"], ORIGIN);
    assert!(answer.headers.contains_key("x-request-id"), "a request id");

    // An invalid request keeps its field violations through gRPC-Web.
    let bad = pb::SaveFormDraftRequest {
        attention_id: "no-es-un-uuid".into(),
        ..Default::default()
    };
    let answer = grpc_web(&suite, "SaveFormDraft", &token, &bad.encode_to_vec()).await;
    assert_eq!(answer.trailer("grpc-status").as_deref(), Some("3"));
    let details = answer
        .trailer("grpc-status-details-bin")
        .expect("google.rpc.Status details");
    let details = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        details.trim_end_matches('='),
    )
    .expect("base64");
    let status = tonic_types::Status::decode(&details[..]).expect("a google.rpc.Status");
    assert!(
        status
            .details
            .iter()
            .any(|d| d.type_url.ends_with("google.rpc.BadRequest")),
        "field violations travel: {status:?}"
    );

    // Preflights: the configured origin is allowed, another is not.
    let preflight = |origin: &'static str| {
        let url = format!(
            "{}/atenciones.gateway.v1.AgentDeskService/GetMe",
            suite.gateway_url()
        );
        async move {
            reqwest::Client::new()
                .request(reqwest::Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,authorization,x-grpc-web",
                )
                .send()
                .await
                .expect("preflight")
        }
    };
    let allowed = preflight(ORIGIN).await;
    assert_eq!(allowed.headers()["access-control-allow-origin"], ORIGIN);
    let refused = preflight("https://evil.example").await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // Over gRPC too, the caller's request id comes back.
    let mut request = tonic::Request::new(pb::GetMeRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "pedido-123".parse().expect("ascii"));
    let response = suite
        .desk("ana")
        .await
        .get_me(request)
        .await
        .expect("GetMe");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .map(|v| v.to_str().ok()),
        Some(Some("pedido-123"))
    );
    suite.stop().await;
}

on_both_databases!(browsers_call_with_grpc_web_from_allowed_origins);

/// The queue accepts connections and never answers: calls through the
/// gateway hang until the gateway's deadline; beyond the concurrency limit
/// the next call is refused at once. Only a gateway runs: no database.
#[tokio::test]
async fn a_saturated_gateway_sheds_load_and_calls_end_at_the_deadline() {
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let blackhole_url = format!("http://{}", blackhole.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            connections.push(socket);
        }
    });
    let mut settings = Settings::load(None).expect("settings");
    for url in [
        &mut settings.queue.url,
        &mut settings.messaging.url,
        &mut settings.form.url,
        &mut settings.history.url,
    ] {
        url.clone_from(&blackhole_url);
    }
    settings.gateway.max_concurrent_requests = 1;
    settings.gateway.request_timeout_ms = 1_500;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gateway = atenciones_gateway::Application::build(&settings, listener)
        .await
        .expect("gateway");
    let url = format!("http://{}", gateway.address());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(gateway.run(shutdown.clone()));
    let token = atenciones_gateway::auth::issue(
        &settings.gateway.auth,
        "ana",
        Role::Agent,
        Duration::from_secs(60),
    )
    .expect("token");
    let header: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("ascii");
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("gateway reachable");
    let desk =
        AgentDeskServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
            Ok(request)
        });

    let first = {
        let mut desk = desk.clone();
        tokio::spawn(async move { desk.get_me(pb::GetMeRequest {}).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();
    let shed = desk
        .clone()
        .get_me(pb::GetMeRequest {})
        .await
        .expect_err("no room");
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once"
    );
    let timed_out = first
        .await
        .expect("joined")
        .expect_err("the queue never answers");
    assert!(
        matches!(timed_out.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{timed_out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "ended by the gateway's 1.5 s deadline, not the backend's"
    );
    // Room again once the first call ended.
    let again = desk
        .clone()
        .get_me(pb::GetMeRequest {})
        .await
        .expect_err("the queue still never answers");
    assert_ne!(again.code(), Code::ResourceExhausted);
    held.abort();
    shutdown.cancel();
    server.await.expect("joined").expect("stopped cleanly");
}
