//! The live event stream: what an agent's and a supervisor's screens
//! receive, in order, resumable by cursor without gaps or repeats.

use std::time::Duration;

use tonic::Code;
use tonic::Streaming;

use atenciones_proto::gateway::v1 as pb;
use atenciones_tests::{
    Role, TestDatabase, TestSuite, on_both_databases, status_webhook, text_webhook, text_webhook_at,
};

const VENTAS_NUMBER: &str = "1122334455667";
const SOPORTE_NUMBER: &str = "277321005464405";

/// The next event of a stream (heartbeats skipped), within 10 s.
async fn next_event(stream: &mut Streaming<pb::StreamEventsResponse>) -> pb::LiveEvent {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .expect("the stream is healthy")
            .expect("the stream is open");
        if let Some(pb::stream_events_response::Item::Event(event)) = item.item {
            return event;
        }
    }
}

async fn open_stream(suite: &TestSuite, cursor: &str) -> Streaming<pb::StreamEventsResponse> {
    suite
        .desk("ana")
        .await
        .stream_events(pb::StreamEventsRequest {
            cursor: cursor.into(),
        })
        .await
        .expect("stream")
        .into_inner()
}

async fn an_agent_streams_their_campaigns_events_and_resumes_by_cursor(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut stream = open_stream(&suite, "").await;

    // A soporte customer (not ana's campaign), then a ventas one.
    let soporte = text_webhook(SOPORTE_NUMBER, "5491100000007", "Sol", "wamid.s1", "Hola");
    assert_eq!(suite.post_webhook(&soporte).await.status(), 200);
    let ventas = text_webhook(VENTAS_NUMBER, "5491100000008", "Vera", "wamid.v1", "Hola");
    assert_eq!(suite.post_webhook(&ventas).await.status(), 200);

    let queued = next_event(&mut stream).await;
    assert_eq!(
        (queued.kind.as_str(), queued.campaign_id.as_str()),
        ("attention.queued", "ventas"),
        "soporte's events are not ana's"
    );
    let received = next_event(&mut stream).await;
    assert_eq!(received.kind, "attention.message_received");
    assert_eq!(received.attention_id, queued.attention_id);

    // Ana opens it: the stream tells her screen.
    suite.open("ana", &queued.attention_id).await;
    let opened = next_event(&mut stream).await;
    assert_eq!(opened.kind, "attention.opened");
    drop(stream);

    // Reconnecting after the first event gives the rest, in order, once.
    let mut resumed = open_stream(&suite, &queued.cursor).await;
    assert_eq!(next_event(&mut resumed).await, received);
    assert_eq!(next_event(&mut resumed).await, opened);
    // And a second customer's events follow, nothing repeated.
    let more = text_webhook(VENTAS_NUMBER, "5491100000009", "Vito", "wamid.v2", "Hola");
    assert_eq!(suite.post_webhook(&more).await.status(), 200);
    let next = next_event(&mut resumed).await;
    assert_eq!(next.kind, "attention.queued");
    assert_ne!(next.attention_id, queued.attention_id);
    assert_eq!(
        next_event(&mut resumed).await.kind,
        "attention.message_received"
    );

    // Ana replies; WhatsApp reports it delivered (twice, as it may), then read:
    // the screen hears of the message and of each status once.
    let sent = suite
        .desk("ana")
        .await
        .send_text(pb::SendTextRequest {
            attention_id: queued.attention_id.clone(),
            text: "¡Hola Vera!".into(),
            idempotency_key: "live-1".into(),
            ..Default::default()
        })
        .await
        .expect("reply")
        .into_inner()
        .message
        .expect("message");
    let event = next_event(&mut resumed).await;
    assert_eq!(
        (event.kind.as_str(), event.attention_id.as_str()),
        ("attention.message_sent", queued.attention_id.as_str())
    );
    for status in ["delivered", "delivered", "read"] {
        let body = status_webhook(VENTAS_NUMBER, "5491100000008", &sent.wamid, status, None);
        assert_eq!(suite.post_webhook(&body).await.status(), 200);
    }
    for expected in ["delivered", "read"] {
        let event = next_event(&mut resumed).await;
        assert_eq!(event.kind, "attention.message_status");
        let payload: serde_json::Value =
            serde_json::from_str(&event.payload_json).expect("JSON payload");
        assert_eq!(payload["status"], expected);
        assert_eq!(payload["message_id"], sent.id.as_str());
    }

    let forged = suite
        .desk("ana")
        .await
        .stream_events(pb::StreamEventsRequest {
            cursor: "12".into(),
        })
        .await
        .expect_err("not a cursor");
    assert_eq!(forged.code(), Code::InvalidArgument);

    // A supervisor's stream carries presence changes of their agents.
    let mut sofia = suite
        .admin("sofia", Role::Supervisor)
        .await
        .stream_campaign_events(pb::StreamCampaignEventsRequest::default())
        .await
        .expect("supervisor stream")
        .into_inner();
    suite
        .desk("luis")
        .await
        .set_presence(pb::SetPresenceRequest {
            state: atenciones_proto::queue::v1::PresenceState::Available.into(),
            ..Default::default()
        })
        .await
        .expect("luis logs in");
    let presence = loop {
        let item = tokio::time::timeout(Duration::from_secs(10), sofia.message())
            .await
            .expect("an event within 10 s")
            .expect("healthy")
            .expect("open");
        if let Some(pb::stream_campaign_events_response::Item::Event(event)) = item.item {
            break event;
        }
    };
    assert_eq!(presence.kind, "agent.presence");
    assert!(presence.payload_json.contains("luis"));
    suite.stop().await;
}

on_both_databases!(an_agent_streams_their_campaigns_events_and_resumes_by_cursor);

async fn an_agent_hears_when_a_customers_window_is_about_to_close(db: TestDatabase) {
    let suite = TestSuite::start_with(db, |settings| {
        settings.messaging.window_watch_ms = 100;
    })
    .await;
    let mut stream = open_stream(&suite, "").await;
    // The customer wrote 23 h 30 min ago: the window closes in 30 minutes,
    // within the hour's warning.
    let written = chrono::Utc::now() - chrono::TimeDelta::minutes(23 * 60 + 30);
    let body = text_webhook_at(
        VENTAS_NUMBER,
        "5491100000011",
        "Wanda",
        "wamid.w1",
        "Hola",
        &written.timestamp().to_string(),
    );
    assert_eq!(suite.post_webhook(&body).await.status(), 200);
    let queued = next_event(&mut stream).await;
    assert_eq!(queued.kind, "attention.queued");
    assert_eq!(
        next_event(&mut stream).await.kind,
        "attention.message_received"
    );
    let closing = next_event(&mut stream).await;
    assert_eq!(
        (closing.kind.as_str(), closing.attention_id.as_str()),
        ("attention.window_closing", queued.attention_id.as_str())
    );
    let payload: serde_json::Value = serde_json::from_str(&closing.payload_json).expect("JSON");
    let closes =
        chrono::DateTime::parse_from_rfc3339(payload["expire_time"].as_str().expect("time"))
            .expect("RFC 3339");
    assert_eq!(closes.timestamp(), written.timestamp() + 24 * 3600);
    // Announced once: the next event is the customer's next message, not a repeat.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = text_webhook(
        VENTAS_NUMBER,
        "5491100000011",
        "Wanda",
        "wamid.w2",
        "¿Hola?",
    );
    assert_eq!(suite.post_webhook(&again).await.status(), 200);
    assert_eq!(
        next_event(&mut stream).await.kind,
        "attention.message_received"
    );
    suite.stop().await;
}

on_both_databases!(an_agent_hears_when_a_customers_window_is_about_to_close);

async fn a_cursor_older_than_the_feed_keeps_is_told_to_reload(db: TestDatabase) {
    let suite = TestSuite::start_with(db, |settings| {
        settings.queue.event_retention_seconds = 1;
    })
    .await;
    let mut stream = open_stream(&suite, "").await;
    let first = text_webhook(VENTAS_NUMBER, "5491100000021", "Olga", "wamid.o1", "Hola");
    suite.serve_and_finish(&first, "ana").await;
    let old = next_event(&mut stream).await;
    drop(stream);
    // Another customer's attention stays open: its events are kept.
    let waiting = text_webhook(VENTAS_NUMBER, "5491100000023", "Otto", "wamid.o3", "Hola");
    suite.queued_attention(&waiting, "ana").await;
    // Once the attention is finished, history has its events (its hand-off
    // settles events 10 s old) and they are older than the retention, they
    // are pruned: the old cursor cannot resume.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let attempt = suite
            .desk("ana")
            .await
            .stream_events(pb::StreamEventsRequest {
                cursor: old.cursor.clone(),
            })
            .await;
        if let Err(status) = attempt {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pruned within a minute"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let queued_kept = suite
        .count_service_rows(
            atenciones_runtime::ServiceName::Queue,
            "queue_outbox",
            "kind = 'attention.queued'",
        )
        .await;
    assert_eq!(
        queued_kept, 1,
        "only the unfinished attention's events are kept"
    );
    // The screen reloads and streams from now.
    let mut fresh = open_stream(&suite, "").await;
    let second = text_webhook(VENTAS_NUMBER, "5491100000022", "Omar", "wamid.o2", "Hola");
    assert_eq!(suite.post_webhook(&second).await.status(), 200);
    assert_eq!(next_event(&mut fresh).await.kind, "attention.queued");
    suite.stop().await;
}

on_both_databases!(a_cursor_older_than_the_feed_keeps_is_told_to_reload);

/// The gateway reads the feed once for all its streams: fifty screens
/// connected at once each get the same events, in the same order, with the
/// same cursors, and a screen resuming from a cursor meanwhile catches up
/// and then follows the shared reader without a gap or a repeat.
async fn many_screens_share_one_reading_of_the_feed(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut screens = Vec::new();
    for _ in 0..50 {
        screens.push(open_stream(&suite, "").await);
    }
    let first = text_webhook(VENTAS_NUMBER, "5491100000021", "Uno", "wamid.m1", "Hola");
    assert_eq!(suite.post_webhook(&first).await.status(), 200);
    let mut seen = Vec::new();
    for screen in &mut screens {
        seen.push((next_event(screen).await, next_event(screen).await));
    }
    assert!(seen.iter().all(|events| *events == seen[0]), "{seen:?}");
    let (queued, received) = seen[0].clone();
    assert_eq!(queued.kind, "attention.queued");

    // Resuming from the first event while the others stream on.
    let mut resumed = open_stream(&suite, &queued.cursor).await;
    let second = text_webhook(VENTAS_NUMBER, "5491100000022", "Dos", "wamid.m2", "Hola");
    assert_eq!(suite.post_webhook(&second).await.status(), 200);
    assert_eq!(next_event(&mut resumed).await, received);
    let next = next_event(&mut resumed).await;
    assert_eq!(next.kind, "attention.queued");
    assert_ne!(next.attention_id, queued.attention_id);
    for screen in &mut screens {
        assert_eq!(next_event(screen).await, next);
    }
    suite.stop().await;
}

on_both_databases!(many_screens_share_one_reading_of_the_feed);

/// A gateway told to stop ends its live streams at once, saying to reconnect
/// (with the cursor to resume from), so it drains within its grace period
/// instead of holding streams until it is killed.
async fn a_stopping_gateway_ends_its_streams_with_reconnect(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let (addresses, stop) = suite
        .stoppable_replica(&[atenciones::Role::Gateway], |_| {})
        .await;
    let url = format!("http://{}", addresses.gateway.expect("gateway"));
    let token = suite.token("ana", Role::Agent);
    let mut stream = suite
        .desk_via(url, &token)
        .await
        .stream_events(pb::StreamEventsRequest::default())
        .await
        .expect("stream")
        .into_inner();
    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(_heartbeat_or_event)) => continue,
                Ok(None) => break None,
                Err(status) => break Some(status),
            }
        }
    })
    .await
    .expect("the stream ended once the gateway was told to stop")
    .expect("with a status");
    assert_eq!(ended.code(), tonic::Code::Unavailable);
    assert!(ended.message().contains("reconnect"), "{}", ended.message());
    suite.stop().await;
}

on_both_databases!(a_stopping_gateway_ends_its_streams_with_reconnect);
