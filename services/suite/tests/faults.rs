//! Faults under load: whatever fails, nothing accepted is lost and nothing is
//! done twice. The suite runs split as in a deployment, one child process per
//! role, each on an address chosen up front so that a restarted process takes
//! it again and the others reach it there. Customers write (signed webhooks,
//! posted again after anything but 200, as Meta does) while agents open,
//! reply (with an idempotency key), fill the form and finish, retrying what
//! fails as their screens do.
//! - Every process is killed (SIGKILL) and started again, one after another.
//! - The database (a private PostgreSQL cluster) stops for seconds and starts
//!   again: the suite recovers by itself.
//! - History, the form service or messaging is down for a while: the calls
//!   that need it fail at once with UNAVAILABLE, the rest goes on, and the
//!   system catches up once it is back.
//!
//! At the end every inbound message is stored once, in an attention; every
//! reply went to WhatsApp once (or twice only in the one known way: its
//! sender was killed after WhatsApp took it, before it recorded so); every
//! attention is finished and has one history record with all its messages
//! and its form.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::history::v1::HistoryFilter;
use atenciones_proto::queue::v1::AttentionState;
use atenciones_test_support::webhook::{self, APP_SECRET, http_client, signature, text_webhook};
use atenciones_test_support::{
    Answer, CloudApi, Desk, PrivatePostgres, SuiteProcess, TestDatabase, agent_desk, eventually,
    free_port, on_both_databases, suite_env,
};
use sea_orm::{ConnectionTrait, QueryResult, Statement};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tonic::{Code, Response, Status};
use uuid::Uuid;

const ATENCIONES: &str = env!("CARGO_BIN_EXE_atenciones");
/// The app secret `suite_env` gives the suite.
/// The demo's ventas number, and the agents of its campaign.
const VENTAS_NUMBER: &str = "1122334455667";
const AGENTS: [&str; 2] = ["ana", "luis"];
/// Every role, each in a process of its own.
const ROLES: [&str; 5] = ["queue", "messaging", "form", "history", "gateway"];
/// A call that needs a stopped service fails within this: the peer refuses
/// the connection, or the connect timeout (3 s) ends it.
const FAILS_WITHIN: Duration = Duration::from_secs(5);
/// No call may take longer, failed or not (the gateway's own limit is 30 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long everything may take to settle after the last fault.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

/// The suite split over one process per role (see the module).
struct Deployment {
    env: HashMap<String, String>,
    processes: HashMap<&'static str, SuiteProcess>,
    /// Killed processes: role, when, and their logs.
    killed: Vec<(&'static str, std::time::Instant, Vec<String>)>,
    /// How long a messaging process holds a send it is making.
    send_lease: Duration,
    gateway: String,
    webhook: String,
}

impl Deployment {
    /// Starts every role on `db`, sending to `cloud_api`, with `settings`
    /// (environment variables) over the defaults.
    async fn start(db: &TestDatabase, cloud_api: &CloudApi, settings: &[(&str, &str)]) -> Self {
        let mut env = suite_env(db, cloud_api);
        let address = || format!("127.0.0.1:{}", free_port());
        for role in ROLES {
            let role = role.to_uppercase();
            let listen = address();
            if role != "GATEWAY" {
                env.insert(
                    format!("ATENCIONES_{role}__URL"),
                    format!("http://{listen}"),
                );
            }
            env.insert(format!("ATENCIONES_{role}__LISTEN"), listen);
        }
        let webhook = address();
        env.insert(
            "ATENCIONES_MESSAGING__WEBHOOK_LISTEN".into(),
            webhook.clone(),
        );
        // A send held by a killed messaging process is taken over within
        // seconds (see crash_between_stored_and_sent.rs).
        env.insert(
            "ATENCIONES_WHATSAPP__REQUEST_TIMEOUT_MS".into(),
            "3000".into(),
        );
        env.insert("ATENCIONES_WHATSAPP__SEND_LEASE_MS".into(), "4000".into());
        env.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let lease_ms = env["ATENCIONES_WHATSAPP__SEND_LEASE_MS"]
            .parse()
            .expect("ms");
        let mut deployment = Self {
            send_lease: Duration::from_millis(lease_ms),
            gateway: format!("http://{}", env["ATENCIONES_GATEWAY__LISTEN"]),
            webhook: format!("http://{webhook}/webhooks/whatsapp"),
            env,
            processes: HashMap::new(),
            killed: Vec::new(),
        };
        for role in ROLES {
            deployment.start_role(role).await;
        }
        deployment
    }

    /// Starts `role` (again) on its address and data.
    async fn start_role(&mut self, role: &'static str) {
        let process = SuiteProcess::start_roles(ATENCIONES.as_ref(), &self.env, &[role]).await;
        self.processes.insert(role, process);
    }

    /// SIGKILL: `role`'s process dies mid-call, as in a crash.
    async fn kill(&mut self, role: &'static str) {
        let process = self
            .processes
            .remove(role)
            .unwrap_or_else(|| panic!("{role} is not running"));
        let logs = process.logs();
        process.kill().await;
        self.killed.push((role, std::time::Instant::now(), logs));
    }

    /// Every log line, of live and killed processes, that mentions `what`.
    fn grep(&self, what: &str) -> String {
        let live = self.processes.iter().map(|(role, p)| (*role, p.logs()));
        let dead = self
            .killed
            .iter()
            .map(|(role, _, logs)| (*role, logs.clone()));
        dead.chain(live)
            .flat_map(|(role, logs)| {
                logs.into_iter()
                    .filter(|line| line.contains(what))
                    .map(move |line| format!("{role}: {line}"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last log lines of every live process, for a failure to show.
    fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|(role, process)| {
                let logs = process.logs();
                let tail = &logs[logs.len().saturating_sub(30)..];
                format!("--- {role}\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn stop(self) {
        for process in self.processes.into_values() {
            process.kill().await;
        }
    }
}

/// `agent`'s screen. It connects on first use and again after the gateway
/// comes back, as a browser does.
fn desk(deployment: &Deployment, agent: &str) -> Desk {
    let channel = Endpoint::from_shared(deployment.gateway.clone())
        .expect("url")
        .connect_timeout(Duration::from_secs(3))
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    agent_desk(channel, agent)
}

/// What the customers and agents did and saw, for the checks at the end.
#[derive(Debug, Default)]
struct Ledger {
    /// Inbound wamids the webhook answered 200 to.
    delivered: BTreeSet<String>,
    /// Webhook posts answered otherwise or not at all (then posted again).
    webhooks_refused: usize,
    /// Reply keys a SendText returned a message for, with its id.
    replies: BTreeMap<String, String>,
    /// Attentions whose Finish returned OK.
    finished: BTreeSet<String>,
    /// Failed calls by RPC and status code (`OpenAttention Unavailable`).
    failures: BTreeMap<String, usize>,
    /// The longest a failed call took.
    slowest_failure: Duration,
    /// Replies WhatsApp took twice: their sender was killed before it
    /// recorded WhatsApp's answer.
    sent_twice: usize,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Ledger>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> Ledger {
        std::mem::take(&mut *self.lock())
    }
}

/// Whether a screen tries a failed call again: the gateway, a service or
/// the database is down or restarting, or the call was cut.
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// Calls until the answer is not a transient failure, as a screen does,
/// noting every failure. Gives up (the failure returned) after a minute.
async fn retried<T, F, Fut>(rpc: &'static str, ledger: &Shared, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = Instant::now();
        let status = match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) => status,
        };
        {
            let mut ledger = ledger.lock();
            let key = format!("{rpc} {:?}", status.code());
            *ledger.failures.entry(key).or_default() += 1;
            ledger.slowest_failure = ledger.slowest_failure.max(started.elapsed());
        }
        if !transient(status.code()) || Instant::now() > deadline {
            return Err(status);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A call that needs a stopped service: it fails at once, with UNAVAILABLE.
async fn fails_unavailable<T: std::fmt::Debug>(
    rpc: &str,
    call: impl Future<Output = Result<Response<T>, Status>>,
) {
    let started = Instant::now();
    let answer = call.await;
    let took = started.elapsed();
    let status = answer.expect_err(rpc);
    assert_eq!(status.code(), Code::Unavailable, "{rpc}: {status:?}");
    assert!(took < FAILS_WITHIN, "{rpc} took {took:?}");
}

/// Posts a webhook once; whether it was taken (200).
async fn post(url: &str, body: &[u8]) -> bool {
    let signature = signature(APP_SECRET, body);
    webhook::post(&http_client(), url, body.to_vec(), &signature)
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .is_ok_and(|answer| answer.status() == 200)
}

/// Customer `n`'s number.
fn wa_id(n: usize) -> String {
    format!("54911{n:08}")
}

/// Customer `n`'s `k`-th message.
fn message(n: usize, k: usize) -> (String, Vec<u8>) {
    let wamid = format!("wamid.faults.{n}.{k}");
    let body = text_webhook(
        VENTAS_NUMBER,
        &wa_id(n),
        &format!("Cliente {n}"),
        &wamid,
        &format!("Mensaje {k} del cliente {n}"),
    );
    (wamid, body)
}

/// Customer `n` writes its `k`-th message; WhatsApp posts it again after
/// anything but 200, until it is taken.
async fn write(webhook: &str, n: usize, k: usize, ledger: &Shared) {
    let (wamid, body) = message(n, k);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !post(webhook, &body).await {
        ledger.lock().webhooks_refused += 1;
        assert!(Instant::now() < deadline, "{wamid} never taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ledger.lock().delivered.insert(wamid);
}

/// The id of customer `n`'s queued attention, once it is listed.
async fn queued(desk: &Desk, n: usize) -> String {
    let customer = wa_id(n);
    eventually(&format!("customer {n}'s attention"), || {
        let (mut desk, customer) = (desk.clone(), customer.clone());
        async move {
            let list = desk
                .list_attentions(pb::ListAttentionsRequest::default())
                .await
                .ok()?
                .into_inner();
            list.attentions
                .into_iter()
                .find(|a| {
                    a.state() == AttentionState::Queued
                        && a.customer.as_ref().is_some_and(|c| c.wa_id == customer)
                })
                .map(|a| a.id)
        }
    })
    .await
}

/// What the agents answer in the form: motivo "compra".
fn compra() -> form_pb::FieldValue {
    form_pb::FieldValue {
        kind: Some(form_pb::field_value::Kind::Choice("compra".into())),
    }
}

/// The agent's steps on an attention, each retried as a screen does.
async fn open(desk: &Desk, id: &str, ledger: &Shared) -> Result<pb::OpenAttentionResponse, Status> {
    retried("OpenAttention", ledger, || {
        let mut desk = desk.clone();
        let attention_id = id.to_owned();
        async move {
            desk.open_attention(pb::OpenAttentionRequest {
                attention_id,
                message_page_size: 0,
            })
            .await
        }
    })
    .await
}

/// Replies with the attention's `n`-th key.
async fn reply(desk: &Desk, id: &str, n: usize, ledger: &Shared) {
    let key = format!("reply:{id}:{n}");
    let sent = retried("SendText", ledger, || {
        let mut desk = desk.clone();
        let request = pb::SendTextRequest {
            attention_id: id.to_owned(),
            text: "Gracias por escribirnos".into(),
            idempotency_key: key.clone(),
            ..Default::default()
        };
        async move { desk.send_text(request).await }
    })
    .await
    .unwrap_or_else(|status| panic!("SendText {key}: {status:?}"));
    let message = sent.message.expect("the message");
    ledger.lock().replies.insert(key, message.id);
}

async fn fill_form(desk: &Desk, id: &str, ledger: &Shared) {
    retried("SaveFormDraft", ledger, || {
        let mut desk = desk.clone();
        let request = pb::SaveFormDraftRequest {
            attention_id: id.to_owned(),
            values: HashMap::from([("motivo".to_owned(), compra())]),
        };
        async move { desk.save_form_draft(request).await }
    })
    .await
    .unwrap_or_else(|status| panic!("SaveFormDraft {id}: {status:?}"));
}

async fn finish(desk: &Desk, id: &str, ledger: &Shared) {
    retried("FinishAttention", ledger, || {
        let mut desk = desk.clone();
        let attention_id = id.to_owned();
        async move {
            desk.finish_attention(pb::FinishAttentionRequest { attention_id })
                .await
        }
    })
    .await
    .unwrap_or_else(|status| panic!("FinishAttention {id}: {status:?}"));
    ledger.lock().finished.insert(id.to_owned());
}

/// One agent's turn on an attention: open it, reply once, fill the form,
/// finish. Nothing when another agent opened it first.
async fn serve(desk: &Desk, id: &str, ledger: &Shared) {
    match open(desk, id, ledger).await {
        Ok(_) => {}
        Err(status) if status.code() == Code::FailedPrecondition => return,
        Err(status) => panic!("OpenAttention {id}: {status:?}"),
    }
    reply(desk, id, 1, ledger).await;
    fill_form(desk, id, ledger).await;
    finish(desk, id, ledger).await;
}

/// An agent working until `stop`: first an attention of theirs left open (a
/// turn cut by a fault), else one from the queue — from its back when
/// `from_back`, so that two agents rarely race for the same one.
async fn work(agent: &str, desk: Desk, from_back: bool, ledger: Shared, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let list = retried("ListAttentions", &ledger, || {
            let mut desk = desk.clone();
            async move {
                desk.list_attentions(pb::ListAttentionsRequest::default())
                    .await
            }
        })
        .await
        .unwrap_or_else(|status| panic!("ListAttentions: {status:?}"));
        let mine = list
            .attentions
            .iter()
            .find(|a| a.state() == AttentionState::Open && a.agent_id == agent);
        let mut queued = list
            .attentions
            .iter()
            .filter(|a| a.state() == AttentionState::Queued);
        let next = match (mine, from_back) {
            (Some(mine), _) => Some(mine),
            (None, false) => queued.next(),
            (None, true) => queued.next_back(),
        };
        match next {
            Some(attention) => serve(&desk, &attention.id, &ledger).await,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Customers writing and agents answering, in tasks of their own.
struct Load {
    ledger: Shared,
    customers: Vec<JoinHandle<()>>,
    agents: Vec<JoinHandle<()>>,
    stop: CancellationToken,
}

impl Load {
    /// `customers` customers, a new one every `every`, each writing three
    /// messages half a second apart; both agents of the campaign serving.
    fn start(deployment: &Deployment, customers: usize, every: Duration) -> Self {
        let ledger = Shared::default();
        let stop = CancellationToken::new();
        let customers = (0..customers)
            .map(|n| {
                let (webhook, ledger) = (deployment.webhook.clone(), ledger.clone());
                let starts_after = every * u32::try_from(n).expect("a few customers");
                tokio::spawn(async move {
                    tokio::time::sleep(starts_after).await;
                    for k in 1..=3 {
                        write(&webhook, n, k, &ledger).await;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                })
            })
            .collect();
        let agents = AGENTS
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                let desk = desk(deployment, agent);
                tokio::spawn(work(agent, desk, i == 1, ledger.clone(), stop.clone()))
            })
            .collect();
        Self {
            ledger,
            customers,
            agents,
            stop,
        }
    }

    /// Waits until every customer got through and all they started settled,
    /// stops the agents, and checks that nothing was lost or duplicated.
    /// Returns what the load saw.
    async fn finish(
        self,
        deployment: &Deployment,
        db: &TestDatabase,
        cloud_api: &CloudApi,
    ) -> Ledger {
        for customer in self.customers {
            customer.await.expect("a customer");
        }
        let stored = settled(db, deployment).await;
        self.stop.cancel();
        for agent in self.agents {
            agent.await.expect("an agent");
        }
        let mut ledger = self.ledger.take();
        ledger.sent_twice = check(&ledger, &stored, cloud_api, deployment).await;
        ledger
    }
}

/// What the services stored, read straight from their databases.
#[derive(Debug)]
struct Stored {
    /// Inbound messages: id, wamid and attention (none until routed).
    inbound: Vec<(Uuid, String, Option<Uuid>)>,
    /// Replies.
    outbound: Vec<Reply>,
    /// Attentions and their states.
    attentions: BTreeMap<Uuid, String>,
    /// Attentions history has a record of.
    records: Vec<String>,
}

/// A reply as messaging stored it.
#[derive(Debug)]
struct Reply {
    id: Uuid,
    /// The idempotency key.
    key: String,
    attention: Option<Uuid>,
    status: String,
    wamid: Option<String>,
}

async fn rows(db: &TestDatabase, service: &str, sql: &str) -> Vec<QueryResult> {
    let connection = db.connect(service).await;
    let backend = connection.get_database_backend();
    let rows = connection
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    connection.close().await.expect("close");
    rows
}

impl Stored {
    async fn read(db: &TestDatabase) -> Self {
        fn column<T: sea_orm::TryGetable>(row: &QueryResult, name: &str) -> T {
            row.try_get("", name)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        }
        let messages = rows(
            db,
            "messaging",
            "SELECT id, wamid, direction, attention_id, idempotency_key, status \
             FROM messaging_messages",
        )
        .await;
        let (mut inbound, mut outbound) = (Vec::new(), Vec::new());
        for row in &messages {
            if column::<String>(row, "direction") == "inbound" {
                inbound.push((
                    column(row, "id"),
                    column(row, "wamid"),
                    column(row, "attention_id"),
                ));
            } else {
                outbound.push(Reply {
                    id: column(row, "id"),
                    key: column(row, "idempotency_key"),
                    attention: column(row, "attention_id"),
                    status: column(row, "status"),
                    wamid: column(row, "wamid"),
                });
            }
        }
        let attentions = rows(db, "queue", "SELECT id, state FROM attentions")
            .await
            .iter()
            .map(|row| (column(row, "id"), column(row, "state")))
            .collect();
        let records = rows(db, "history", "SELECT attention_id FROM attention_records")
            .await
            .iter()
            .map(|row| column(row, "attention_id"))
            .collect();
        Self {
            inbound,
            outbound,
            attentions,
            records,
        }
    }

    /// Nothing left to do: every message routed, every reply through, every
    /// attention finished and recorded.
    fn settled(&self) -> bool {
        self.inbound
            .iter()
            .all(|(.., attention)| attention.is_some())
            && self.outbound.iter().all(|reply| reply.status != "pending")
            && self.attentions.values().all(|state| state == "finished")
            && self.records.len() == self.attentions.len()
    }
}

/// What the services stored once all work is done.
async fn settled(db: &TestDatabase, deployment: &Deployment) -> Stored {
    let deadline = Instant::now() + SETTLE_WITHIN;
    loop {
        let stored = Stored::read(db).await;
        if stored.settled() {
            return stored;
        }
        assert!(
            Instant::now() < deadline,
            "not settled in {SETTLE_WITHIN:?}: {stored:#?}\n{}",
            deployment.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Nothing lost, nothing duplicated (see the module). Returns how many
/// replies went twice because their sender died before recording WhatsApp's
/// answer.
async fn check(
    ledger: &Ledger,
    stored: &Stored,
    cloud_api: &CloudApi,
    deployment: &Deployment,
) -> usize {
    // Every message a webhook delivered is stored once, in an attention.
    let mut inbound: Vec<&str> = stored.inbound.iter().map(|(_, w, _)| w.as_str()).collect();
    inbound.sort_unstable();
    let delivered: Vec<&str> = ledger.delivered.iter().map(String::as_str).collect();
    assert_eq!(inbound, delivered, "inbound messages stored once each");

    // Every attention was finished, by the agent who got an OK for it.
    let finished: BTreeSet<String> = stored.attentions.keys().map(Uuid::to_string).collect();
    assert_eq!(finished, ledger.finished, "attentions finished");
    assert!(
        stored.attentions.values().all(|state| state == "finished"),
        "{:?}",
        stored.attentions
    );

    // Every reply is stored once under its key, in its attention, and
    // WhatsApp took it once: the try whose wamid was stored.
    let replies: BTreeMap<String, String> = stored
        .outbound
        .iter()
        .map(|reply| (reply.key.clone(), reply.id.to_string()))
        .collect();
    assert_eq!(replies.len(), stored.outbound.len(), "one message per key");
    assert_eq!(replies, ledger.replies, "replies stored");
    let sent = cloud_api.sent();
    let mut sent_twice = 0;
    for Reply {
        id,
        key,
        attention,
        status,
        wamid,
    } in &stored.outbound
    {
        let attention = attention.map(|a| a.to_string()).unwrap_or_default();
        assert!(
            key.starts_with(&format!("reply:{attention}:")),
            "{key} in its attention"
        );
        assert_eq!(status, "accepted", "{key}");
        let taken: Vec<(String, std::time::Instant)> = sent
            .iter()
            .enumerate()
            .filter(|(_, r)| r.accepted() && r.callback() == id.to_string())
            .map(|(i, r)| (format!("wamid.sent.{}", i + 1), r.received_at))
            .collect();
        let recorded: Vec<_> = taken
            .iter()
            .filter(|(w, _)| Some(w) == wamid.as_ref())
            .collect();
        assert_eq!(
            recorded.len(),
            1,
            "{key}: the stored wamid is a send WhatsApp took"
        );
        let unrecorded: Vec<_> = taken
            .iter()
            .filter(|(w, _)| Some(w) != wamid.as_ref())
            .collect();
        // The one known way to send twice: WhatsApp took it, and the
        // messaging process making the send died while it held it, before
        // recording so (WhatsApp has no idempotency key; see README, Sending).
        let forgiven = unrecorded.iter().all(|(_, received)| {
            deployment.killed.iter().any(|(role, killed, _)| {
                *role == "messaging"
                    && killed > received
                    && killed.duration_since(*received) < deployment.send_lease
            })
        });
        assert!(
            forgiven,
            "{key} sent to WhatsApp {} times: {taken:?}; kills {:?}; logs:\n{}",
            taken.len(),
            deployment
                .killed
                .iter()
                .map(|(role, at, _)| (role, at))
                .collect::<Vec<_>>(),
            deployment.grep(&id.to_string()),
        );
        if !unrecorded.is_empty() {
            sent_twice += 1;
        }
    }
    assert_eq!(
        cloud_api.accepted().len(),
        stored.outbound.len() + sent_twice,
        "nothing else sent"
    );

    // History has one record of each attention, with every message of it
    // (no other) once, and the form.
    let records: BTreeSet<String> = stored.records.iter().cloned().collect();
    assert_eq!(records.len(), stored.records.len());
    assert_eq!(records, finished, "one record per attention");
    // Messages by id, named by wamid (inbound) or key (replies).
    let mut messages_of: HashMap<String, Vec<String>> = HashMap::new();
    let mut name_of: HashMap<String, String> = HashMap::new();
    let inbound = stored.inbound.iter().map(|(id, w, a)| (id, w, a));
    let replies = stored
        .outbound
        .iter()
        .map(|r| (&r.id, &r.key, &r.attention));
    for (id, name, attention) in inbound.chain(replies) {
        let attention = attention.map(|a| a.to_string()).unwrap_or_default();
        messages_of.entry(attention).or_default().push(name.clone());
        name_of.insert(id.to_string(), name.clone());
    }
    let desk = desk(deployment, AGENTS[0]);
    for attention_id in &finished {
        let record = desk
            .clone()
            .get_attention_record(pb::GetAttentionRecordRequest {
                attention_id: attention_id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("record of {attention_id}: {status:?}"))
            .into_inner()
            .record
            .expect("record");
        let mut transcript: Vec<String> = record
            .transcript
            .into_iter()
            .map(|m| name_of.get(&m.id).cloned().unwrap_or(m.id))
            .collect();
        transcript.sort_unstable();
        let mut expected = messages_of.remove(attention_id).unwrap_or_default();
        expected.sort_unstable();
        assert_eq!(
            transcript,
            expected,
            "transcript of {attention_id}; logs:\n{}",
            deployment.grep(attention_id)
        );
        let form = record.form.expect("the form");
        let motivo = form.answers.iter().find(|a| a.key == "motivo");
        assert_eq!(
            motivo.and_then(|a| a.value.clone()),
            Some(compra()),
            "form of {attention_id}"
        );
    }
    sent_twice
}

/// Prints what a test saw, for whoever reads its output.
fn report(test: &str, ledger: &Ledger, started: Instant) {
    eprintln!(
        "{test}: {} messages in, {} replies, {} attentions finished in {:.1?}; \
         {} webhook posts refused; {} replies sent twice; failed calls {:?}, slowest {:?}",
        ledger.delivered.len(),
        ledger.replies.len(),
        ledger.finished.len(),
        started.elapsed(),
        ledger.webhooks_refused,
        ledger.sent_twice,
        ledger.failures,
        ledger.slowest_failure,
    );
}

async fn every_process_killed_and_restarted_in_turn(db: TestDatabase) {
    let started = Instant::now();
    let cloud_api = CloudApi::start().await;
    let mut deployment = Deployment::start(&db, &cloud_api, &[]).await;
    let load = Load::start(&deployment, 30, Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for role in ROLES {
        deployment.kill(role).await;
        // Calls and webhooks meet the dead process meanwhile.
        tokio::time::sleep(Duration::from_secs(1)).await;
        deployment.start_role(role).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let ledger = load.finish(&deployment, &db, &cloud_api).await;
    report("kill each process", &ledger, started);
    // A dead process shows as a call failing or cut, never as an error of
    // the service.
    let internal: Vec<_> = ledger
        .failures
        .keys()
        .filter(|failure| failure.ends_with("Internal"))
        .collect();
    assert!(internal.is_empty(), "{internal:?}");
    deployment.stop().await;
}

on_both_databases!(every_process_killed_and_restarted_in_turn);

/// The database stops (as in a crash: connections cut, no checkpoint) for
/// five seconds under load and starts again. Meanwhile webhooks are refused
/// (Meta posts them again) and calls fail without hanging; once it is back
/// the retries go through and the suite carries on by itself, no process
/// restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_load_loses_and_repeats_nothing() {
    let Some(postgres) = PrivatePostgres::start().await else {
        return;
    };
    let started = Instant::now();
    let db = TestDatabase::create_postgres(postgres.admin_url()).await;
    let cloud_api = CloudApi::start().await;
    let settings = [
        // No other try of a send while its sender waits for the database.
        ("ATENCIONES_WHATSAPP__SEND_LEASE_MS", "30000"),
        // What a call waits for a connection before it fails.
        ("ATENCIONES_DATABASE__ACQUIRE_TIMEOUT_SECS", "2"),
    ];
    let waits_for_database = Duration::from_secs(2);
    let deployment = Deployment::start(&db, &cloud_api, &settings).await;
    let load = Load::start(&deployment, 24, Duration::from_millis(300));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // WhatsApp answers slowly, so a reply is on its way when the database
    // stops, and WhatsApp takes it while the database is down.
    cloud_api.answer(Answer::Slow(Duration::from_secs(2)));
    eventually("a reply on its way to WhatsApp", || {
        let in_flight = cloud_api.sent().iter().any(|r| r.status.is_none());
        async move { in_flight.then_some(()) }
    })
    .await;
    postgres.stop().await;
    let stopped = Instant::now();
    // Meanwhile a webhook is refused and a call fails, each once it has
    // waited for a connection, not longer.
    let mut ana = desk(&deployment, "ana");
    let (_, body) = message(1000, 1);
    let (list, taken) = tokio::join!(
        ana.list_attentions(pb::ListAttentionsRequest::default()),
        post(&deployment.webhook, &body),
    );
    let failed_after = stopped.elapsed();
    assert!(!taken, "a webhook taken without a database");
    // A database that cannot be reached is UNAVAILABLE: screens retry it.
    let status = list.expect_err("a list without a database");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    eprintln!(
        "database down: a webhook refused and ListAttentions failed ({:?}, {:?}) in {failed_after:?}",
        status.code(),
        status.message()
    );
    assert!(
        failed_after < waits_for_database + Duration::from_secs(2),
        "{failed_after:?}"
    );
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(stopped.elapsed())).await;
    postgres.start_again().await;
    cloud_api.answer(Answer::Accept);
    // WhatsApp posts the refused webhook again.
    write(&deployment.webhook, 1000, 1, &load.ledger).await;

    let ledger = load.finish(&deployment, &db, &cloud_api).await;
    report("database restarted", &ledger, started);
    assert!(
        ledger.webhooks_refused > 0,
        "customers wrote while it was down"
    );
    // Each failed call ended once it had waited for a connection.
    let slowest = ledger.slowest_failure;
    assert!(
        slowest < waits_for_database + Duration::from_secs(3),
        "{slowest:?}"
    );
    assert!(
        !deployment.grep("accepted send not stored yet").is_empty(),
        "WhatsApp took a reply while the database was down"
    );
    deployment.stop().await;
}

/// One finished attention of customer `n` (a message, a reply, the form).
async fn served(deployment: &Deployment, desk: &Desk, n: usize, ledger: &Shared) -> String {
    write(&deployment.webhook, n, 1, ledger).await;
    let id = queued(desk, n).await;
    serve(desk, &id, ledger).await;
    id
}

/// What the service tests share at the end: all settles, nothing is lost.
async fn caught_up(
    deployment: Deployment,
    db: &TestDatabase,
    cloud_api: &CloudApi,
    ledger: Shared,
) {
    let stored = settled(db, &deployment).await;
    let sent_twice = check(&ledger.take(), &stored, cloud_api, &deployment).await;
    assert_eq!(sent_twice, 0, "no process was killed mid-send");
    deployment.stop().await;
}

/// History down: reading history fails at once with UNAVAILABLE; opening,
/// replying and finishing go on (earlier attentions shown as unavailable);
/// once history is back the records of what finished meanwhile appear.
async fn history_down_for_a_while(db: TestDatabase) {
    let cloud_api = CloudApi::start().await;
    let mut deployment = Deployment::start(&db, &cloud_api, &[]).await;
    let ledger = Shared::default();
    let ana = desk(&deployment, "ana");
    let before = served(&deployment, &ana, 0, &ledger).await;
    eventually("the record while history is up", || {
        let mut ana = ana.clone();
        let attention_id = before.clone();
        async move {
            ana.get_attention_record(pb::GetAttentionRecordRequest { attention_id })
                .await
                .ok()
        }
    })
    .await;

    deployment.kill("history").await;
    let record = pb::GetAttentionRecordRequest {
        attention_id: before.clone(),
    };
    fails_unavailable(
        "GetAttentionRecord",
        ana.clone().get_attention_record(record),
    )
    .await;
    let customer = pb::ListCustomerHistoryRequest {
        customer_id: wa_id(0),
        ..Default::default()
    };
    fails_unavailable(
        "ListCustomerHistory",
        ana.clone().list_customer_history(customer),
    )
    .await;
    let search = pb::SearchHistoryRequest {
        filter: Some(HistoryFilter {
            query: "mensaje".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    fails_unavailable("SearchHistory", ana.clone().search_history(search)).await;

    write(&deployment.webhook, 1, 1, &ledger).await;
    let during = queued(&ana, 1).await;
    let opened = open(&ana, &during, &ledger)
        .await
        .expect("opened without history");
    assert_eq!(opened.unavailable, ["earlier_attentions"]);
    reply(&ana, &during, 1, &ledger).await;
    fill_form(&ana, &during, &ledger).await;
    finish(&ana, &during, &ledger).await;
    // The hand-off meets history down for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;

    deployment.start_role("history").await;
    caught_up(deployment, &db, &cloud_api, ledger).await;
}

on_both_databases!(history_down_for_a_while);

/// The form service down: saving the form and finishing fail at once with
/// UNAVAILABLE, and the attention stays open; replies and customers'
/// messages go on; once it is back the finish goes through and a customer
/// who wrote meanwhile gets an attention (it pins the form's version).
async fn form_service_down_for_a_while(db: TestDatabase) {
    let cloud_api = CloudApi::start().await;
    let mut deployment = Deployment::start(&db, &cloud_api, &[]).await;
    let ledger = Shared::default();
    let ana = desk(&deployment, "ana");
    write(&deployment.webhook, 0, 1, &ledger).await;
    let held = queued(&ana, 0).await;
    open(&ana, &held, &ledger).await.expect("opened");
    reply(&ana, &held, 1, &ledger).await;

    deployment.kill("form").await;
    let draft = pb::SaveFormDraftRequest {
        attention_id: held.clone(),
        values: HashMap::from([("motivo".to_owned(), compra())]),
    };
    fails_unavailable("SaveFormDraft", ana.clone().save_form_draft(draft)).await;
    let finish_request = pb::FinishAttentionRequest {
        attention_id: held.clone(),
    };
    fails_unavailable(
        "FinishAttention",
        ana.clone().finish_attention(finish_request),
    )
    .await;
    let list = ana
        .clone()
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("the list needs no form")
        .into_inner();
    let still = list
        .attentions
        .iter()
        .find(|a| a.id == held)
        .expect("listed");
    assert_eq!(still.state(), AttentionState::Open, "not finished halfway");
    write(&deployment.webhook, 0, 2, &ledger).await;
    reply(&ana, &held, 2, &ledger).await;
    write(&deployment.webhook, 1, 1, &ledger).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    deployment.start_role("form").await;
    fill_form(&ana, &held, &ledger).await;
    finish(&ana, &held, &ledger).await;
    let later = queued(&ana, 1).await;
    serve(&ana, &later, &ledger).await;
    caught_up(deployment, &db, &cloud_api, ledger).await;
}

on_both_databases!(form_service_down_for_a_while);

/// Messaging down: webhooks are not taken (Meta posts them again), and
/// opening and replying fail at once with UNAVAILABLE; filling the form and
/// finishing go on; once it is back the customer's message gets through and
/// the record of the attention finished meanwhile appears with its messages.
async fn messaging_down_for_a_while(db: TestDatabase) {
    let cloud_api = CloudApi::start().await;
    let mut deployment = Deployment::start(&db, &cloud_api, &[]).await;
    let ledger = Shared::default();
    let ana = desk(&deployment, "ana");
    write(&deployment.webhook, 0, 1, &ledger).await;
    let held = queued(&ana, 0).await;
    open(&ana, &held, &ledger).await.expect("opened");
    reply(&ana, &held, 1, &ledger).await;

    deployment.kill("messaging").await;
    let open_request = pb::OpenAttentionRequest {
        attention_id: held.clone(),
        message_page_size: 0,
    };
    fails_unavailable("OpenAttention", ana.clone().open_attention(open_request)).await;
    let send = pb::SendTextRequest {
        attention_id: held.clone(),
        text: "¿Sigue ahí?".into(),
        idempotency_key: format!("reply:{held}:2"),
        ..Default::default()
    };
    fails_unavailable("SendText", ana.clone().send_text(send)).await;
    let writing = {
        let (webhook, ledger) = (deployment.webhook.clone(), ledger.clone());
        tokio::spawn(async move { write(&webhook, 1, 1, &ledger).await })
    };
    fill_form(&ana, &held, &ledger).await;
    finish(&ana, &held, &ledger).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        ledger.lock().webhooks_refused > 0,
        "webhooks not taken meanwhile"
    );

    deployment.start_role("messaging").await;
    writing.await.expect("the customer got through");
    let later = queued(&ana, 1).await;
    serve(&ana, &later, &ledger).await;
    caught_up(deployment, &db, &cloud_api, ledger).await;
}

on_both_databases!(messaging_down_for_a_while);
