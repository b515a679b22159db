//! Hostile input at the gateway and the webhook: huge messages, deep
//! nesting, invalid UTF-8, NUL, very long strings are refused with a clear
//! status naming what was wrong, and the gateway serves on; SQL-looking and
//! script-looking text is stored and returned byte for byte, never
//! interpreted (see `gateway_fuzz.rs` for the random side of this).

use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Status};

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::history::v1 as history_pb;
use atenciones_tests::{
    Role, TestDatabase, TestSuite, eventually, on_both_databases, raw, text_webhook, violations,
};

const VENTAS_NUMBER: &str = "1122334455667";
const SEND_TEXT: &str = "/atenciones.gateway.v1.AgentDeskService/SendText";

/// Text that would do harm if anything along the way interpreted it.
const HOSTILE: [&str; 6] = [
    "'); DROP TABLE attentions; --",
    "' OR '1'='1",
    "<script>alert(document.cookie)</script>",
    "\"><img src=x onerror=alert(1)>",
    "{{1}} ${jndi:ldap://x} %s%n \\x00 \\u0000",
    "ﷺ \u{202E}txt.exe 😀 e\u{0301}",
];

async fn channel(suite: &TestSuite) -> Channel {
    Channel::from_shared(suite.gateway_url())
        .expect("url")
        .connect()
        .await
        .expect("gateway reachable")
}

/// ana's held attention, opened.
async fn held_attention(suite: &TestSuite, customer: &str) -> String {
    let body = text_webhook(
        VENTAS_NUMBER,
        customer,
        "Cliente",
        &format!("wamid.{customer}"),
        "Hola",
    );
    let id = suite.queued_attention(&body, "ana").await;
    suite.open("ana", &id).await;
    id
}

async fn malformed_and_oversized_requests_are_refused_clearly(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let attention = held_attention(&suite, "5491100000101").await;
    let channel = channel(&suite).await;
    let token = suite.token("ana", Role::Agent);
    let send = |text: &str| pb::SendTextRequest {
        attention_id: attention.clone(),
        text: text.to_owned(),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let call = |body: Vec<u8>| raw::call(&channel, SEND_TEXT, false, &token, body);
    let refused = |status: &Status, code: Code, mentions: &str| {
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(mentions), "{status:?}");
        assert!(
            status.message().len() < 1_024,
            "a short message: {}",
            status.message().len()
        );
    };

    // Over the 4 MiB a request may be: refused before it is buffered.
    let huge = call(send(&"x".repeat(5 << 20)).encode_to_vec()).await;
    refused(&huge, Code::OutOfRange, "too large");
    // Under it but far over WhatsApp's 4,096 characters: the field is named.
    let long = call(send(&"x".repeat(3 << 20)).encode_to_vec()).await;
    assert_eq!(long.code(), Code::InvalidArgument, "{long:?}");
    assert_eq!(violations(&long), ["text"]);

    // Invalid UTF-8 in a string field: the message and field are named.
    let mut invalid = send("hola").encode_to_vec();
    let at = invalid
        .windows(4)
        .position(|w| w == b"hola")
        .expect("the text");
    invalid[at + 1] = 0xC3;
    invalid[at + 2] = 0x28;
    refused(
        &call(invalid).await,
        Code::InvalidArgument,
        "SendTextRequest.text: invalid string value",
    );

    // 10,000 nested groups under an unknown field: prost's recursion limit.
    let mut nested = send("hola").encode_to_vec();
    nested.extend(std::iter::repeat_n(0x7B_u8, 10_000)); // field 15, start group
    nested.extend(std::iter::repeat_n(0x7C_u8, 10_000)); // field 15, end group
    refused(
        &call(nested).await,
        Code::InvalidArgument,
        "recursion limit",
    );

    // NUL, which PostgreSQL cannot store, in any text field.
    let nul = call(send("ho\0la").encode_to_vec()).await;
    refused(&nul, Code::InvalidArgument, "NUL");
    assert_eq!(violations(&nul), ["text"]);

    // Very long strings where ids and queries go.
    let mut desk = suite.desk("ana").await;
    let long_id = desk
        .open_attention(pb::OpenAttentionRequest {
            attention_id: "7".repeat(100_000),
            ..Default::default()
        })
        .await
        .expect_err("no such attention");
    assert!(
        matches!(long_id.code(), Code::InvalidArgument | Code::NotFound),
        "{long_id:?}"
    );
    assert!(
        long_id.message().len() < 1_024,
        "{}",
        long_id.message().len()
    );
    let query = |query: String| {
        let mut desk = desk.clone();
        async move {
            desk.list_attentions(pb::ListAttentionsRequest { query })
                .await
        }
    };
    let too_long = query("ñ".repeat(101))
        .await
        .expect_err("over 100 characters");
    assert_eq!(too_long.code(), Code::InvalidArgument);
    assert_eq!(violations(&too_long), ["query"]);
    query("ñ".repeat(100)).await.expect("100 characters");

    // None of it hurt: nothing was sent, and the gateway serves.
    assert!(
        suite.cloud_api.sent().is_empty(),
        "nothing reached WhatsApp"
    );
    let sent = call(send("Hola").encode_to_vec()).await;
    assert_eq!(sent.code(), Code::Ok, "{sent:?}");
    suite.stop().await;
}
on_both_databases!(malformed_and_oversized_requests_are_refused_clearly);

async fn sql_and_script_looking_text_is_stored_and_returned_verbatim(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let customer = "5491100000102";
    // The customer's name and messages.
    let mut attention = None;
    for (n, text) in HOSTILE.iter().enumerate() {
        let body = text_webhook(
            VENTAS_NUMBER,
            customer,
            HOSTILE[2],
            &format!("wamid.h{n}"),
            text,
        );
        if attention.is_none() {
            attention = Some(suite.queued_attention(&body, "ana").await);
        } else {
            assert_eq!(suite.post_webhook(&body).await.status(), 200);
        }
    }
    let attention = attention.expect("an attention");
    let listed = suite.attentions("ana").await;
    let listed = listed.iter().find(|a| a.id == attention).expect("listed");
    let name = listed.customer.as_ref().map(|c| c.name.as_str());
    assert_eq!(name, Some(HOSTILE[2]));
    let inbound = eventually("every customer message", || async {
        let opened = suite.open("ana", &attention).await;
        (opened.messages.len() == HOSTILE.len()).then_some(opened)
    })
    .await;
    // Newest first.
    let texts: Vec<&str> = inbound
        .messages
        .iter()
        .rev()
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(texts, HOSTILE);

    // The agent's replies, as WhatsApp receives them and as they are listed.
    let mut desk = suite.desk("ana").await;
    for (n, text) in HOSTILE.iter().enumerate() {
        desk.send_text(pb::SendTextRequest {
            attention_id: attention.clone(),
            text: (*text).to_owned(),
            idempotency_key: format!("hostile-{n}"),
            ..Default::default()
        })
        .await
        .expect("sent");
    }
    let delivered: Vec<String> = eventually("every reply at WhatsApp", || async {
        let sent = suite.cloud_api.sent();
        (sent.len() == HOSTILE.len()).then(|| {
            sent.iter()
                .map(|r| {
                    r.body["text"]["body"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
    })
    .await;
    assert_eq!(delivered, HOSTILE);

    // A form answer, through Finish into history.
    let comment = HOSTILE.join("\n");
    let value = |kind| form_pb::FieldValue { kind: Some(kind) };
    desk.save_form_draft(pb::SaveFormDraftRequest {
        attention_id: attention.clone(),
        values: [
            (
                "motivo".to_owned(),
                value(form_pb::field_value::Kind::Choice("consulta".into())),
            ),
            (
                "comentario".to_owned(),
                value(form_pb::field_value::Kind::Text(comment.clone())),
            ),
        ]
        .into(),
    })
    .await
    .expect("draft");
    desk.finish_attention(pb::FinishAttentionRequest {
        attention_id: attention.clone(),
    })
    .await
    .expect("finish");
    let record = suite.record("ana", &attention).await;
    let transcript: Vec<&str> = record.transcript.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(transcript, [HOSTILE, HOSTILE].concat());
    assert_eq!(
        record.customer.as_ref().map(|c| c.name.as_str()),
        Some(HOSTILE[2])
    );
    let answer = record
        .form
        .iter()
        .flat_map(|f| &f.answers)
        .find(|a| a.key == "comentario")
        .and_then(|a| a.value.as_ref()?.kind.clone());
    assert_eq!(answer, Some(form_pb::field_value::Kind::Text(comment)));

    // A search for SQL-looking text is a search: it finds this record and
    // nothing else (a second, harmless one exists).
    suite
        .serve_and_finish(
            &text_webhook(
                VENTAS_NUMBER,
                "5491100000103",
                "Otro",
                "wamid.other",
                "Hola",
            ),
            "ana",
        )
        .await;
    for query in ["DROP TABLE attentions", "' OR '1'='1", "alert"] {
        let found = desk
            .search_history(pb::SearchHistoryRequest {
                filter: Some(history_pb::HistoryFilter {
                    query: query.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("search")
            .into_inner()
            .records;
        let ids: Vec<&str> = found.iter().map(|r| r.attention_id.as_str()).collect();
        assert_eq!(ids, [attention.as_str()], "{query}");
    }
    suite.stop().await;
}
on_both_databases!(sql_and_script_looking_text_is_stored_and_returned_verbatim);

async fn a_customer_message_with_nul_is_kept_and_blocks_nothing(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let customer = "5491100000104";
    let body = text_webhook(VENTAS_NUMBER, customer, "Nul\0Name", "wamid.nul", "a\0b");
    let attention = suite.queued_attention(&body, "ana").await;
    let next = text_webhook(VENTAS_NUMBER, customer, "Nul", "wamid.after", "después");
    assert_eq!(suite.post_webhook(&next).await.status(), 200);
    let opened = eventually("both messages", || async {
        let opened = suite.open("ana", &attention).await;
        (opened.messages.len() == 2).then_some(opened)
    })
    .await;
    let texts: Vec<&str> = opened.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["después", "a\u{FFFD}b"], "newest first");
    suite.stop().await;
}
on_both_databases!(a_customer_message_with_nul_is_kept_and_blocks_nothing);
