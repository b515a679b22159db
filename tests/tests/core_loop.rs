//! The agent's basic day, end to end over gRPC, on SQLite and PostgreSQL:
//! inbound webhook → queued attention → open → reply → form → finish → history.

use std::collections::HashMap;

use tonic::Code;
use tonic_types::StatusExt;

use atenciones_proto::form::v1::{FieldValue, field_value};
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1::{MessageDirection, MessageStatus};
use atenciones_proto::queue::v1::{Attention, AttentionState};
use atenciones_tests::{
    TestDatabase, TestSuite, eventually, fixture, on_both_databases, status_webhook, text_webhook,
};

/// `inbound_text.json`: "Test Name" (972987654321) writes "Body Text" to 1122334455667 (campaign ventas).
const VENTAS_NUMBER: &str = "1122334455667";
const CUSTOMER: &str = "972987654321";

async fn queued_for(suite: &TestSuite, agent: &str, count: usize) -> Vec<Attention> {
    let desk = suite.desk(agent).await;
    eventually("queued attentions", || {
        let mut desk = desk.clone();
        async move {
            let list = desk
                .list_attentions(pb::ListAttentionsRequest::default())
                .await
                .ok()?
                .into_inner();
            let queued: Vec<_> = list
                .attentions
                .into_iter()
                .filter(|a| a.state() == AttentionState::Queued)
                .collect();
            (queued.len() == count).then_some(queued)
        }
    })
    .await
}

fn text(value: &str) -> FieldValue {
    FieldValue {
        kind: Some(field_value::Kind::Text(value.into())),
    }
}

fn choice(value: &str) -> FieldValue {
    FieldValue {
        kind: Some(field_value::Kind::Choice(value.into())),
    }
}

fn number(value: f64) -> FieldValue {
    FieldValue {
        kind: Some(field_value::Kind::Number(value)),
    }
}

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

async fn inbound_text_queues_an_attention_for_the_campaign(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let response = suite.post_webhook(&fixture("inbound_text.json")).await;
    assert_eq!(response.status(), 200);

    let queued = queued_for(&suite, "ana", 1).await;
    let attention = &queued[0];
    let customer = attention.customer.as_ref().expect("customer");
    assert_eq!(customer.wa_id, CUSTOMER);
    assert_eq!(customer.name, "Test Name");
    assert_eq!(attention.last_message_preview, "Body Text");
    assert_eq!(attention.campaign_id, "ventas");
    assert_eq!(attention.business_phone_number_id, VENTAS_NUMBER);
    assert_eq!(attention.unread_count, 1);
    assert!(
        !attention.form_id.is_empty(),
        "the campaign form version is pinned at creation"
    );

    // Another agent of the campaign sees it; an agent of another campaign does not.
    assert_eq!(queued_for(&suite, "luis", 1).await[0].id, attention.id);
    let marta = suite
        .desk("marta")
        .await
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("list");
    let marta = marta.into_inner();
    assert!(marta.attentions.is_empty());
    assert_eq!((marta.open_count, marta.queued_count), (0, 0));
    suite.stop().await;
}
on_both_databases!(inbound_text_queues_an_attention_for_the_campaign);

async fn a_redelivered_webhook_stores_the_message_once(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let body = fixture("inbound_text.json");
    for _ in 0..3 {
        assert_eq!(suite.post_webhook(&body).await.status(), 200);
    }
    // A later, different message joins the same attention and marks the end of processing.
    let later = text_webhook(
        VENTAS_NUMBER,
        CUSTOMER,
        "Test Name",
        "wamid.later",
        "¿Siguen ahí?",
    );
    assert_eq!(suite.post_webhook(&later).await.status(), 200);
    let attention = eventually("the later message", || async {
        let queued = queued_for(&suite, "ana", 1).await;
        (queued[0].last_message_preview == "¿Siguen ahí?").then(|| queued[0].clone())
    })
    .await;
    assert_eq!(
        attention.unread_count, 2,
        "three deliveries of one message count once"
    );

    let opened = suite
        .desk("ana")
        .await
        .open_attention(pb::OpenAttentionRequest {
            attention_id: attention.id.clone(),
            message_page_size: 0,
        })
        .await
        .expect("open")
        .into_inner();
    let texts: Vec<_> = opened.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["¿Siguen ahí?", "Body Text"],
        "newest first, each stored once"
    );
    suite.stop().await;
}
on_both_databases!(a_redelivered_webhook_stores_the_message_once);

async fn agent_opens_replies_fills_the_form_and_finishes(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    // `inbound_text.json` as the customer would write it today: the fixture's
    // own 2023 timestamp closed its 24-hour window long ago.
    let today = text_webhook(
        VENTAS_NUMBER,
        CUSTOMER,
        "Test Name",
        "wamid.xyzxyz",
        "Body Text",
    );
    assert_eq!(suite.post_webhook(&today).await.status(), 200);
    let attention = queued_for(&suite, "ana", 1).await.remove(0);
    let mut ana = suite.desk("ana").await;

    // Open: one response carries the customer, the conversation and the form.
    let opened = ana
        .open_attention(pb::OpenAttentionRequest {
            attention_id: attention.id.clone(),
            message_page_size: 20,
        })
        .await
        .expect("open")
        .into_inner();
    let open = opened.attention.expect("attention");
    assert_eq!(open.state(), AttentionState::Open);
    assert_eq!(open.agent_id, "ana");
    assert_eq!(open.unread_count, 0);
    assert_eq!(opened.messages.len(), 1);
    assert_eq!(opened.messages[0].direction(), MessageDirection::Inbound);
    assert_eq!(opened.messages[0].wamid, "wamid.xyzxyz");
    let form = opened.form.expect("the campaign form");
    let keys: Vec<_> = form.fields.iter().map(|f| f.key.as_str()).collect();
    assert!(keys.contains(&"motivo"), "form fields: {keys:?}");
    assert!(opened.earlier_attentions.is_empty());

    // The list now shows it open for ana, and no longer queued for luis.
    let list = ana
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!((list.open_count, list.queued_count), (1, 0));
    let luis = suite
        .desk("luis")
        .await
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("list");
    assert!(luis.into_inner().attentions.is_empty());

    // Reply: the Cloud API receives it; it is stored with WhatsApp's id.
    let sent = ana
        .send_text(pb::SendTextRequest {
            attention_id: attention.id.clone(),
            text: "Hola, ¿en qué puedo ayudarle?".into(),
            preview_url: false,
            idempotency_key: "reply-1".into(),
            reply_to_message_id: String::new(),
        })
        .await
        .expect("send")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(sent.wamid, "wamid.sent.1");
    assert_eq!(sent.status(), MessageStatus::Accepted);
    // Repeating the request with the same key sends nothing more.
    let again = ana
        .send_text(pb::SendTextRequest {
            attention_id: attention.id.clone(),
            text: "Hola, ¿en qué puedo ayudarle?".into(),
            preview_url: false,
            idempotency_key: "reply-1".into(),
            reply_to_message_id: String::new(),
        })
        .await
        .expect("send again")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(again.id, sent.id);
    let requests = suite.cloud_api.sent();
    assert_eq!(requests.len(), 1, "one idempotency key, one send");
    assert_eq!(requests[0].phone_number_id, VENTAS_NUMBER);
    assert_eq!(
        requests[0].authorization,
        format!("Bearer {}", atenciones_tests::ACCESS_TOKEN)
    );
    assert_eq!(requests[0].body["to"], CUSTOMER);
    assert_eq!(requests[0].body["type"], "text");
    assert_eq!(
        requests[0].body["text"]["body"],
        "Hola, ¿en qué puedo ayudarle?"
    );

    // Finishing with a required field empty reports that field.
    let error = ana
        .finish_attention(pb::FinishAttentionRequest {
            attention_id: attention.id.clone(),
        })
        .await
        .expect_err("the form is incomplete");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violations(&error), ["motivo"]);

    // A bad value is refused when saved, each bad field reported at once.
    let bad = HashMap::from([
        ("motivo".to_owned(), choice("no-existe")),
        ("monto".to_owned(), number(-5.0)),
    ]);
    let error = ana
        .save_form_draft(pb::SaveFormDraftRequest {
            attention_id: attention.id.clone(),
            values: bad,
        })
        .await
        .expect_err("invalid values");
    assert_eq!(error.code(), Code::InvalidArgument);
    let mut fields = violations(&error);
    fields.sort();
    assert_eq!(fields, ["monto", "motivo"]);

    let good = HashMap::from([
        ("motivo".to_owned(), choice("compra")),
        ("comentario".to_owned(), text("Quiere el plan anual")),
    ]);
    ana.save_form_draft(pb::SaveFormDraftRequest {
        attention_id: attention.id.clone(),
        values: good,
    })
    .await
    .expect("draft saved");

    // The draft comes back when the attention is opened again.
    let reopened = ana
        .open_attention(pb::OpenAttentionRequest {
            attention_id: attention.id.clone(),
            message_page_size: 0,
        })
        .await
        .expect("reopen")
        .into_inner();
    let draft = reopened.draft.expect("draft");
    assert_eq!(draft.values.get("motivo"), Some(&choice("compra")));
    assert_eq!(reopened.messages.len(), 2);

    // Finish, then finish again: the same finished attention.
    let finished = ana
        .finish_attention(pb::FinishAttentionRequest {
            attention_id: attention.id.clone(),
        })
        .await
        .expect("finish")
        .into_inner()
        .attention
        .expect("attention");
    assert_eq!(finished.state(), AttentionState::Finished);
    assert!(finished.finish_time.is_some());
    let again = ana
        .finish_attention(pb::FinishAttentionRequest {
            attention_id: attention.id.clone(),
        })
        .await
        .expect("finishing again is harmless")
        .into_inner()
        .attention
        .expect("attention");
    assert_eq!(again.finish_time, finished.finish_time);
    let list = ana
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        list.attentions.is_empty(),
        "a finished attention leaves the list"
    );

    // History holds the transcript (oldest first), the form and the metadata.
    let record = eventually("the history record", || {
        let mut ana = ana.clone();
        let id = attention.id.clone();
        async move {
            ana.get_attention_record(pb::GetAttentionRecordRequest { attention_id: id })
                .await
                .ok()
        }
    })
    .await
    .into_inner()
    .record
    .expect("record");
    assert_eq!(record.agent_id, "ana");
    assert_eq!(record.campaign_id, "ventas");
    assert_eq!(
        record.customer.as_ref().map(|c| c.wa_id.as_str()),
        Some(CUSTOMER)
    );
    assert!(
        record.finish_time.is_some() && record.open_time.is_some() && record.create_time.is_some()
    );
    let transcript: Vec<_> = record
        .transcript
        .iter()
        .map(|m| (m.direction(), m.text.as_str()))
        .collect();
    assert_eq!(
        transcript,
        [
            (MessageDirection::Inbound, "Body Text"),
            (MessageDirection::Outbound, "Hola, ¿en qué puedo ayudarle?"),
        ]
    );
    assert_eq!(record.message_count, 2);
    let answers = record.form.expect("form values").answers;
    let motivo = answers
        .iter()
        .find(|a| a.key == "motivo")
        .expect("motivo answered");
    assert_eq!(motivo.display_value, "Compra");
    assert!(
        answers
            .iter()
            .any(|a| a.key == "comentario" && a.display_value == "Quiere el plan anual")
    );

    let history = ana
        .list_customer_history(pb::ListCustomerHistoryRequest {
            customer_id: CUSTOMER.into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.records.len(), 1);
    assert_eq!(history.records[0].attention_id, attention.id);

    // The customer's next message starts a new attention, which shows the earlier one.
    let next = text_webhook(
        VENTAS_NUMBER,
        CUSTOMER,
        "Test Name",
        "wamid.next",
        "Una pregunta más",
    );
    assert_eq!(suite.post_webhook(&next).await.status(), 200);
    let new = queued_for(&suite, "ana", 1).await.remove(0);
    assert_ne!(new.id, attention.id);
    assert_eq!(new.last_message_preview, "Una pregunta más");
    let opened = ana
        .open_attention(pb::OpenAttentionRequest {
            attention_id: new.id.clone(),
            message_page_size: 0,
        })
        .await
        .expect("open the new one")
        .into_inner();
    assert_eq!(
        opened.messages.len(),
        1,
        "the new attention starts with only the new message"
    );
    assert_eq!(opened.earlier_attentions.len(), 1);
    assert_eq!(opened.earlier_attentions[0].attention_id, attention.id);
    suite.stop().await;
}
on_both_databases!(agent_opens_replies_fills_the_form_and_finishes);

async fn a_receipt_after_finish_updates_the_records_status_not_its_content(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let inbound = text_webhook(VENTAS_NUMBER, CUSTOMER, "Test Name", "wamid.f1", "Hola");
    let id = suite.serve_and_finish(&inbound, "ana").await;
    let before = suite.record("ana", &id).await;
    let reply = before
        .transcript
        .iter()
        .find(|m| m.direction() == MessageDirection::Outbound)
        .expect("the reply")
        .clone();
    assert_eq!(reply.status(), MessageStatus::Accepted);

    let read = status_webhook(VENTAS_NUMBER, CUSTOMER, &reply.wamid, "read", None);
    assert_eq!(suite.post_webhook(&read).await.status(), 200);
    let after = eventually("the receipt in the record", || async {
        let record = suite.record("ana", &id).await;
        let status = record
            .transcript
            .iter()
            .find(|m| m.id == reply.id)?
            .status();
        (status == MessageStatus::Read).then_some(record)
    })
    .await;
    let texts = |r: &atenciones_proto::history::v1::AttentionRecord| {
        r.transcript
            .iter()
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&after), texts(&before), "the content never changes");
    assert_eq!(after.message_count, before.message_count);
    suite.stop().await;
}

on_both_databases!(a_receipt_after_finish_updates_the_records_status_not_its_content);

/// Opening an attention through a gateway whose history (optional for the
/// screen) is unreachable still opens it, with that part marked
/// unavailable; one whose messaging (essential) is unreachable fails with
/// UNAVAILABLE and says so.
async fn open_degrades_without_history_and_fails_without_messaging(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let inbound = text_webhook(VENTAS_NUMBER, CUSTOMER, "Test Name", "wamid.d1", "Hola");
    let id = suite.queued_attention(&inbound, "ana").await;
    // Nothing listens on a port just released.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("address"))
    };
    let token = suite.token("ana", atenciones_tests::Role::Agent);
    let dead_history = {
        let dead = dead.clone();
        suite
            .replica_with(&[atenciones::Role::Gateway], move |s| s.history.url = dead)
            .await
    };
    let opened = suite
        .desk_via(
            format!("http://{}", dead_history.gateway.expect("gateway")),
            &token,
        )
        .await
        .open_attention(pb::OpenAttentionRequest {
            attention_id: id.clone(),
            message_page_size: 20,
        })
        .await
        .expect("opens without history")
        .into_inner();
    assert_eq!(opened.unavailable, ["earlier_attentions"]);
    assert_eq!(opened.messages.len(), 1);
    assert!(opened.form.is_some());

    let dead_messaging = suite
        .replica_with(&[atenciones::Role::Gateway], move |s| {
            s.messaging.url = dead
        })
        .await;
    let error = suite
        .desk_via(
            format!("http://{}", dead_messaging.gateway.expect("gateway")),
            &token,
        )
        .await
        .open_attention(pb::OpenAttentionRequest {
            attention_id: id,
            message_page_size: 20,
        })
        .await
        .expect_err("messages are essential");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    suite.stop().await;
}

on_both_databases!(open_degrades_without_history_and_fails_without_messaging);
