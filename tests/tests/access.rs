//! Who may do what, and the error each refusal gives, on SQLite and PostgreSQL.

use tonic::Code;

use atenciones_proto::gateway::v1 as pb;
use atenciones_tests::{TestDatabase, TestSuite, fixture, on_both_databases};

async fn queued_attention(suite: &TestSuite) -> String {
    suite
        .queued_attention(&fixture("inbound_text.json"), "ana")
        .await
}

fn open(id: &str) -> pb::OpenAttentionRequest {
    pb::OpenAttentionRequest {
        attention_id: id.into(),
        message_page_size: 0,
    }
}

async fn calls_without_a_valid_credential_are_unauthenticated(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let error = suite
        .anonymous_desk()
        .await
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(error.code(), Code::Unauthenticated);
    let error = suite
        .desk_with_token("not-a-jwt")
        .await
        .get_me(pb::GetMeRequest {})
        .await
        .expect_err("bad token");
    assert_eq!(error.code(), Code::Unauthenticated);
    let mut forged = suite.settings.gateway.auth.clone();
    forged.jwt_secret = "someone-else".into();
    let token = atenciones_gateway::auth::issue(
        &forged,
        "ana",
        atenciones_gateway::auth::Role::Agent,
        std::time::Duration::from_secs(60),
    )
    .expect("token");
    let error = suite
        .desk_with_token(&token)
        .await
        .get_me(pb::GetMeRequest {})
        .await
        .expect_err("forged token");
    assert_eq!(error.code(), Code::Unauthenticated);

    let me = suite
        .desk("ana")
        .await
        .get_me(pb::GetMeRequest {})
        .await
        .expect("me")
        .into_inner();
    let agent = me.agent.expect("agent");
    assert_eq!(
        (agent.id.as_str(), agent.campaign_ids.as_slice()),
        ("ana", ["ventas".to_owned()].as_slice())
    );
    suite.stop().await;
}
on_both_databases!(calls_without_a_valid_credential_are_unauthenticated);

async fn an_agent_of_another_campaign_is_denied(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = queued_attention(&suite).await;
    let mut marta = suite.desk("marta").await;
    assert_eq!(
        marta
            .open_attention(open(&id))
            .await
            .expect_err("other campaign")
            .code(),
        Code::PermissionDenied
    );
    let messages = pb::ListMessagesRequest {
        attention_id: id.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    assert_eq!(
        marta
            .list_messages(messages)
            .await
            .expect_err("other campaign")
            .code(),
        Code::PermissionDenied
    );
    let finish = pb::FinishAttentionRequest {
        attention_id: id.clone(),
    };
    assert_eq!(
        marta
            .finish_attention(finish)
            .await
            .expect_err("other campaign")
            .code(),
        Code::PermissionDenied
    );

    // Still queued and untouched for its own campaign.
    suite
        .desk("ana")
        .await
        .open_attention(open(&id))
        .await
        .expect("ana opens it");
    suite.stop().await;
}
on_both_databases!(an_agent_of_another_campaign_is_denied);

async fn only_the_holder_acts_on_an_open_attention(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = queued_attention(&suite).await;
    let mut ana = suite.desk("ana").await;
    let mut luis = suite.desk("luis").await;

    // Acting before opening is refused.
    let send = |key: &str| pb::SendTextRequest {
        attention_id: id.clone(),
        text: "hola".into(),
        preview_url: false,
        idempotency_key: key.into(),
        reply_to_message_id: String::new(),
    };
    assert_eq!(
        ana.send_text(send("k0"))
            .await
            .expect_err("not open")
            .code(),
        Code::FailedPrecondition
    );

    ana.open_attention(open(&id)).await.expect("ana opens it");
    let error = luis
        .open_attention(open(&id))
        .await
        .expect_err("already open");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(
        luis.send_text(send("k1"))
            .await
            .expect_err("not the holder")
            .code(),
        Code::PermissionDenied
    );
    let draft = pb::SaveFormDraftRequest {
        attention_id: id.clone(),
        values: Default::default(),
    };
    assert_eq!(
        luis.save_form_draft(draft)
            .await
            .expect_err("not the holder")
            .code(),
        Code::PermissionDenied
    );
    let finish = pb::FinishAttentionRequest {
        attention_id: id.clone(),
    };
    assert_eq!(
        luis.finish_attention(finish)
            .await
            .expect_err("not the holder")
            .code(),
        Code::PermissionDenied
    );
    assert!(suite.cloud_api.sent().is_empty(), "nothing was sent");

    // Opening again by the holder is fine (a page reload).
    ana.open_attention(open(&id)).await.expect("ana reopens");
    suite.stop().await;
}
on_both_databases!(only_the_holder_acts_on_an_open_attention);

async fn two_agents_opening_at_once_exactly_one_wins(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = queued_attention(&suite).await;
    let mut ana = suite.desk("ana").await;
    let mut luis = suite.desk("luis").await;
    let (a, l) = tokio::join!(
        ana.open_attention(open(&id)),
        luis.open_attention(open(&id))
    );
    let outcomes = [a.map(|_| ()), l.map(|_| ())];
    let won = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "exactly one agent holds it: {outcomes:?}");
    let lost = outcomes
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("one lost");
    assert_eq!(lost.code(), Code::FailedPrecondition);
    suite.stop().await;
}
on_both_databases!(two_agents_opening_at_once_exactly_one_wins);

async fn unknown_attentions_are_not_found(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut ana = suite.desk("ana").await;
    let missing = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        ana.open_attention(open(&missing))
            .await
            .expect_err("unknown")
            .code(),
        Code::NotFound
    );
    let record = pb::GetAttentionRecordRequest {
        attention_id: missing.clone(),
    };
    assert_eq!(
        ana.get_attention_record(record)
            .await
            .expect_err("unknown")
            .code(),
        Code::NotFound
    );
    assert_eq!(
        ana.open_attention(open("not-a-uuid"))
            .await
            .expect_err("malformed")
            .code(),
        Code::InvalidArgument
    );
    let mut ghost = suite.desk("nobody").await;
    assert_eq!(
        ghost
            .list_attentions(pb::ListAttentionsRequest::default())
            .await
            .expect_err("unknown agent")
            .code(),
        Code::NotFound
    );
    suite.stop().await;
}
on_both_databases!(unknown_attentions_are_not_found);
