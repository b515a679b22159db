//! The WhatsApp webhook (HTTP): Meta's verification handshake and the
//! notifications. A notification is acknowledged once its raw body is stored;
//! the processor does the rest, so Meta gets a fast answer and nothing signed
//! is lost if processing fails. Beyond a bound of requests in flight the next
//! is refused at once (503, `Retry-After`) and Meta delivers it again later.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::trace::TraceLayer;

use crate::{signature, store};

pub const PATH: &str = "/webhooks/whatsapp";
/// Meta's largest notification.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Seconds a refused sender is asked to wait: the overload of a burst passes
/// within about that.
const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");

#[derive(Clone)]
pub struct WebhookState {
    pub db: DatabaseConnection,
    pub app_secret: Arc<str>,
    pub verify_token: Arc<str>,
    /// Wakes the processor after a body is stored.
    pub wake: Arc<Notify>,
}

/// The webhook's routes, serving at most `max_in_flight` requests at once.
pub fn router(state: WebhookState, max_in_flight: usize) -> Router {
    Router::new()
        .route(PATH, get(verify).post(receive))
        // Bigger bodies get 413 before they are buffered.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Beyond `max_in_flight` requests (each reading or storing its body)
        // the next is refused at once instead of waiting without bound for
        // the database: memory stays bounded and Meta, refused, retries.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(shed))
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(max_in_flight.max(1))),
        )
        // A span per request, so logs say which delivery they belong to.
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Answers a request the load shedder refused (its only error): 503 with
/// `Retry-After`, which Meta treats as a delivery to make again.
async fn shed(_overloaded: tower::BoxError) -> Response {
    // Counted, not logged at warn: an overload would flood the logs.
    tracing::debug!("webhook refused: too many in flight");
    let mut response = answered("shed", StatusCode::SERVICE_UNAVAILABLE);
    response
        .headers_mut()
        .insert(RETRY_AFTER, RETRY_AFTER_SECONDS);
    response
}

/// `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C`: echo C when
/// T is ours.
async fn verify(
    State(state): State<WebhookState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let token_matches = !state.verify_token.is_empty()
        && constant_time_eq(
            param("hub.verify_token").as_bytes(),
            state.verify_token.as_bytes(),
        );
    if param("hub.mode") == "subscribe" && token_matches {
        (StatusCode::OK, param("hub.challenge").to_owned()).into_response()
    } else {
        StatusCode::FORBIDDEN.into_response()
    }
}

/// `POST`: signed notifications. 401 unsigned, 400 not JSON, 200 once stored.
async fn receive(State(state): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The signature covers the bytes as sent: check it before anything reads them.
    if !signature::verify(state.app_secret.as_bytes(), &body, signature) {
        tracing::warn!(
            bytes = body.len(),
            "webhook with a missing or bad signature refused"
        );
        return answered("bad_signature", StatusCode::UNAUTHORIZED);
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return answered("not_json", StatusCode::BAD_REQUEST);
    }
    match store::insert_inbox(&state.db, body.to_vec()).await {
        Ok(id) => {
            tracing::debug!(inbox_id = id, "webhook stored");
            state.wake.notify_one();
            answered("accepted", StatusCode::OK)
        }
        Err(error) => {
            // Meta retries non-200 answers, so nothing is lost.
            tracing::error!(%error, "cannot store a webhook");
            answered("not_stored", StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// Answers a notification, counting it by outcome (`atenciones_webhooks_total`).
fn answered(outcome: &'static str, status: StatusCode) -> Response {
    metrics::counter!("atenciones_webhooks_total", "outcome" => outcome).increment(1);
    status.into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use atenciones_test_support::{TestDatabase, on_both_databases};
    use axum::body::Body;
    use axum::http::Request;
    use futures::FutureExt;
    use sea_orm::{EntityTrait, PaginatorTrait};
    use tower::ServiceExt;

    use super::*;
    use crate::entity::inbox;
    use crate::testkit::{self, SECRET, VERIFY_TOKEN};

    struct Harness {
        db: DatabaseConnection,
        wake: Arc<Notify>,
        router: Router,
        _test_db: TestDatabase,
    }

    async fn harness(test_db: TestDatabase) -> Harness {
        harness_with_bound(test_db, 64).await
    }

    async fn harness_with_bound(test_db: TestDatabase, max_in_flight: usize) -> Harness {
        let db = testkit::migrated(&test_db).await;
        let wake = Arc::new(Notify::new());
        let router = router(
            WebhookState {
                db: db.clone(),
                app_secret: SECRET.into(),
                verify_token: VERIFY_TOKEN.into(),
                wake: wake.clone(),
            },
            max_in_flight,
        );
        Harness {
            db,
            wake,
            router,
            _test_db: test_db,
        }
    }

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/whatsapp/signed_inbound_text_pywa.json"
        ))
        .expect("fixture")
    }

    fn post(body: Vec<u8>, signature: Option<String>) -> Request<Body> {
        let mut request = Request::post(PATH).header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.body(Body::from(body)).expect("request")
    }

    async fn call(router: &Router, request: Request<Body>) -> (StatusCode, String) {
        let response = router.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn stored(db: &DatabaseConnection) -> Vec<inbox::Model> {
        inbox::Entity::find().all(db).await.expect("inbox")
    }

    async fn a_signed_notification_is_stored_byte_for_byte_and_wakes_the_processor(
        db: TestDatabase,
    ) {
        let h = harness(db).await;
        let body = fixture();
        let signature = signature::sign(SECRET.as_bytes(), &body);
        let (status, _) = call(&h.router, post(body.clone(), Some(signature))).await;
        assert_eq!(status, StatusCode::OK);
        let rows = stored(&h.db).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].body, body);
        assert!(rows[0].processed_at.is_none());
        // The stored permit makes this return at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), h.wake.notified())
            .await
            .expect("processor woken");
    }
    on_both_databases!(a_signed_notification_is_stored_byte_for_byte_and_wakes_the_processor);

    async fn anything_signed_and_parseable_is_accepted(db: TestDatabase) {
        let h = harness(db).await;
        for body in [&br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"account_update","value":{"x":1}}]}]}"#[..], b"[]", b"{}"] {
            let signature = signature::sign(SECRET.as_bytes(), body);
            let (status, _) = call(&h.router, post(body.to_vec(), Some(signature))).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(stored(&h.db).await.len(), 3);
    }
    on_both_databases!(anything_signed_and_parseable_is_accepted);

    async fn missing_or_bad_signatures_get_401_and_nothing_is_stored(db: TestDatabase) {
        let h = harness(db).await;
        let body = fixture();
        let wrong_secret = signature::sign(b"another secret", &body);
        let mut tampered = body.clone();
        tampered[200] ^= 1;
        let of_original = signature::sign(SECRET.as_bytes(), &body);
        for (body, signature) in [
            (body.clone(), None),
            (body.clone(), Some(wrong_secret)),
            (body.clone(), Some("sha256=".to_owned())),
            (body.clone(), Some("garbage".to_owned())),
            (tampered, Some(of_original)),
        ] {
            let (status, _) = call(&h.router, post(body, signature)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(inbox::Entity::find().count(&h.db).await.expect("count"), 0);
    }
    on_both_databases!(missing_or_bad_signatures_get_401_and_nothing_is_stored);

    async fn a_signed_body_that_is_not_json_gets_400_and_nothing_is_stored(db: TestDatabase) {
        let h = harness(db).await;
        let body = b"{\"entry\": [".to_vec();
        let signature = signature::sign(SECRET.as_bytes(), &body);
        let (status, _) = call(&h.router, post(body, Some(signature))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(stored(&h.db).await.is_empty());
    }
    on_both_databases!(a_signed_body_that_is_not_json_gets_400_and_nothing_is_stored);

    async fn a_body_over_3_mb_gets_413_and_nothing_is_stored(db: TestDatabase) {
        let h = harness(db).await;
        // Valid JSON, correctly signed: only the size is wrong.
        let mut body = b"{\"padding\":\"".to_vec();
        body.resize(MAX_BODY_BYTES + 1 - 2, b'x');
        body.extend_from_slice(b"\"}");
        assert_eq!(body.len(), MAX_BODY_BYTES + 1);
        let signature = signature::sign(SECRET.as_bytes(), &body);
        let (status, _) = call(&h.router, post(body, Some(signature))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(stored(&h.db).await.is_empty());

        // Exactly 3 MB is still a notification.
        let mut body = b"{\"padding\":\"".to_vec();
        body.resize(MAX_BODY_BYTES - 2, b'x');
        body.extend_from_slice(b"\"}");
        let signature = signature::sign(SECRET.as_bytes(), &body);
        let (status, _) = call(&h.router, post(body, Some(signature))).await;
        assert_eq!(status, StatusCode::OK);
    }
    on_both_databases!(a_body_over_3_mb_gets_413_and_nothing_is_stored);

    fn verification(mode: &str, token: &str, challenge: &str) -> Request<Body> {
        Request::get(format!(
            "{PATH}?hub.mode={mode}&hub.verify_token={token}&hub.challenge={challenge}"
        ))
        .body(Body::empty())
        .expect("request")
    }

    async fn verification_echoes_the_challenge_only_for_our_token(db: TestDatabase) {
        let h = harness(db).await;
        let (status, body) = call(
            &h.router,
            verification("subscribe", VERIFY_TOKEN, "1158201444"),
        )
        .await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1158201444"));
        let (status, _) = call(&h.router, verification("subscribe", "wrong", "1158201444")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = call(&h.router, verification("unsubscribe", VERIFY_TOKEN, "1")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = call(
            &h.router,
            Request::get(PATH).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    on_both_databases!(verification_echoes_the_challenge_only_for_our_token);

    async fn verification_fails_when_no_token_is_configured(db: TestDatabase) {
        let h = harness(db).await;
        let router = router(
            WebhookState {
                db: h.db.clone(),
                app_secret: SECRET.into(),
                verify_token: "".into(),
                wake: h.wake.clone(),
            },
            64,
        );
        let (status, _) = call(&router, verification("subscribe", "", "1")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    on_both_databases!(verification_fails_when_no_token_is_configured);

    /// A request whose body arrives only when the returned sender sends it:
    /// it stays in flight until then.
    fn held_post(signature: String) -> (Request<Body>, tokio::sync::oneshot::Sender<Bytes>) {
        let (release, body) = tokio::sync::oneshot::channel::<Bytes>();
        let request = Request::post(PATH)
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", signature)
            .body(Body::from_stream(futures::stream::once(body)))
            .expect("request");
        (request, release)
    }

    async fn beyond_the_bound_a_webhook_is_refused_at_once_until_one_ends(db: TestDatabase) {
        let h = harness_with_bound(db, 1).await;
        // A recorder of this thread only: the test awaits everything here.
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        let _recording = metrics::set_default_local_recorder(&recorder);
        let body = fixture();
        let signature = signature::sign(SECRET.as_bytes(), &body);

        let (request, release) = held_post(signature.clone());
        let mut held = std::pin::pin!(h.router.clone().oneshot(request));
        assert!(
            held.as_mut().now_or_never().is_none(),
            "in flight, waiting for its body"
        );
        let refused = h
            .router
            .clone()
            .oneshot(post(body.clone(), Some(signature.clone())))
            .await
            .expect("response");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            refused.headers().get(RETRY_AFTER),
            Some(&RETRY_AFTER_SECONDS)
        );
        assert!(
            stored(&h.db).await.is_empty(),
            "the refused body is not kept"
        );

        release
            .send(Bytes::from(body.clone()))
            .expect("held request waits");
        let held = held.await.expect("response");
        assert_eq!(held.status(), StatusCode::OK);
        let (status, _) = call(&h.router, post(body, Some(signature))).await;
        assert_eq!(status, StatusCode::OK, "room again once the first ended");
        assert_eq!(stored(&h.db).await.len(), 2);
        let counted = metrics.render();
        for line in [
            r#"atenciones_webhooks_total{outcome="shed"} 1"#,
            r#"atenciones_webhooks_total{outcome="accepted"} 2"#,
        ] {
            assert!(counted.contains(line), "{counted}");
        }
    }
    on_both_databases!(beyond_the_bound_a_webhook_is_refused_at_once_until_one_ends);
}
