//! What the agent sends, end to end over gRPC, on SQLite and PostgreSQL:
//! texts, replies, reactions and templates as WhatsApp expects them; the
//! 24-hour window; WhatsApp's rate limits, refusals, outages and slowness;
//! read receipts when an attention is opened.

use std::time::Duration;

use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1::{Message, MessageDirection, MessageStatus, message};
use atenciones_tests::{
    Answer, TestDatabase, TestSuite, chrono_now, eventually, fixture, on_both_databases,
    status_webhook, text_webhook_at,
};

/// Campaign ventas' number; the customer of `inbound_text.json`.
const VENTAS: &str = "1122334455667";
const CUSTOMER: &str = "972987654321";
const DAY: i64 = 24 * 3600;

fn now() -> i64 {
    chrono_now().parse().expect("unix seconds")
}

/// The customer writes `text` at `timestamp`; returns the attention it
/// lands in once ana (campaign ventas) sees the message in it.
async fn customer_writes(suite: &TestSuite, wamid: &str, text: &str, timestamp: i64) -> String {
    let body = text_webhook_at(
        VENTAS,
        CUSTOMER,
        "Test Name",
        wamid,
        text,
        &timestamp.to_string(),
    );
    assert_eq!(suite.post_webhook(&body).await.status(), 200);
    let ana = suite.desk("ana").await;
    eventually("the message in an attention", || {
        let mut ana = ana.clone();
        async move {
            let list = ana
                .list_attentions(pb::ListAttentionsRequest::default())
                .await
                .ok()?
                .into_inner();
            let attention = list.attentions.into_iter().next()?;
            let page = ana
                .list_messages(pb::ListMessagesRequest {
                    attention_id: attention.id.clone(),
                    page_size: 0,
                    page_token: String::new(),
                })
                .await
                .ok()?
                .into_inner();
            page.messages
                .iter()
                .any(|m| m.wamid == wamid)
                .then_some(attention.id)
        }
    })
    .await
}

/// The customer wrote just now and ana opened the attention: free text may go.
async fn conversation(suite: &TestSuite) -> String {
    let attention = customer_writes(suite, "wamid.q", "hola", now()).await;
    open(suite, &attention).await;
    attention
}

async fn open(suite: &TestSuite, attention_id: &str) -> pb::OpenAttentionResponse {
    suite
        .desk("ana")
        .await
        .open_attention(pb::OpenAttentionRequest {
            attention_id: attention_id.into(),
            message_page_size: 0,
        })
        .await
        .expect("ana opens it")
        .into_inner()
}

fn inbound<'a>(opened: &'a pb::OpenAttentionResponse, wamid: &str) -> &'a Message {
    opened
        .messages
        .iter()
        .find(|m| m.wamid == wamid)
        .expect("the customer's message")
}

fn text(attention_id: &str, key: &str) -> pb::SendTextRequest {
    pb::SendTextRequest {
        attention_id: attention_id.into(),
        text: "Hola, ¿en qué puedo ayudarle?".into(),
        preview_url: false,
        idempotency_key: key.into(),
        reply_to_message_id: String::new(),
    }
}

async fn send_text(
    suite: &TestSuite,
    request: pb::SendTextRequest,
) -> Result<Message, tonic::Status> {
    let response = suite.desk("ana").await.send_text(request).await?;
    Ok(response.into_inner().message.expect("message"))
}

async fn send_reaction(
    suite: &TestSuite,
    agent: &str,
    attention_id: &str,
    message_id: &str,
    emoji: &str,
    key: &str,
) -> Result<Message, tonic::Status> {
    let request = pb::SendReactionRequest {
        attention_id: attention_id.into(),
        message_id: message_id.into(),
        emoji: emoji.into(),
        idempotency_key: key.into(),
    };
    let response = suite.desk(agent).await.send_reaction(request).await?;
    Ok(response.into_inner().message.expect("message"))
}

/// The message as the conversation shows it now.
async fn listed(suite: &TestSuite, attention_id: &str, id: &str) -> Message {
    let page = suite
        .desk("ana")
        .await
        .list_messages(pb::ListMessagesRequest {
            attention_id: attention_id.into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    page.messages
        .into_iter()
        .find(|m| m.id == id)
        .expect("the message is listed")
}

/// Waits until the background sender has settled the message.
async fn settled(suite: &TestSuite, attention_id: &str, id: &str) -> Message {
    eventually("the message settled", || async {
        let message = listed(suite, attention_id, id).await;
        (message.status() != MessageStatus::Pending).then_some(message)
    })
    .await
}

fn error_reason(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
}

async fn a_template_goes_out_of_the_window_where_text_is_refused(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let written = now() - DAY - 3600;
    let attention = customer_writes(&suite, "wamid.old", "¿Tienen stock?", written).await;
    let opened = open(&suite, &attention).await;
    let window = opened.window.expect("the window");
    assert!(!window.open, "the customer wrote 25 hours ago");
    assert_eq!(window.expire_time.map(|t| t.seconds), Some(written + DAY));
    let question = inbound(&opened, "wamid.old").clone();

    let refused = send_text(&suite, text(&attention, "k1"))
        .await
        .expect_err("free text outside the window");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused).as_deref(), Some("WINDOW_CLOSED"));
    let reaction = send_reaction(&suite, "ana", &attention, &question.id, "👍", "k2")
        .await
        .expect_err("a reaction is free-form too");
    assert_eq!(reaction.code(), Code::FailedPrecondition);
    assert!(suite.cloud_api.sent().is_empty(), "refused before WhatsApp");

    let sent = suite
        .desk("ana")
        .await
        .send_template(pb::SendTemplateRequest {
            attention_id: attention.clone(),
            name: "seguimiento_pedido".into(),
            language: "es".into(),
            body_parameters: vec!["Test Name".into(), "martes".into()],
            reply_to_message_id: question.id.clone(),
            idempotency_key: "k3".into(),
        })
        .await
        .expect("a template goes")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(sent.status(), MessageStatus::Accepted);
    assert_eq!(sent.r#type, "template");
    assert_eq!(sent.agent_id, "ana");
    assert_eq!(
        sent.content,
        Some(message::Content::Template(
            atenciones_proto::messaging::v1::TemplateContent {
                name: "seguimiento_pedido".into(),
                language: "es".into(),
                body_parameters: vec!["Test Name".into(), "martes".into()],
            }
        ))
    );
    assert_eq!(
        sent.reply_to.as_ref().map(|r| r.wamid.as_str()),
        Some("wamid.old")
    );
    let requests = suite.cloud_api.sent();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "template",
            "template": {
                "name": "seguimiento_pedido",
                "language": { "code": "es" },
                "components": [{ "type": "body", "parameters": [
                    { "type": "text", "text": "Test Name" },
                    { "type": "text", "text": "martes" },
                ]}],
            },
            "context": { "message_id": "wamid.old" },
            "biz_opaque_callback_data": sent.id,
        })
    );
    let list = suite
        .desk("ana")
        .await
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        list.attentions[0].last_message_preview,
        "Template seguimiento_pedido: Test Name, martes"
    );
    suite.stop().await;
}
on_both_databases!(a_template_goes_out_of_the_window_where_text_is_refused);

async fn replies_and_reactions_reach_whatsapp_as_it_expects(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let written = now();
    let attention = customer_writes(&suite, "wamid.q", "¿Hacen envíos?", written).await;
    let opened = open(&suite, &attention).await;
    let window = opened.window.expect("the window");
    assert!(window.open);
    assert_eq!(window.expire_time.map(|t| t.seconds), Some(written + DAY));
    let question = inbound(&opened, "wamid.q").clone();

    let reply = send_text(
        &suite,
        pb::SendTextRequest {
            text: "Sí: https://example.com/envios".into(),
            preview_url: true,
            reply_to_message_id: question.id.clone(),
            ..text(&attention, "k1")
        },
    )
    .await
    .expect("reply");
    assert_eq!(reply.status(), MessageStatus::Accepted);
    assert_eq!(
        reply.reply_to.as_ref().map(|r| r.wamid.as_str()),
        Some("wamid.q")
    );
    let react =
        |agent, emoji, key| send_reaction(&suite, agent, &attention, &question.id, emoji, key);
    let liked = react("ana", "👍", "k2").await.expect("reaction");
    // The agent's reaction shows on the customer's message, and goes away
    // when removed.
    let reactions_on_question = || async {
        inbound(&open(&suite, &attention).await, "wamid.q")
            .reactions
            .iter()
            .map(|r| (r.emoji.clone(), r.direction()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reactions_on_question().await,
        [("👍".to_owned(), MessageDirection::Outbound)]
    );
    let removed = react("ana", "", "k3").await.expect("removal");
    assert_eq!(reactions_on_question().await, []);
    assert_eq!(liked.r#type, "reaction");
    assert_eq!(
        liked.content,
        Some(message::Content::Reaction(
            atenciones_proto::messaging::v1::ReactionContent {
                target: Some(atenciones_proto::messaging::v1::MessageRef {
                    message_id: String::new(),
                    wamid: "wamid.q".into(),
                }),
                emoji: "👍".into(),
            }
        ))
    );

    let requests = suite.cloud_api.sent();
    assert_eq!(
        requests[0].body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "text",
            "text": { "body": "Sí: https://example.com/envios", "preview_url": true },
            "context": { "message_id": "wamid.q" },
            "biz_opaque_callback_data": reply.id,
        })
    );
    for (request, message, emoji) in [(&requests[1], &liked, "👍"), (&requests[2], &removed, "")]
    {
        assert_eq!(
            request.body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": CUSTOMER,
                "type": "reaction",
                "reaction": { "message_id": "wamid.q", "emoji": emoji },
                "biz_opaque_callback_data": message.id,
            })
        );
    }

    // Only the holder sends.
    let luis = react("luis", "❤️", "k4").await.expect_err("not the holder");
    assert_eq!(luis.code(), Code::PermissionDenied);
    suite.stop().await;
}
on_both_databases!(replies_and_reactions_reach_whatsapp_as_it_expects);

async fn a_retried_send_with_the_same_key_sends_once(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = conversation(&suite).await;
    let first = send_text(&suite, text(&attention, "same"))
        .await
        .expect("sent");
    let (a, b) = tokio::join!(
        send_text(&suite, text(&attention, "same")),
        send_text(&suite, text(&attention, "same"))
    );
    for again in [a.expect("again"), b.expect("again")] {
        assert_eq!(again, first);
    }
    assert_eq!(suite.cloud_api.sent().len(), 1, "one key, one send");
    suite.stop().await;
}
on_both_databases!(a_retried_send_with_the_same_key_sends_once);

async fn rate_limits_are_retried_with_backoff_and_the_message_goes_once(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = conversation(&suite).await;
    suite.cloud_api.script(&[
        Answer::RateLimited,
        Answer::TooManyRequests,
        Answer::PairRateLimited,
    ]);
    let pending = send_text(&suite, text(&attention, "k1"))
        .await
        .expect("stored");
    assert_eq!(pending.status(), MessageStatus::Pending);
    assert_eq!(pending.wamid, "");
    assert_eq!(
        listed(&suite, &attention, &pending.id).await.id,
        pending.id,
        "visible while pending"
    );
    let sent = settled(&suite, &attention, &pending.id).await;
    assert_eq!(sent.status(), MessageStatus::Accepted);
    assert_eq!(sent.wamid, "wamid.sent.4");
    let tries = suite.cloud_api.sent_for(&pending.id);
    assert_eq!(tries.len(), 4);
    assert_eq!(
        tries.iter().filter(|t| t.accepted()).count(),
        1,
        "sent once"
    );
    // Waits of 250, 500 and 500 ms (the kit's backoff) between the tries.
    for (pair, wait) in tries.windows(2).zip([250, 500, 500]) {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!(gap >= Duration::from_millis(wait), "{gap:?} < {wait} ms");
    }
    suite.stop().await;
}
on_both_databases!(rate_limits_are_retried_with_backoff_and_the_message_goes_once);

async fn a_server_error_then_success_sends_once(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = conversation(&suite).await;
    suite.cloud_api.script(&[Answer::ServerError]);
    let pending = send_text(&suite, text(&attention, "k1"))
        .await
        .expect("stored");
    assert_eq!(pending.status(), MessageStatus::Pending);
    assert_eq!(
        settled(&suite, &attention, &pending.id).await.status(),
        MessageStatus::Accepted
    );
    let tries = suite.cloud_api.sent_for(&pending.id);
    let statuses: Vec<_> = tries.iter().map(|t| t.status).collect();
    assert_eq!(statuses, [Some(500), Some(200)]);
    suite.stop().await;
}
on_both_databases!(a_server_error_then_success_sends_once);

async fn a_slow_whatsapp_is_tried_again_after_the_timeout(db: TestDatabase) {
    let suite = TestSuite::start_with(db, |s| {
        s.whatsapp.request_timeout_ms = 300;
        s.whatsapp.send_lease_ms = 1_000;
    })
    .await;
    let attention = conversation(&suite).await;
    suite
        .cloud_api
        .script(&[Answer::Slow(Duration::from_millis(1_500))]);
    let pending = send_text(&suite, text(&attention, "k1"))
        .await
        .expect("stored");
    assert_eq!(pending.status(), MessageStatus::Pending);
    let sent = settled(&suite, &attention, &pending.id).await;
    assert_eq!(sent.status(), MessageStatus::Accepted);
    // The second try's answer: the first came after the client gave up. (A
    // timeout is the one case where a try's outcome is unknown; WhatsApp has
    // no idempotency key to make its retry safe.)
    assert_eq!(sent.wamid, "wamid.sent.2");
    assert_eq!(suite.cloud_api.sent_for(&pending.id).len(), 2);
    suite.stop().await;
}
on_both_databases!(a_slow_whatsapp_is_tried_again_after_the_timeout);

async fn other_refusals_fail_the_message_with_whatsapps_reason(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = conversation(&suite).await;
    suite.cloud_api.script(&[Answer::Reject {
        code: 131026,
        title: "(#131026) Message undeliverable",
        detail: "Unable to deliver message.",
    }]);
    let refused = send_text(&suite, text(&attention, "k1"))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let info = refused
        .get_error_details()
        .error_info()
        .cloned()
        .expect("WhatsApp's reason");
    assert_eq!(info.reason, "WHATSAPP_REFUSED");
    assert_eq!(info.metadata["code"], "131026");
    assert_eq!(info.metadata["title"], "(#131026) Message undeliverable");
    assert_eq!(info.metadata["detail"], "Unable to deliver message.");

    // The agent sees it failed, with the reason, in the conversation.
    let messages = open(&suite, &attention).await.messages;
    let failed = messages
        .iter()
        .find(|m| m.status() == MessageStatus::Failed)
        .expect("the failed message is listed");
    let error = failed.error.clone().expect("its error");
    assert_eq!(
        (error.code, error.title.as_str(), error.detail.as_str()),
        (
            131026,
            "(#131026) Message undeliverable",
            "Unable to deliver message."
        )
    );
    assert_eq!(suite.cloud_api.sent().len(), 1, "not retried");
    suite.stop().await;
}
on_both_databases!(other_refusals_fail_the_message_with_whatsapps_reason);

async fn trouble_that_outlasts_every_try_fails_the_message(db: TestDatabase) {
    let suite = TestSuite::start_with(db, |s| {
        s.whatsapp.send_max_attempts = std::num::NonZeroU32::new(3).expect("3");
    })
    .await;
    let attention = conversation(&suite).await;
    suite.cloud_api.answer(Answer::Fail);
    let pending = send_text(&suite, text(&attention, "k1"))
        .await
        .expect("stored");
    assert_eq!(pending.status(), MessageStatus::Pending);
    let failed = settled(&suite, &attention, &pending.id).await;
    assert_eq!(failed.status(), MessageStatus::Failed);
    let error = failed.error.expect("the reason");
    assert_eq!(error.title, "WhatsApp did not take the message");
    assert_eq!(
        error.detail,
        "gave up after 3 tries; last: WhatsApp answered HTTP 503"
    );
    assert_eq!(suite.cloud_api.sent_for(&pending.id).len(), 3);
    suite.stop().await;
}
on_both_databases!(trouble_that_outlasts_every_try_fails_the_message);

async fn error_131047_closes_the_window(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    // A few seconds ago: a 131047 in the very second of a customer's message
    // is taken for older than it (WhatsApp stamps whole seconds).
    let attention = customer_writes(&suite, "wamid.q", "hola", now() - 5).await;
    assert!(open(&suite, &attention).await.window.expect("window").open);

    // Synchronously: the send's own answer.
    suite.cloud_api.script(&[Answer::Refuse]);
    let refused = send_text(&suite, text(&attention, "k1"))
        .await
        .expect_err("refused");
    assert_eq!(error_reason(&refused).as_deref(), Some("WHATSAPP_REFUSED"));
    assert!(
        refused.message().contains("131047"),
        "{}",
        refused.message()
    );
    assert!(!open(&suite, &attention).await.window.expect("window").open);
    let closed = send_text(&suite, text(&attention, "k2"))
        .await
        .expect_err("closed now");
    assert_eq!(error_reason(&closed).as_deref(), Some("WINDOW_CLOSED"));
    assert_eq!(suite.cloud_api.sent().len(), 1, "the second never left");

    // The customer writes again; then a failed status reports 131047 later.
    customer_writes(&suite, "wamid.q2", "¿sigue ahí?", now()).await;
    assert!(open(&suite, &attention).await.window.expect("window").open);
    let sent = send_text(&suite, text(&attention, "k3"))
        .await
        .expect("sent");
    assert_eq!(sent.status(), MessageStatus::Accepted);
    // The status comes a second later than the customer's message, stamped
    // in whole seconds as well.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let failed = status_webhook(
        VENTAS,
        CUSTOMER,
        &sent.wamid,
        "failed",
        Some((131047, "Re-engagement message")),
    );
    assert_eq!(suite.post_webhook(&failed).await.status(), 200);
    let message = eventually("the failed status applied", || async {
        let message = listed(&suite, &attention, &sent.id).await;
        (message.status() == MessageStatus::Failed).then_some(message)
    })
    .await;
    assert_eq!(message.error.map(|e| e.code), Some(131047));
    assert!(!open(&suite, &attention).await.window.expect("window").open);
    suite.stop().await;
}
on_both_databases!(error_131047_closes_the_window);

async fn opening_an_attention_marks_the_customers_messages_read(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = customer_writes(&suite, "wamid.a", "hola", now() - 60).await;
    customer_writes(&suite, "wamid.b", "¿hay alguien?", now()).await;
    open(&suite, &attention).await;
    let receipts = eventually("a read receipt", || async {
        let receipts = suite.cloud_api.read_receipts();
        (!receipts.is_empty()).then_some(receipts)
    })
    .await;
    assert_eq!(
        receipts[0].body,
        json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.b" }),
        "one receipt, for the newest: WhatsApp marks the earlier ones with it"
    );
    assert_eq!(receipts[0].phone_number_id, VENTAS);

    // Opening again with nothing new sends nothing.
    open(&suite, &attention).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(suite.cloud_api.read_receipts().len(), 1);

    // A new message, then the agent opens it again.
    let newer = customer_writes(&suite, "wamid.c", "¿y?", now()).await;
    assert_eq!(newer, attention);
    open(&suite, &attention).await;
    let receipts = eventually("a second receipt", || async {
        let receipts = suite.cloud_api.read_receipts();
        (receipts.len() == 2).then_some(receipts)
    })
    .await;
    assert_eq!(receipts[1].body["message_id"], "wamid.c");
    assert!(
        suite.cloud_api.sent().is_empty(),
        "receipts are not messages"
    );
    suite.stop().await;
}
on_both_databases!(opening_an_attention_marks_the_customers_messages_read);

/// The agent's message, after WhatsApp's statuses for it (the fixtures, as
/// raw bytes through the webhook) have been processed.
async fn after_status(
    suite: &TestSuite,
    attention: &str,
    fixture_name: &str,
    expected: MessageStatus,
) -> Message {
    assert_eq!(
        suite.post_webhook(&fixture(fixture_name)).await.status(),
        200
    );
    eventually(&format!("{expected:?} after {fixture_name}"), || async {
        let opened = open(suite, attention).await;
        let sent = opened
            .messages
            .into_iter()
            .find(|m| m.wamid == "wamid.xyzxyz")?;
        (sent.status() == expected).then_some(sent)
    })
    .await
}

async fn delivery_statuses_reach_the_agent_forward_only(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = conversation(&suite).await;
    // The fixtures' statuses are for wamid.xyzxyz: the id WhatsApp gives this send.
    suite.cloud_api.next_wamid("wamid.xyzxyz");
    let sent = send_text(&suite, text(&attention, "k1"))
        .await
        .expect("sent");
    assert_eq!(sent.status(), MessageStatus::Accepted);

    // Out of order, as WhatsApp may deliver them: never back from read.
    after_status(&suite, &attention, "status_read.json", MessageStatus::Read).await;
    for earlier in ["status_delivered.json", "status_sent.json"] {
        assert_eq!(suite.post_webhook(&fixture(earlier)).await.status(), 200);
    }
    eventually("every webhook processed", || async {
        let pending = suite
            .count_rows_where("messaging_inbox", "processed_at IS NULL")
            .await;
        (pending == 0).then_some(())
    })
    .await;
    let opened = open(&suite, &attention).await;
    let still = opened
        .messages
        .iter()
        .find(|m| m.wamid == "wamid.xyzxyz")
        .expect("the send");
    assert_eq!(
        still.status(),
        MessageStatus::Read,
        "delivered and sent came late"
    );
    // Failed is final and shows WhatsApp's reason; a later read changes nothing.
    let failed = after_status(
        &suite,
        &attention,
        "status_failed.json",
        MessageStatus::Failed,
    )
    .await;
    let error = failed.error.expect("WhatsApp's error");
    assert_eq!(
        (error.code, error.title.as_str()),
        (130472, "User's number is part of an experiment")
    );
    after_status(
        &suite,
        &attention,
        "status_read.json",
        MessageStatus::Failed,
    )
    .await;
    suite.stop().await;
}
on_both_databases!(delivery_statuses_reach_the_agent_forward_only);

async fn a_status_that_beats_the_send_answer_is_applied(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = conversation(&suite).await;
    // Delivered arrives before the send has stored WhatsApp's id…
    assert_eq!(
        suite
            .post_webhook(&fixture("status_delivered.json"))
            .await
            .status(),
        200
    );
    eventually("the status kept", || async {
        (suite.count_rows("messaging_statuses").await == 1).then_some(())
    })
    .await;
    // …and applies once it has.
    suite.cloud_api.next_wamid("wamid.xyzxyz");
    send_text(&suite, text(&attention, "k1"))
        .await
        .expect("sent");
    after_status(
        &suite,
        &attention,
        "status_sent.json",
        MessageStatus::Delivered,
    )
    .await;
    // A status of a number bound to no campaign (and of a message not ours) is kept too.
    assert_eq!(
        suite
            .post_webhook(&fixture("status_failed_131053_netflie.json"))
            .await
            .status(),
        200
    );
    eventually("the stray status kept", || async {
        (suite.count_rows("messaging_statuses").await == 3).then_some(())
    })
    .await;
    suite.stop().await;
}
on_both_databases!(a_status_that_beats_the_send_answer_is_applied);
