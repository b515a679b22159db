//! Finish without losing anything, with the suite split over three child
//! processes as in a deployment: `form`, `history`, and the rest (gateway,
//! queue, messaging). Each is killed the hard way (SIGKILL) at the worst
//! moment:
//! - the form service, after an agent saved a draft: the draft comes back;
//! - the history service, before Finish: Finish still succeeds, and the
//!   record appears with every message and the form once history is back;
//! - the process running the queue, after the form was submitted and before
//!   the attention was closed: the retried Finish completes it, the form is
//!   submitted once.

use atenciones_test_support::services;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::form::v1::form_service_server::{FormService, FormServiceServer};
use atenciones_proto::gateway::v1 as pb;
use atenciones_test_support::webhook::{self, APP_SECRET, http_client, signature, text_webhook};
use atenciones_test_support::{
    CloudApi, Desk, SuiteProcess, TestDatabase, agent_desk, eventually, free_port,
    on_both_databases, suite_env,
};
use sea_orm::{ConnectionTrait, Statement};
use tokio::sync::oneshot;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

const ATENCIONES: &str = env!("CARGO_BIN_EXE_atenciones");
/// The app secret `suite_env` gives the suite.
const VENTAS_NUMBER: &str = "1122334455667";
const CUSTOMER: &str = "5491177770000";

/// The form service as the queue sees it: every call forwarded to the real
/// one. Armed, it lets a SubmitForm reach the form service, then signals the
/// test (which kills the caller) instead of answering.
struct FormProxy {
    upstream: FormServiceClient<atenciones_runtime::grpc::Channel>,
    after_submit: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

/// The proxy's impl: `$method`s forwarded as they are, then `$own` items.
macro_rules! form_proxy {
    (forward { $($method:ident: $request:ty => $response:ty;)+ } $($own:tt)*) => {
        #[tonic::async_trait]
        impl FormService for FormProxy {
            $(
                async fn $method(
                    &self,
                    request: Request<$request>,
                ) -> Result<Response<$response>, Status> {
                    self.upstream.clone().$method(request.into_inner()).await
                }
            )+
            $($own)*
        }
    };
}

form_proxy! {
    forward {
        publish_form: form_pb::PublishFormRequest => form_pb::PublishFormResponse;
        get_current_form: form_pb::GetCurrentFormRequest => form_pb::GetCurrentFormResponse;
        get_form: form_pb::GetFormRequest => form_pb::GetFormResponse;
        save_draft: form_pb::SaveDraftRequest => form_pb::SaveDraftResponse;
        get_draft: form_pb::GetDraftRequest => form_pb::GetDraftResponse;
        get_submission: form_pb::GetSubmissionRequest => form_pb::GetSubmissionResponse;
        purge_attentions: form_pb::PurgeAttentionsRequest => form_pb::PurgeAttentionsResponse;
    }

    async fn submit_form(
        &self,
        request: Request<form_pb::SubmitFormRequest>,
    ) -> Result<Response<form_pb::SubmitFormResponse>, Status> {
        let response = self.upstream.clone().submit_form(request.into_inner()).await;
        let armed = self
            .after_submit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(armed) = armed {
            let _ = armed.send(());
            // The caller dies now; it never gets the answer.
            std::future::pending::<()>().await;
        }
        response
    }
}

/// Ana's desk on the gateway of `suite`.
async fn desk(suite: &SuiteProcess) -> Desk {
    let channel = Endpoint::from_shared(suite.url("gateway"))
        .expect("url")
        .connect()
        .await
        .expect("gateway reachable");
    agent_desk(channel, "ana")
}

/// The state of the test's only attention, read straight from the queue's
/// database (the queue may be dead when this matters).
async fn stored_state(db: &TestDatabase, attention_id: &str) -> String {
    let connection = db.connect("queue").await;
    let backend = connection.get_database_backend();
    let rows = connection
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, state FROM attentions",
        ))
        .await
        .expect("query");
    assert_eq!(rows.len(), 1, "one attention");
    let id: uuid::Uuid = rows[0].try_get("", "id").expect("id");
    assert_eq!(id.to_string(), attention_id);
    let state = rows[0].try_get::<String>("", "state").expect("state");
    connection.close().await.expect("close");
    state
}

async fn submission(form_url: &str, attention_id: &str) -> Option<form_pb::Submission> {
    let mut form = FormServiceClient::new(services::service_channel(form_url));
    form.get_submission(form_pb::GetSubmissionRequest {
        attention_id: attention_id.into(),
    })
    .await
    .ok()?
    .into_inner()
    .submission
}

async fn finish_survives_crashes_of_each_process(db: TestDatabase) {
    let cloud_api = CloudApi::start().await;
    let env = suite_env(&db, &cloud_api);
    let form_address: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let history_address: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let form_url = format!("http://{form_address}");

    let mut form_env = env.clone();
    form_env.insert("ATENCIONES_FORM__LISTEN".into(), form_address.to_string());
    let mut history_env = env.clone();
    history_env.insert(
        "ATENCIONES_HISTORY__LISTEN".into(),
        history_address.to_string(),
    );

    let after_submit = Arc::new(Mutex::new(None));
    let proxy = FormProxy {
        upstream: FormServiceClient::new(services::service_channel(&form_url)),
        after_submit: after_submit.clone(),
    };
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_url = format!("http://{}", proxy_listener.local_addr().expect("address"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FormServiceServer::new(proxy))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                proxy_listener,
            )),
    );
    let mut desk_env = env.clone();
    desk_env.insert("ATENCIONES_FORM__URL".into(), proxy_url);
    desk_env.insert(
        "ATENCIONES_HISTORY__URL".into(),
        format!("http://{history_address}"),
    );
    let desk_roles = ["gateway", "queue", "messaging"];
    let binary = ATENCIONES.as_ref();

    let forms = SuiteProcess::start_roles(binary, &form_env, &["form"]).await;
    let history = SuiteProcess::start_roles(binary, &history_env, &["history"]).await;
    let desk_process = SuiteProcess::start_roles(binary, &desk_env, &desk_roles).await;

    // The customer writes; ana opens the attention and fills the form.
    let body = text_webhook(
        VENTAS_NUMBER,
        CUSTOMER,
        "Eva",
        "wamid.crash.1",
        "Quiero el plan anual",
    );
    let url = format!("{}/webhooks/whatsapp", desk_process.url("webhook"));
    let signature = signature(APP_SECRET, &body);
    let posted = webhook::post(&http_client(), &url, body, &signature)
        .send()
        .await
        .expect("webhook reachable");
    assert_eq!(posted.status(), 200);
    let mut ana = desk(&desk_process).await;
    let attention_id = eventually("the queued attention", || {
        let mut ana = ana.clone();
        async move {
            let list = ana
                .list_attentions(pb::ListAttentionsRequest::default())
                .await
                .ok()?
                .into_inner();
            list.attentions.into_iter().next().map(|a| a.id)
        }
    })
    .await;
    let open = |mut ana: Desk, id: String| async move {
        ana.open_attention(pb::OpenAttentionRequest {
            attention_id: id,
            message_page_size: 20,
        })
        .await
        .expect("open")
        .into_inner()
    };
    open(ana.clone(), attention_id.clone()).await;
    let motivo = form_pb::FieldValue {
        kind: Some(form_pb::field_value::Kind::Choice("compra".into())),
    };
    ana.save_form_draft(pb::SaveFormDraftRequest {
        attention_id: attention_id.clone(),
        values: HashMap::from([("motivo".to_owned(), motivo.clone())]),
    })
    .await
    .expect("draft saved");

    // The form service dies and comes back: the draft is still there.
    forms.kill().await;
    let forms = SuiteProcess::start_roles(binary, &form_env, &["form"]).await;
    let reopened = open(ana.clone(), attention_id.clone()).await;
    let draft = reopened.draft.expect("the draft");
    assert_eq!(draft.values.get("motivo"), Some(&motivo));

    // History is down when the agent finishes; the process running the
    // queue dies right after the form was submitted.
    history.kill().await;
    let (armed, submitted) = oneshot::channel();
    *after_submit.lock().unwrap_or_else(|p| p.into_inner()) = Some(armed);
    let finishing = {
        let mut ana = ana.clone();
        let attention_id = attention_id.clone();
        tokio::spawn(async move {
            ana.finish_attention(pb::FinishAttentionRequest { attention_id })
                .await
        })
    };
    submitted.await.expect("the form was submitted");
    desk_process.kill().await;
    let cut = finishing.await.expect("joined");
    assert!(cut.is_err(), "the agent saw the crash: {cut:?}");
    assert_eq!(stored_state(&db, &attention_id).await, "open", "halfway");
    let first_submission = submission(&form_url, &attention_id)
        .await
        .expect("submitted before the crash");

    // The agent's screen retries on the restarted process: finished once.
    let desk_process = SuiteProcess::start_roles(binary, &desk_env, &desk_roles).await;
    ana = desk(&desk_process).await;
    let finish = |mut ana: Desk, attention_id: String| async move {
        ana.finish_attention(pb::FinishAttentionRequest { attention_id })
            .await
            .expect("finish")
            .into_inner()
            .attention
            .expect("attention")
    };
    let finished = finish(ana.clone(), attention_id.clone()).await;
    assert_eq!(stored_state(&db, &attention_id).await, "finished");
    let again = finish(ana.clone(), attention_id.clone()).await;
    assert_eq!(again.finish_time, finished.finish_time, "idempotent");
    assert_eq!(
        submission(&form_url, &attention_id).await,
        Some(first_submission.clone()),
        "submitted once"
    );

    // History comes back and catches up.
    let record_request = || pb::GetAttentionRecordRequest {
        attention_id: attention_id.clone(),
    };
    assert!(
        ana.get_attention_record(record_request()).await.is_err(),
        "history is down"
    );
    let history = SuiteProcess::start_roles(binary, &history_env, &["history"]).await;
    let record = eventually("the record once history is back", || {
        let mut ana = ana.clone();
        let request = record_request();
        async move {
            ana.get_attention_record(request)
                .await
                .ok()?
                .into_inner()
                .record
        }
    })
    .await;
    let texts: Vec<_> = record.transcript.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Quiero el plan anual"]);
    assert_eq!(record.form, Some(first_submission));
    // History keeps times to the microsecond (as PostgreSQL does).
    let micros = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos / 1_000));
    assert_eq!(micros(record.finish_time), micros(finished.finish_time));

    for process in [forms, history, desk_process] {
        process.kill().await;
    }
}

on_both_databases!(finish_survives_crashes_of_each_process);
