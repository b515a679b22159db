//! The suite under load, on SQLite and PostgreSQL: webhooks at several times
//! what it absorbs are refused at once (503, `Retry-After`) and, delivered
//! again as Meta does, end stored and routed once each; the gateway refuses
//! with RESOURCE_EXHAUSTED; both recover by themselves. Storms of the same
//! delivery store and announce everything once, and statuses reported
//! shuffled and repeated leave every message at its furthest status without
//! ever moving it back.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::{Code, Streaming};

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1::{Message, MessageStatus};
use atenciones_proto::queue::v1::AttentionState;
use atenciones_tests::{TestDatabase, TestSuite, on_both_databases, status_webhook, text_webhook};

/// Campaign ventas (agents ana and luis) in the demo setup.
const VENTAS: &str = "1122334455667";
/// Longest a webhook or gateway answer may take, however loaded the suite is.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Posts `body` until the webhook accepts it, as Meta redelivers a refused
/// notification. Every answer must come within [`ANSWER_WITHIN`] and be 200,
/// or 503 with `Retry-After`. Returns how often it was refused.
async fn deliver(suite: &TestSuite, body: &[u8], index: usize) -> u32 {
    let mut refused = 0;
    loop {
        let response = tokio::time::timeout(ANSWER_WITHIN, suite.post_webhook(body))
            .await
            .expect("the webhook answers, loaded or not");
        match response.status().as_u16() {
            200 => return refused,
            503 => {
                let retry_after: u64 = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("a 503 says when to retry, in seconds");
                assert!(retry_after >= 1, "{retry_after}");
                refused += 1;
                assert!(refused < 100, "delivery {index} accepted at last");
                // Meta waits at least that long; the test waits a share of it,
                // different for each delivery, so retries are spread out and
                // the test stays short.
                let share = (index % 10 + 1) as u64;
                tokio::time::sleep(Duration::from_millis(retry_after * 100 * share)).await;
            }
            other => panic!("delivery {index}: {other} is neither 200 nor 503"),
        }
    }
}

/// Delivers every body (see [`deliver`]), at most `at_once` at a time, in
/// tasks of their own; how many refusals it took, once all are accepted.
fn deliver_all(
    suite: &Arc<TestSuite>,
    bodies: Vec<Vec<u8>>,
    at_once: usize,
) -> tokio::task::JoinHandle<u32> {
    let suite = suite.clone();
    tokio::spawn(async move {
        let room = Arc::new(Semaphore::new(at_once));
        let mut posts = JoinSet::new();
        for (index, body) in bodies.into_iter().enumerate() {
            let (suite, room) = (suite.clone(), room.clone());
            posts.spawn(async move {
                let _turn = room.acquire().await.expect("never closed");
                deliver(&suite, &body, index).await
            });
        }
        posts.join_all().await.into_iter().sum()
    })
}

/// Waits until the messaging inbox has processed every delivery it took (one
/// at a time, in order: a storm takes longer than `eventually` waits).
async fn inbox_drained(suite: &TestSuite) {
    let started = tokio::time::Instant::now();
    while suite
        .count_rows_where("messaging_inbox", "processed_at IS NULL")
        .await
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "every delivery processed within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("inbox drained in {:?}", started.elapsed());
}

/// One delivery carrying the messages, contacts and statuses of several
/// single webhooks of one business number, as WhatsApp batches them.
fn batched(webhooks: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = webhooks
        .iter()
        .map(|body| serde_json::from_slice::<Value>(body).expect("a webhook is JSON"));
    let mut whole = parts.next().expect("at least one webhook");
    for part in parts {
        for key in ["contacts", "messages", "statuses"] {
            let Some(items) = part["entry"][0]["changes"][0]["value"][key].as_array() else {
                continue;
            };
            let into = &mut whole["entry"][0]["changes"][0]["value"][key];
            if into.is_null() {
                *into = Value::Array(Vec::new());
            }
            into.as_array_mut()
                .expect("a list")
                .extend(items.iter().cloned());
        }
    }
    whole.to_string().into_bytes()
}

/// A fixed order of `items` that looks random (the same on every run).
fn shuffled<T: Hash>(mut items: Vec<T>) -> Vec<T> {
    items.sort_by_cached_key(|item| {
        let mut hasher = DefaultHasher::new();
        item.hash(&mut hasher);
        hasher.finish()
    });
    items
}

/// Resident memory of this process (every server of the suite included), in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Messages of an attention through the gateway, newest first.
async fn messages(suite: &TestSuite, agent: &str, attention_id: &str) -> Vec<Message> {
    suite
        .desk(agent)
        .await
        .list_messages(pb::ListMessagesRequest {
            attention_id: attention_id.to_owned(),
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .expect("ListMessages")
        .into_inner()
        .messages
}

/// `agent`'s queued attentions by customer number (each customer once).
async fn queued_by_customer(
    suite: &TestSuite,
    agent: &str,
) -> HashMap<String, atenciones_proto::queue::v1::Attention> {
    let mut by_customer = HashMap::new();
    for attention in suite.attentions(agent).await {
        if attention.state() == AttentionState::Queued {
            let customer = attention.customer.clone().unwrap_or_default().wa_id;
            let earlier = by_customer.insert(customer.clone(), attention);
            assert!(earlier.is_none(), "{customer} has one attention");
        }
    }
    by_customer
}

fn customer(n: usize) -> String {
    format!("549110{n:07}")
}

async fn webhooks_beyond_the_bound_are_shed_and_redelivered_and_the_gateway_sheds_too(
    db: TestDatabase,
) {
    let suite = Arc::new(
        TestSuite::start_with(db, |settings| {
            settings.messaging.webhook_max_in_flight = 4;
            settings.gateway.max_concurrent_requests = 4;
        })
        .await,
    );
    // 20 customers write 10 messages each, all 200 at once.
    let (customers, each) = (20, 10);
    let total = customers * each;
    let bodies: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            let (c, m) = (i % customers, i / customers);
            let wamid = format!("wamid.load.{c}.{m}");
            text_webhook(
                VENTAS,
                &customer(c),
                &format!("Cliente {c}"),
                &wamid,
                "Hola",
            )
        })
        .collect();
    let before = resident_kib();
    let shed = deliver_all(&suite, bodies, total)
        .await
        .expect("deliveries");
    let after = resident_kib();
    assert!(shed > 0, "{total} at once against a bound of 4 sheds some");
    eprintln!(
        "webhooks: {shed} refusals for {total} deliveries; resident memory {} → {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 128 * 1024,
        "memory stays bounded: {before} → {after} KiB"
    );
    // Each accepted delivery kept once; no refused one kept.
    let total = i64::try_from(total).expect("a few hundred");
    assert_eq!(suite.count_rows("messaging_inbox").await, total);

    // Every message stored once and routed: one attention per customer.
    inbox_drained(&suite).await;
    let routed = "direction = 'inbound' AND attention_id IS NOT NULL";
    assert_eq!(
        suite.count_rows_where("messaging_messages", routed).await,
        total
    );
    assert_eq!(suite.count_rows("messaging_messages").await, total);
    let queued = queued_by_customer(&suite, "ana").await;
    assert_eq!(queued.len(), customers);
    for (number, attention) in &queued {
        let wamids: HashSet<String> = messages(&suite, "ana", &attention.id)
            .await
            .into_iter()
            .map(|m| m.wamid)
            .collect();
        let c: usize = number[6..].parse().expect("a test customer");
        let expected: HashSet<String> = (0..each).map(|m| format!("wamid.load.{c}.{m}")).collect();
        assert_eq!(wamids, expected, "{number}'s messages");
    }

    // It recovers by itself: a new customer is taken at once.
    let later = text_webhook(VENTAS, &customer(99), "Tarde", "wamid.load.later", "Hola");
    assert_eq!(suite.post_webhook(&later).await.status(), 200);

    // The gateway: 200 calls at once against a bound of 4.
    let desk = suite.desk("ana").await;
    let mut calls = JoinSet::new();
    for _ in 0..200 {
        let mut desk = desk.clone();
        calls.spawn(async move {
            tokio::time::timeout(
                ANSWER_WITHIN,
                desk.list_attentions(pb::ListAttentionsRequest::default()),
            )
            .await
            .expect("the gateway answers, loaded or not")
        });
    }
    let (served, shed) = served_and_shed(calls.join_all().await);
    eprintln!("gateway: {served} served, {shed} refused of 200");
    assert!(served > 0 && shed > 0, "{served} served, {shed} refused");
    let list = suite
        .desk("ana")
        .await
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("served again once the burst is over")
        .into_inner();
    // The late customer's attention is there too.
    assert_eq!(u32::try_from(customers + 1), Ok(list.queued_count));
    Arc::into_inner(suite)
        .expect("no task holds the suite")
        .stop()
        .await;
}
on_both_databases!(webhooks_beyond_the_bound_are_shed_and_redelivered_and_the_gateway_sheds_too);

/// How many of a burst's answers were served and how many refused for
/// load, each refusal saying why; any other answer fails the test.
fn served_and_shed<T>(answers: Vec<Result<T, tonic::Status>>) -> (usize, usize) {
    let (mut served, mut shed) = (0, 0);
    for answer in answers {
        match answer {
            Ok(_) => served += 1,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    status.message().contains("limit of calls in flight"),
                    "says why: {status:?}"
                );
                shed += 1;
            }
            Err(status) => panic!("neither OK nor RESOURCE_EXHAUSTED: {status:?}"),
        }
    }
    (served, shed)
}

/// A service (here the queue) called by more callers at once than its bound
/// (`internal.max_concurrent_requests`) refuses the rest at once, saying
/// why, and serves again after.
async fn a_service_beyond_its_bound_sheds_and_serves_again(db: TestDatabase) {
    let suite = TestSuite::start_with(db, |settings| {
        settings.internal.max_concurrent_requests = 4;
    })
    .await;
    let queue = suite.queue().await;
    let mut calls = JoinSet::new();
    for _ in 0..200 {
        let mut queue = queue.clone();
        calls.spawn(async move {
            let request = atenciones_proto::queue::v1::ListAttentionsRequest {
                agent_id: "ana".into(),
                ..Default::default()
            };
            tokio::time::timeout(ANSWER_WITHIN, queue.list_attentions(request))
                .await
                .expect("the queue answers, loaded or not")
        });
    }
    let (served, shed) = served_and_shed(calls.join_all().await);
    eprintln!("queue: {served} served, {shed} refused of 200");
    assert!(served > 0 && shed > 0, "{served} served, {shed} refused");
    let mut queue = suite.queue().await;
    queue
        .list_attentions(atenciones_proto::queue::v1::ListAttentionsRequest {
            agent_id: "ana".into(),
            ..Default::default()
        })
        .await
        .expect("served again once the burst is over");
    suite.stop().await;
}
on_both_databases!(a_service_beyond_its_bound_sheds_and_serves_again);

/// The next event of a live stream (heartbeats skipped).
async fn next_event(stream: &mut Streaming<pb::StreamEventsResponse>) -> pb::LiveEvent {
    loop {
        let item = tokio::time::timeout(ANSWER_WITHIN, stream.message())
            .await
            .expect("an event in time")
            .expect("the stream is healthy")
            .expect("the stream is open");
        if let Some(pb::stream_events_response::Item::Event(event)) = item.item {
            return event;
        }
    }
}

/// An agent's reply in an open attention, as sent through the gateway.
async fn reply(suite: &TestSuite, attention_id: &str, key: &str) -> Message {
    suite
        .desk("ana")
        .await
        .send_text(pb::SendTextRequest {
            attention_id: attention_id.to_owned(),
            text: "Con gusto le ayudo".into(),
            idempotency_key: key.to_owned(),
            ..Default::default()
        })
        .await
        .expect("SendText")
        .into_inner()
        .message
        .expect("the sent message")
}

async fn a_storm_of_the_same_deliveries_stores_and_announces_everything_once(db: TestDatabase) {
    let suite = Arc::new(TestSuite::start(db).await);
    // Two customers ana is already answering, whose replies WhatsApp reports on.
    let mut replies = Vec::new();
    for c in [0, 1] {
        let hello = text_webhook(
            VENTAS,
            &customer(c),
            "Ya atendido",
            &format!("wamid.pre.{c}"),
            "Hola",
        );
        let attention = suite.queued_attention(&hello, "ana").await;
        suite.open("ana", &attention).await;
        replies.push(reply(&suite, &attention, &format!("storm-{c}")).await);
    }
    let mut stream = suite
        .desk("ana")
        .await
        .stream_events(pb::StreamEventsRequest::default())
        .await
        .expect("stream")
        .into_inner();

    // 20 deliveries, each with two messages of 10 new customers (four each)
    // and a status of a reply; 20 copies of each, interleaved, 100 at once.
    let reports = [("delivered", 0), ("delivered", 1), ("read", 0), ("read", 1)];
    let deliveries: Vec<Vec<u8>> = (0..20)
        .map(|d| {
            let mut parts: Vec<Vec<u8>> = (0..2)
                .map(|k| {
                    let c = 10 + (2 * d + k) % 10;
                    let wamid = format!("wamid.storm.{d}.{k}");
                    text_webhook(
                        VENTAS,
                        &customer(c),
                        &format!("Cliente {c}"),
                        &wamid,
                        "Hola",
                    )
                })
                .collect();
            let (status, r) = reports[d % reports.len()];
            parts.push(status_webhook(
                VENTAS,
                &customer(r),
                &replies[r].wamid,
                status,
                None,
            ));
            batched(&parts)
        })
        .collect();
    let copies: Vec<Vec<u8>> = (0..20).flat_map(|_| deliveries.clone()).collect();
    deliver_all(&suite, copies, 100).await.expect("deliveries");
    assert_eq!(suite.count_rows("messaging_inbox").await, 2 + 400);
    inbox_drained(&suite).await;

    // Every message stored once and routed; one attention per customer.
    let storm = "wamid LIKE 'wamid.storm.%'";
    assert_eq!(
        suite.count_rows_where("messaging_messages", storm).await,
        40
    );
    let routed = format!("{storm} AND attention_id IS NOT NULL");
    assert_eq!(
        suite.count_rows_where("messaging_messages", &routed).await,
        40
    );
    let list = suite
        .desk("ana")
        .await
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("ListAttentions")
        .into_inner();
    assert_eq!((list.queued_count, list.open_count), (10, 2));
    let queued = queued_by_customer(&suite, "ana").await;
    assert_eq!(queued.len(), 10);
    for attention in queued.values() {
        assert_eq!(attention.unread_count, 4, "{attention:?}");
    }

    // The live stream heard each once: everything the storm caused comes
    // before a later customer's first event.
    let sentinel = text_webhook(VENTAS, &customer(50), "Después", "wamid.after", "Hola");
    assert_eq!(suite.post_webhook(&sentinel).await.status(), 200);
    let mut heard: Vec<(String, String, String)> = Vec::new();
    loop {
        let event = next_event(&mut stream).await;
        let payload: Value = serde_json::from_str(&event.payload_json).expect("JSON payload");
        if event.kind == "attention.queued" && payload["actor"] == customer(50).as_str() {
            break;
        }
        let detail = match event.kind.as_str() {
            "attention.queued" => payload["actor"].as_str(),
            "attention.message_received" => payload["message_id"].as_str(),
            "attention.message_status" => payload["status"].as_str(),
            _ => None,
        };
        heard.push((
            event.kind,
            event.attention_id,
            detail.unwrap_or_default().into(),
        ));
    }
    let count = |kind: &str| heard.iter().filter(|(k, _, _)| k == kind).count();
    assert_eq!(count("attention.queued"), 10, "{heard:?}");
    assert_eq!(count("attention.message_received"), 40, "{heard:?}");
    // Each reply's statuses (delivered, read) once each, unless read
    // overtook delivered on arrival; read always.
    let statuses = count("attention.message_status");
    assert!((2..=4).contains(&statuses), "{heard:?}");
    let reads = heard
        .iter()
        .filter(|(k, _, status)| k == "attention.message_status" && status == "read")
        .count();
    assert_eq!(reads, 2, "{heard:?}");
    assert_eq!(heard.len(), 50 + statuses, "nothing else: {heard:?}");
    let distinct: HashSet<&(String, String, String)> = heard.iter().collect();
    assert_eq!(distinct.len(), heard.len(), "no event twice: {heard:?}");
    for (_, r) in reports {
        let listed = messages(&suite, "ana", &replies[r].attention_id).await;
        let answer = listed
            .iter()
            .find(|m| m.id == replies[r].id)
            .expect("reply");
        assert_eq!(answer.status(), MessageStatus::Read);
    }
    drop(stream);
    Arc::into_inner(suite)
        .expect("no task holds the suite")
        .stop()
        .await;
}
on_both_databases!(a_storm_of_the_same_deliveries_stores_and_announces_everything_once);

/// Order of statuses a message goes through; failed is final, so it is last.
fn rank(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Pending => 1,
        MessageStatus::Accepted => 2,
        MessageStatus::Sent => 3,
        MessageStatus::Delivered => 4,
        MessageStatus::Read => 5,
        MessageStatus::Played => 6,
        MessageStatus::Failed => 7,
        MessageStatus::Unspecified | MessageStatus::Received => 0,
    }
}

/// Notes each reply's status, where it changed since last seen, again and
/// again (often, not all the time: the suite needs the CPU).
async fn watch(
    suite: &TestSuite,
    attentions: &[String],
    seen: &mut HashMap<String, Vec<MessageStatus>>,
) -> Infallible {
    loop {
        observe(suite, attentions, seen).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Notes each reply's status now, where it changed since last seen.
async fn observe(
    suite: &TestSuite,
    attentions: &[String],
    seen: &mut HashMap<String, Vec<MessageStatus>>,
) {
    for attention in attentions {
        for message in messages(suite, "ana", attention).await {
            if let Some(statuses) = seen.get_mut(&message.id)
                && statuses.last() != Some(&message.status())
            {
                statuses.push(message.status());
            }
        }
    }
}

async fn statuses_shuffled_and_repeated_leave_each_message_at_its_furthest(db: TestDatabase) {
    let suite = Arc::new(TestSuite::start(db).await);
    // Ana answers 5 customers with 8 replies each.
    let mut attentions = Vec::new();
    let mut replies = Vec::new();
    for c in 0..5 {
        let hello = text_webhook(
            VENTAS,
            &customer(c),
            "Cliente",
            &format!("wamid.hi.{c}"),
            "Hola",
        );
        let attention = suite.queued_attention(&hello, "ana").await;
        suite.open("ana", &attention).await;
        for r in 0..8 {
            let sent = reply(&suite, &attention, &format!("status-{c}-{r}")).await;
            assert!(!sent.wamid.is_empty(), "WhatsApp took it: {sent:?}");
            replies.push((customer(c), sent));
        }
        attentions.push(attention);
    }
    // What WhatsApp reports of each reply, by its place: read, delivered,
    // sent only, or failed after being delivered.
    let plans: [(&[&str], MessageStatus); 4] = [
        (&["sent", "delivered", "read"], MessageStatus::Read),
        (&["sent", "delivered"], MessageStatus::Delivered),
        (&["sent"], MessageStatus::Sent),
        (&["sent", "delivered", "failed"], MessageStatus::Failed),
    ];
    let undeliverable = (131026, "Message undeliverable");
    let mut reports = Vec::new();
    for (i, (number, sent)) in replies.iter().enumerate() {
        for status in plans[i % plans.len()].0 {
            let error = (*status == "failed").then_some(undeliverable);
            let body = status_webhook(VENTAS, number, &sent.wamid, status, error);
            // Each reported three times.
            reports.extend([body.clone(), body.clone(), body]);
        }
    }
    let reports = shuffled(reports);
    let total = i64::try_from(reports.len()).expect("a few hundred");

    let mut seen: HashMap<String, Vec<MessageStatus>> = replies
        .iter()
        .map(|(_, sent)| (sent.id.clone(), vec![sent.status()]))
        .collect();
    let posting = deliver_all(&suite, reports, 100);
    // Watched while the reports arrive and until the last is processed.
    tokio::select! {
        () = async {
            posting.await.expect("deliveries");
            inbox_drained(&suite).await;
        } => {}
        never = watch(&suite, &attentions, &mut seen) => match never {},
    }
    observe(&suite, &attentions, &mut seen).await;
    assert_eq!(suite.count_rows("messaging_inbox").await, 5 + total);

    for (i, (_, sent)) in replies.iter().enumerate() {
        let statuses = &seen[&sent.id];
        assert!(
            statuses.windows(2).all(|w| rank(w[0]) < rank(w[1])),
            "{} never moves back: {statuses:?}",
            sent.wamid
        );
        let expected = plans[i % plans.len()].1;
        assert_eq!(statuses.last(), Some(&expected), "{}", sent.wamid);
    }
    let failed: Vec<Message> = {
        let mut all = Vec::new();
        for attention in &attentions {
            all.extend(messages(&suite, "ana", attention).await);
        }
        all.into_iter()
            .filter(|m| m.status() == MessageStatus::Failed)
            .collect()
    };
    assert_eq!(failed.len(), replies.len() / plans.len());
    for message in failed {
        let error = message.error.expect("why it failed");
        assert_eq!(error.code, undeliverable.0, "{}", message.wamid);
    }

    // The screens heard each reply's statuses once each and only forward
    // (one overtaken on arrival is not announced), ending at the furthest.
    let mut announced: HashMap<String, Vec<MessageStatus>> = HashMap::new();
    for (kind, _, payload) in suite.events().await {
        if kind == "attention.message_status" {
            let status = payload["status"].as_str().unwrap_or_default();
            announced
                .entry(
                    payload["message_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_default()
                .push(
                    MessageStatus::from_str_name(&format!(
                        "MESSAGE_STATUS_{}",
                        status.to_uppercase()
                    ))
                    .expect("a status"),
                );
        }
    }
    for (i, (_, sent)) in replies.iter().enumerate() {
        let heard = announced.get(&sent.id).cloned().unwrap_or_default();
        assert!(
            heard.windows(2).all(|w| rank(w[0]) < rank(w[1])),
            "{} announced only forward: {heard:?}",
            sent.wamid
        );
        assert_eq!(
            heard.last(),
            Some(&plans[i % plans.len()].1),
            "{}",
            sent.wamid
        );
    }
    Arc::into_inner(suite)
        .expect("no task holds the suite")
        .stop()
        .await;
}
on_both_databases!(statuses_shuffled_and_repeated_leave_each_message_at_its_furthest);
