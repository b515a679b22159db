//! The inbox processor: turns stored webhook bodies into messages and
//! statuses, and routes new customer messages to the queue service.
//!
//! Rows are taken in id order. A row's items are stored together, in order,
//! in one transaction, then routed; the row is marked processed only when
//! every item is done, and any failure leaves it for a later attempt with
//! backoff. Every step is idempotent (unique wamid, unique (wamid, status),
//! unique reaction message, guarded updates, the queue's idempotency on
//! message id), so reprocessing a row after a crash or a failure stores
//! nothing twice.

use std::sync::Arc;
use std::time::Duration;

use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_proto::queue::v1::{RecordInboundMessageRequest, RecordMessageStatusRequest};
use atenciones_runtime::grpc::Channel;
use chrono::TimeDelta;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use uuid::Uuid;

use crate::consent;
use crate::content::Content;
use crate::domain::{self, Direction, MessageStatus};
use crate::entity::{inbox, message};
use crate::error::Error;
use crate::media;
use crate::messaging::{Messaging, PREVIEW_CHARS};
use crate::notification::{self, InboundMessage, Item, StatusUpdate};
use crate::outbound::{Outbound, OutboundBody, Recipient, Template};
use crate::store;
use crate::window;

/// Rows read per query.
const BATCH: u64 = 50;
/// How often the inbox is polled without a wake-up: picks up rows whose
/// backoff ended and rows another replica (or a crash) left behind.
pub const POLL_INTERVAL: Duration = Duration::from_secs(3);
/// Longest wait between two attempts of a failing row.
const MAX_BACKOFF_SECS: i64 = 300;

#[derive(Clone)]
pub struct Processor {
    db: DatabaseConnection,
    queue: QueueServiceClient<Channel>,
    /// Sends the campaign's answer to customers who write out of hours.
    messaging: Arc<Messaging>,
    wake: Arc<Notify>,
    poll_interval: Duration,
}

impl Processor {
    pub fn new(
        db: DatabaseConnection,
        queue: QueueServiceClient<Channel>,
        messaging: Arc<Messaging>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            queue,
            messaging,
            wake,
            poll_interval: POLL_INTERVAL,
        }
    }

    /// Processes the inbox until `shutdown`; woken by the webhook after each
    /// stored body, and by a timer.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            // Shutdown need not wait for a slow queue call: abandoning a row
            // half-way is safe, its next run redoes it idempotently.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.drain(&shutdown) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Processes due rows until none is left or one fails (the next run starts
    /// over, past the failed row's backoff, so its successors are not stuck).
    /// Returns how many rows were processed.
    pub async fn drain(&self, shutdown: &CancellationToken) -> usize {
        let mut done = 0;
        loop {
            let rows = match store::due_inbox(&self.db, domain::now(), BATCH).await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the webhook inbox");
                    return done;
                }
            };
            if rows.is_empty() {
                return done;
            }
            for row in rows {
                if shutdown.is_cancelled() {
                    return done;
                }
                match self.process(&row).await {
                    Ok(note) => {
                        if let Err(error) = store::mark_processed(&self.db, row.id, note).await {
                            tracing::warn!(inbox_id = row.id, %error, "cannot mark an inbox row processed");
                            return done;
                        }
                        done += 1;
                    }
                    Err(error) => {
                        let retry_in = backoff(row.attempts);
                        tracing::warn!(inbox_id = row.id, attempts = row.attempts + 1, %error, ?retry_in, "webhook processing failed; will retry");
                        if let Err(error) =
                            store::mark_failed(&self.db, &row, &error.to_string(), retry_in).await
                        {
                            tracing::warn!(inbox_id = row.id, %error, "cannot record a failed attempt");
                        }
                        return done;
                    }
                }
            }
        }
    }

    /// Handles every item of one row. `Ok(Some(note))` marks the row processed
    /// with a note (a body with nothing we can read is kept, not retried).
    ///
    /// Two steps. First every message, reaction and status of the body is
    /// stored, in body order, in one transaction: a crash or an error half-way
    /// stores none of it, and the retry stores all of it. Then the messages are
    /// routed to the queue one by one, which may be slow or fail; a retry
    /// repeats the first step as a no-op (every write is keyed) and routes only
    /// the messages that have no attention yet.
    async fn process(&self, row: &inbox::Model) -> Result<Option<String>, Error> {
        let items = match notification::parse(&row.body, row.received_at) {
            Ok(items) => items,
            Err(error) => return Ok(Some(format!("not a notification: {error}"))),
        };
        let stored = self.store(&items).await?;
        for message in &stored {
            self.route(message).await?;
        }
        for item in &items {
            if let Item::Status(status) = item {
                self.announce(status).await?;
            }
        }
        Ok(None)
    }

    /// Tells the queue a message of an attention reached a new delivery
    /// status, for the screens' live streams (the queue announces each
    /// status of a message once, so a retried row repeats nothing). A status
    /// of a message not known yet, in no attention, or overtaken, is not
    /// announced.
    async fn announce(&self, update: &StatusUpdate) -> Result<(), Error> {
        if MessageStatus::from_webhook(&update.status).is_none() {
            return Ok(());
        }
        let Some(message) = store::find_by_wamid(&self.db, &update.wamid).await? else {
            return Ok(());
        };
        let Some(attention_id) = message.attention_id else {
            return Ok(());
        };
        // Statuses arrive out of order: one the message has already moved
        // past (delivered after read, anything after failed) would move the
        // screens back.
        if message.status != update.status {
            return Ok(());
        }
        let request = RecordMessageStatusRequest {
            attention_id: attention_id.to_string(),
            message_id: message.id.to_string(),
            status: update.status.clone(),
            time: Some(atenciones_proto::time::timestamp(update.time)),
            error_code: update.error.as_ref().map(|e| e.code).unwrap_or_default(),
            error_title: update
                .error
                .as_ref()
                .map(|e| e.title.clone())
                .unwrap_or_default(),
        };
        match self.queue.clone().record_message_status(request).await {
            // The attention is gone from the queue: nothing to tell.
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(Error::Queue(Box::new(status))),
        }
    }

    /// Stores every item in one transaction; returns the stored messages (as
    /// first stored, when a message was seen before) in body order.
    async fn store(&self, items: &[Item]) -> Result<Vec<message::Model>, Error> {
        let txn = self.db.begin().await?;
        let mut messages = Vec::new();
        for item in items {
            match item {
                Item::Message(message) => messages.push(store_message(&txn, message).await?),
                Item::Status(status) => store_status(&txn, status).await?,
            }
        }
        txn.commit().await?;
        Ok(messages)
    }

    async fn route(&self, stored: &message::Model) -> Result<(), Error> {
        if stored.attention_id.is_some() {
            return Ok(());
        }
        let wamid = stored.wamid.as_deref().unwrap_or_default();
        if stored.customer_id.is_empty() {
            // Nobody to attend: keep it, out of the queue.
            tracing::warn!(%wamid, "message without a customer id left unrouted");
            return store::set_unrouted(&self.db, stored.id).await;
        }
        let request = RecordInboundMessageRequest {
            business_phone_number_id: stored.business_phone_number_id.clone(),
            customer: Some(atenciones_proto::common::v1::Customer {
                id: stored.customer_id.clone(),
                wa_id: stored.customer_wa_id.clone(),
                user_id: stored.customer_user_id.clone(),
                name: stored.customer_name.clone(),
            }),
            message_id: stored.id.to_string(),
            preview: domain::preview(&stored.text, PREVIEW_CHARS),
            time: Some(atenciones_proto::time::timestamp(stored.sent_at)),
        };
        match self.queue.clone().record_inbound_message(request).await {
            Ok(response) => {
                let response = response.into_inner();
                let attention = response.attention.unwrap_or_default();
                let attention_id = Uuid::parse_str(&attention.id).map_err(|_| {
                    Error::Internal(format!("queue returned attention id {:?}", attention.id))
                })?;
                // Before the message is marked routed, so a retry after a
                // crash sends it; its key makes it once per attention.
                if let Some(template) = response.out_of_hours_template {
                    self.answer_out_of_hours(stored, attention_id, template)
                        .await?;
                }
                store::set_attention(&self.db, stored.id, attention_id).await?;
                metrics::counter!(
                    "atenciones_messages_total",
                    "direction" => "inbound",
                    "type" => stored.message_type.clone(),
                    "outcome" => "received",
                )
                .increment(1);
                Ok(())
            }
            Err(status) if status.code() == Code::NotFound => {
                tracing::info!(
                    %wamid,
                    business_phone_number_id = %stored.business_phone_number_id,
                    "business number bound to no campaign; message kept unrouted"
                );
                store::set_unrouted(&self.db, stored.id).await
            }
            Err(status) => Err(Error::Queue(Box::new(status))),
        }
    }
}

/// Stores a message once per wamid; a reaction is also kept for the message
/// it reacts to (known or not), so that message shows it.
impl Processor {
    /// Sends the campaign's out-of-hours template to the customer, once per
    /// attention. A template the campaign names wrongly (not registered,
    /// not approved, taking parameters) or a customer who opted out is
    /// logged, not retried: the message is routed all the same.
    async fn answer_out_of_hours(
        &self,
        stored: &message::Model,
        attention_id: Uuid,
        template: atenciones_proto::queue::v1::TemplateRef,
    ) -> Result<(), Error> {
        let outbound = Outbound {
            recipient: Recipient {
                attention_id,
                business_phone_number_id: stored.business_phone_number_id.clone(),
                customer: domain::Customer::new(
                    stored.customer_wa_id.clone(),
                    stored.customer_user_id.clone(),
                    stored.customer_name.clone(),
                ),
                agent_id: None,
            },
            body: OutboundBody::Template(Template {
                name: template.name,
                language: template.language,
                body_parameters: Vec::new(),
            }),
            reply_to: None,
            idempotency_key: format!("out-of-hours:{attention_id}"),
        };
        match self.messaging.send(outbound).await {
            // The attentions list shows the answer as the latest message;
            // idempotent on the message id, like the send on its key.
            Ok(sent) => {
                let request = atenciones_proto::queue::v1::RecordOutboundMessageRequest {
                    attention_id: attention_id.to_string(),
                    message_id: sent.id.to_string(),
                    preview: domain::preview(&sent.text, PREVIEW_CHARS),
                    time: Some(atenciones_proto::time::timestamp(sent.created_at)),
                };
                match self.queue.clone().record_outbound_message(request).await {
                    Ok(_) => Ok(()),
                    Err(status) => Err(Error::Queue(Box::new(status))),
                }
            }
            Err(error @ (Error::Database(_) | Error::Internal(_))) => Err(error),
            Err(error) => {
                tracing::warn!(%attention_id, %error, "the out-of-hours answer was not sent");
                Ok(())
            }
        }
    }
}

async fn store_message<C: ConnectionTrait>(
    db: &C,
    inbound: &InboundMessage,
) -> Result<message::Model, Error> {
    let stored = store::store_inbound(db, inbound).await?;
    window::record_inbound(db, &stored).await?;
    consent::record_inbound(db, &stored).await?;
    // In the same transaction: a stored media message always has its file
    // record, so the downloader fetches it without waiting for routing.
    media::track_inbound(db, &stored).await?;
    if let Content::Reaction(reaction) = &inbound.details.content
        && !reaction.target_wamid.is_empty()
    {
        // The stored row's id and time, so a redelivery adds nothing.
        store::keep_reaction(
            db,
            stored.id,
            &reaction.target_wamid,
            Direction::Inbound,
            &reaction.emoji,
            stored.sent_at,
        )
        .await?;
    }
    Ok(stored)
}

async fn store_status<C: ConnectionTrait>(db: &C, update: &StatusUpdate) -> Result<(), Error> {
    // Kept first: if the message is not known yet under this wamid (its send
    // has not stored the id), the send applies it later.
    store::keep_status(db, update).await?;
    window::record_status(db, update).await?;
    if let Some(next) = MessageStatus::from_webhook(&update.status) {
        store::apply_status(db, &update.wamid, next, update.error.as_ref()).await?;
    }
    Ok(())
}

/// 1 s, 2 s, 4 s, … up to five minutes.
pub(crate) fn backoff(attempts: i32) -> TimeDelta {
    let exponent = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    TimeDelta::seconds(2_i64.saturating_pow(exponent).min(MAX_BACKOFF_SECS))
}

#[cfg(test)]
mod tests {
    use atenciones_test_support::{CloudApi, TestDatabase, on_both_databases};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Statement};
    use serde_json::json;

    use super::*;
    use crate::domain::Routing;
    use crate::entity::{message, reaction, status};
    use crate::testkit::{self, FakeQueue};

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), TimeDelta::seconds(1));
        assert_eq!(backoff(3), TimeDelta::seconds(8));
        assert_eq!(backoff(40), TimeDelta::seconds(MAX_BACKOFF_SECS));
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/whatsapp");
    const PYWA_NUMBER: &str = "277321005464405";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
    }

    struct Harness {
        _shutdown: tokio_util::sync::DropGuard,
        db: DatabaseConnection,
        queue: FakeQueue,
        graph: CloudApi,
        messaging: Arc<Messaging>,
        processor: Processor,
        token: CancellationToken,
        _test_db: TestDatabase,
    }

    async fn harness(test_db: TestDatabase, bound: &[&str]) -> Harness {
        let db = testkit::migrated(&test_db).await;
        let queue = FakeQueue::default();
        queue.state().bound = bound.iter().map(|n| (*n).to_owned()).collect();
        let token = CancellationToken::new();
        let client = queue.client(token.clone()).await;
        let graph = CloudApi::start().await;
        let messaging = testkit::messaging(&db, &graph);
        let processor = Processor::new(
            db.clone(),
            client,
            messaging.clone(),
            Arc::new(Notify::new()),
        );
        Harness {
            _shutdown: token.clone().drop_guard(),
            db,
            queue,
            graph,
            messaging,
            processor,
            token: CancellationToken::new(),
            _test_db: test_db,
        }
    }

    impl Harness {
        async fn receive(&self, body: Vec<u8>) -> i64 {
            store::insert_inbox(&self.db, body).await.expect("inbox")
        }

        async fn drain(&self) -> usize {
            self.processor.drain(&self.token).await
        }

        async fn messages(&self) -> Vec<message::Model> {
            message::Entity::find()
                .all(&self.db)
                .await
                .expect("messages")
        }

        async fn row(&self, id: i64) -> inbox::Model {
            inbox::Entity::find_by_id(id)
                .one(&self.db)
                .await
                .expect("row")
                .expect("exists")
        }

        /// Ends a row's backoff, as time would.
        async fn make_due(&self, id: i64) {
            inbox::Entity::update_many()
                .col_expr(inbox::Column::NextAttemptAt, Expr::value(domain::now()))
                .filter(inbox::Column::Id.eq(id))
                .exec(&self.db)
                .await
                .expect("update");
        }
    }

    async fn a_customer_message_is_stored_and_joins_its_attention(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        let row = h.receive(fixture("signed_inbound_text_pywa.json")).await;
        assert_eq!(h.drain().await, 1);

        let messages = h.messages().await;
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        let attention =
            h.queue.state().attentions[&(PYWA_NUMBER.to_owned(), "972544401243".to_owned())];
        assert_eq!(message.attention_id, Some(attention));
        assert_eq!(message.routing, Routing::Routed.as_str());
        assert_eq!(message.text, "Hey there! I am using PyWa.");
        assert_eq!(message.status, "received");
        assert_eq!(
            message.raw.as_ref().map(|r| r["type"].clone()),
            Some(json!("text"))
        );

        let recorded = h.queue.state().inbound.clone();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].message_id, message.id.to_string());
        assert_eq!(recorded[0].preview, "Hey there! I am using PyWa.");
        assert_eq!(
            recorded[0].time.as_ref().map(|t| t.seconds),
            Some(1_730_231_903)
        );
        assert_eq!(
            recorded[0].customer.as_ref().map(|c| c.name.as_str()),
            Some("PyWa Tests")
        );
        assert!(h.row(row).await.processed_at.is_some());
    }
    on_both_databases!(a_customer_message_is_stored_and_joins_its_attention);

    /// A customer who writes out of hours gets the campaign's template once
    /// per attention, however many messages they send.
    async fn out_of_hours_customers_get_the_campaigns_answer_once(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        h.messaging
            .templates()
            .save(atenciones_proto::messaging::v1::Template {
                business_phone_number_id: PYWA_NUMBER.into(),
                name: "fuera_de_horario".into(),
                language: "es".into(),
                category: atenciones_proto::messaging::v1::TemplateCategory::Utility.into(),
                status: atenciones_proto::messaging::v1::TemplateStatus::Approved.into(),
                body: "Gracias por escribir: le respondemos de 9 a 18.".into(),
                ..Default::default()
            })
            .await
            .expect("template");
        h.queue.state().out_of_hours_template = Some(atenciones_proto::queue::v1::TemplateRef {
            name: "fuera_de_horario".into(),
            language: "es".into(),
        });
        for wamid in ["wamid.n1", "wamid.n2"] {
            let body = atenciones_test_support::webhook::text_webhook(
                PYWA_NUMBER,
                "5491100000001",
                "Nina",
                wamid,
                "Hola",
            );
            h.receive(body).await;
            h.drain().await;
        }
        let answers = atenciones_test_support::eventually("the answer sent", || async {
            let sent = h.graph.sent();
            (!sent.is_empty()).then_some(sent)
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let templates: Vec<_> = h
            .graph
            .sent()
            .into_iter()
            .filter(|r| r.body["type"] == "template")
            .collect();
        assert_eq!(templates.len(), 1, "{answers:?}");
        assert_eq!(templates[0].body["template"]["name"], "fuera_de_horario");
        assert_eq!(templates[0].body["to"], "5491100000001");
        // The list's preview shows the answer (recorded again on a retry: the
        // queue keeps it once by message id).
        let previews: Vec<String> = h
            .queue
            .state()
            .outbound
            .iter()
            .map(|o| o.preview.clone())
            .collect();
        assert!(!previews.is_empty(), "the answer was recorded for the list");
        assert!(previews.iter().all(|p| !p.is_empty()), "{previews:?}");
    }

    on_both_databases!(out_of_hours_customers_get_the_campaigns_answer_once);

    async fn a_redelivered_notification_stores_its_message_once(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        h.receive(fixture("signed_inbound_text_pywa.json")).await;
        h.receive(fixture("signed_inbound_text_pywa.json")).await;
        assert_eq!(h.drain().await, 2);
        assert_eq!(h.messages().await.len(), 1);
        assert_eq!(
            h.queue.state().inbound.len(),
            1,
            "the second copy finds the message routed"
        );
    }
    on_both_databases!(a_redelivered_notification_stores_its_message_once);

    async fn concurrent_processing_of_duplicates_stores_once(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        for _ in 0..4 {
            h.receive(fixture("signed_inbound_text_pywa.json")).await;
        }
        let other = h.processor.clone();
        let token = h.token.clone();
        let (a, b) = tokio::join!(h.drain(), other.drain(&token));
        assert!(a + b >= 4, "every row is processed ({a} + {b})");
        let messages = h.messages().await;
        assert_eq!(messages.len(), 1);
        assert!(messages[0].attention_id.is_some());
    }
    on_both_databases!(concurrent_processing_of_duplicates_stores_once);

    async fn a_number_bound_to_no_campaign_keeps_its_messages_unrouted(db: TestDatabase) {
        let h = harness(db, &[]).await;
        let row = h.receive(fixture("multi_change_batch_netflie.json")).await;
        assert_eq!(h.drain().await, 1);
        let messages = h.messages().await;
        // Both changes carry the same wamid: one message.
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].attention_id, None);
        assert_eq!(messages[0].routing, Routing::Unrouted.as_str());
        assert_eq!(messages[0].text, "MESSAGE_BODY");
        assert!(h.row(row).await.processed_at.is_some());
    }
    on_both_databases!(a_number_bound_to_no_campaign_keeps_its_messages_unrouted);

    async fn a_customer_known_only_by_user_id_is_routed_by_it(db: TestDatabase) {
        let h = harness(db, &["PHONE_NUMBER_ID"]).await;
        h.receive(fixture("inbound_text_bsuid_only_netflie.json"))
            .await;
        h.drain().await;
        let messages = h.messages().await;
        assert!(messages[0].attention_id.is_some());
        assert_eq!(messages[0].customer_id, "BSUID_123");
        let recorded = h.queue.state().inbound.clone();
        let customer = recorded[0].customer.clone().expect("customer");
        assert_eq!(
            (
                customer.id.as_str(),
                customer.wa_id.as_str(),
                customer.user_id.as_str()
            ),
            ("BSUID_123", "", "BSUID_123")
        );
    }
    on_both_databases!(a_customer_known_only_by_user_id_is_routed_by_it);

    async fn every_message_type_is_stored_with_its_type_and_summary(db: TestDatabase) {
        let h = harness(db, &["1122334455667"]).await;
        let files = [
            ("inbound_audio_voice.json", "audio"),
            ("inbound_contacts.json", "contacts"),
            ("inbound_location_named.json", "location"),
            ("inbound_order.json", "order"),
            ("inbound_reaction.json", "reaction"),
            ("inbound_unsupported.json", "unsupported"),
            ("inbound_system_identity_change.json", "system"),
        ];
        for (file, _) in files {
            // The fixtures share one wamid; give each its own.
            let text = String::from_utf8(fixture(file)).expect("utf-8");
            h.receive(
                text.replace("\"wamid.xyzxyz\"", &format!("\"wamid.{file}\""))
                    .into_bytes(),
            )
            .await;
        }
        assert_eq!(h.drain().await, files.len());
        for (file, kind) in files {
            let stored = store::find_by_wamid(&h.db, &format!("wamid.{file}"))
                .await
                .expect("find")
                .expect(file);
            assert_eq!(stored.message_type, kind, "{file}");
            assert!(!stored.text.is_empty(), "{file}");
            assert!(stored.attention_id.is_some(), "{file}");
        }
    }
    on_both_databases!(every_message_type_is_stored_with_its_type_and_summary);

    async fn a_queue_outage_leaves_the_row_for_a_retry_that_duplicates_nothing(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        h.queue.state().down = true;
        let row = h.receive(fixture("signed_inbound_text_pywa.json")).await;
        assert_eq!(h.drain().await, 0);
        let failed = h.row(row).await;
        assert!(failed.processed_at.is_none());
        assert_eq!(failed.attempts, 1);
        assert!(
            failed
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("queue")),
            "{:?}",
            failed.last_error
        );
        assert!(failed.next_attempt_at > domain::now(), "backoff recorded");
        assert_eq!(h.drain().await, 0, "not retried before its backoff");
        let stored = h.messages().await;
        assert_eq!(stored.len(), 1, "the message is kept");
        assert_eq!(stored[0].attention_id, None);

        h.queue.state().down = false;
        h.make_due(row).await;
        assert_eq!(h.drain().await, 1);
        let messages = h.messages().await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].id, stored[0].id, "same message, now routed");
        assert!(messages[0].attention_id.is_some());
        assert!(h.row(row).await.processed_at.is_some());
    }
    on_both_databases!(a_queue_outage_leaves_the_row_for_a_retry_that_duplicates_nothing);

    async fn reprocessing_a_processed_row_changes_nothing(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        let row = h.receive(fixture("signed_inbound_text_pywa.json")).await;
        h.receive(fixture("status_read.json")).await;
        h.drain().await;
        let before = h.messages().await;
        inbox::Entity::update_many()
            .col_expr(
                inbox::Column::ProcessedAt,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .exec(&h.db)
            .await
            .expect("reset");
        h.make_due(row).await;
        assert_eq!(h.drain().await, 2);
        assert_eq!(h.messages().await, before);
        assert_eq!(
            status::Entity::find()
                .all(&h.db)
                .await
                .expect("statuses")
                .len(),
            1
        );
    }
    on_both_databases!(reprocessing_a_processed_row_changes_nothing);

    /// One POST carrying `entries` × `changes` × `messages` texts from
    /// customers c0, c1… of PYWA_NUMBER, numbered in body order, and a status
    /// after each change's messages.
    fn batch(entries: usize, changes: usize, messages: usize) -> Vec<u8> {
        let mut n = 0;
        let entry: Vec<_> = (0..entries)
            .map(|e| {
                let changes: Vec<_> = (0..changes)
                    .map(|c| {
                        let customer = format!("c{}", (e * changes + c) % 3);
                        let messages: Vec<_> = (0..messages)
                            .map(|_| {
                                n += 1;
                                json!({"from": customer, "id": format!("wamid.b{n}"),
                                    "timestamp": (1_700_000_000 + n).to_string(),
                                    "type": "text", "text": {"body": format!("m{n}")}})
                            })
                            .collect();
                        json!({"field": "messages", "value": {
                            "metadata": {"phone_number_id": PYWA_NUMBER},
                            "contacts": [{"wa_id": customer, "profile": {"name": customer}}],
                            "messages": messages,
                            "statuses": [{"id": format!("wamid.out{e}.{c}"), "status": "sent",
                                "timestamp": "1700000000"}]}})
                    })
                    .collect();
                json!({"id": "waba", "changes": changes})
            })
            .collect();
        json!({"object": "whatsapp_business_account", "entry": entry})
            .to_string()
            .into_bytes()
    }

    async fn a_batch_is_stored_whole_and_in_order_before_any_routing(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        h.queue.state().down = true;
        let row = h.receive(batch(3, 2, 4)).await;
        assert_eq!(h.drain().await, 0, "routing failed");
        let messages = h.messages().await;
        assert_eq!(messages.len(), 24, "every message of the body is stored");
        assert!(messages.iter().all(|m| m.attention_id.is_none()));
        let kept = status::Entity::find().all(&h.db).await.expect("statuses");
        assert_eq!(kept.len(), 6, "and every status");

        h.queue.state().down = false;
        h.make_due(row).await;
        assert_eq!(h.drain().await, 1);
        let recorded: Vec<String> = h
            .queue
            .state()
            .inbound
            .iter()
            .map(|r| r.preview.clone())
            .collect();
        let expected: Vec<String> = (1..=24).map(|n| format!("m{n}")).collect();
        assert_eq!(recorded, expected, "routed once each, in body order");
    }
    on_both_databases!(a_batch_is_stored_whole_and_in_order_before_any_routing);

    async fn a_batch_interrupted_half_way_is_finished_by_the_retry_once_each(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        h.queue.state().answers_left = Some(5);
        let row = h.receive(batch(2, 2, 3)).await;
        assert_eq!(h.drain().await, 0);
        assert_eq!(h.queue.state().inbound.len(), 5);
        let routed = |messages: &[message::Model]| {
            messages.iter().filter(|m| m.attention_id.is_some()).count()
        };
        assert_eq!(routed(&h.messages().await), 5);

        {
            let mut queue = h.queue.state();
            queue.answers_left = None;
            queue.down = false;
        }
        h.make_due(row).await;
        assert_eq!(h.drain().await, 1);
        let messages = h.messages().await;
        assert_eq!((messages.len(), routed(&messages)), (12, 12));
        let mut wamids: Vec<String> = h
            .queue
            .state()
            .inbound
            .iter()
            .map(|r| r.message_id.clone())
            .collect();
        assert_eq!(wamids.len(), 12, "the retry routes only the rest");
        wamids.sort();
        wamids.dedup();
        assert_eq!(wamids.len(), 12, "nothing is routed twice");
    }
    on_both_databases!(a_batch_interrupted_half_way_is_finished_by_the_retry_once_each);

    async fn a_body_that_cannot_be_stored_whole_stores_nothing_until_it_can(db: TestDatabase) {
        let h = harness(db, &["1122334455667"]).await;
        let rename = |from: &str, to: &str| {
            Statement::from_string(
                h.db.get_database_backend(),
                format!("ALTER TABLE {from} RENAME TO {to}"),
            )
        };
        // The reaction's write fails after the text's has run.
        h.db.execute_raw(rename("messaging_reactions", "reactions_away"))
            .await
            .expect("rename");
        let text = String::from_utf8(fixture("inbound_text.json")).expect("utf-8");
        let reaction = String::from_utf8(fixture("inbound_reaction.json")).expect("utf-8");
        let mut body: serde_json::Value = serde_json::from_str(&text).expect("json");
        let reaction: serde_json::Value =
            serde_json::from_str(&reaction.replace("wamid.xyzxyz", "wamid.reaction"))
                .expect("json");
        let entries = body["entry"].as_array_mut().expect("entries");
        entries.push(reaction["entry"][0].clone());
        let row = h.receive(body.to_string().into_bytes()).await;
        assert_eq!(h.drain().await, 0);
        assert!(h.messages().await.is_empty(), "the text is rolled back too");
        assert!(h.row(row).await.last_error.is_some());

        h.db.execute_raw(rename("reactions_away", "messaging_reactions"))
            .await
            .expect("rename back");
        h.make_due(row).await;
        assert_eq!(h.drain().await, 1);
        let kinds: Vec<String> = h
            .messages()
            .await
            .into_iter()
            .map(|m| m.message_type)
            .collect();
        assert_eq!(kinds.len(), 2);
        assert!(kinds.contains(&"text".to_owned()) && kinds.contains(&"reaction".to_owned()));
        let reactions = reaction::Entity::find()
            .all(&h.db)
            .await
            .expect("reactions");
        assert_eq!(reactions.len(), 1);
        assert_eq!(
            (
                reactions[0].target_wamid.as_str(),
                reactions[0].emoji.as_str()
            ),
            ("wamid.yzxyzx=", "😮")
        );
    }
    on_both_databases!(a_body_that_cannot_be_stored_whole_stores_nothing_until_it_can);

    async fn a_redelivered_reaction_is_kept_once(db: TestDatabase) {
        let h = harness(db, &["1122334455667"]).await;
        for _ in 0..3 {
            h.receive(fixture("inbound_reaction.json")).await;
        }
        assert_eq!(h.drain().await, 3);
        let reactions = reaction::Entity::find()
            .all(&h.db)
            .await
            .expect("reactions");
        assert_eq!(reactions.len(), 1);
        let message = &h.messages().await[0];
        assert_eq!(reactions[0].message_id, message.id);
        assert_eq!(reactions[0].reacted_at, message.sent_at);
        assert_eq!(reactions[0].direction, "inbound");
    }
    on_both_databases!(a_redelivered_reaction_is_kept_once);

    /// An outbound message as a send stores it once WhatsApp accepted it.
    async fn accepted(db: &DatabaseConnection, wamid: &str) -> Uuid {
        let now = domain::now();
        let key = Uuid::new_v4().to_string();
        let row = message::ActiveModel {
            id: sea_orm::ActiveValue::Set(Uuid::new_v4()),
            wamid: sea_orm::ActiveValue::Set(None),
            direction: sea_orm::ActiveValue::Set("outbound".into()),
            attention_id: sea_orm::ActiveValue::Set(Some(Uuid::new_v4())),
            routing: sea_orm::ActiveValue::Set("routed".into()),
            business_phone_number_id: sea_orm::ActiveValue::Set("1122334455667".into()),
            customer_id: sea_orm::ActiveValue::Set("972987654321".into()),
            customer_wa_id: sea_orm::ActiveValue::Set("972987654321".into()),
            customer_user_id: sea_orm::ActiveValue::Set(String::new()),
            customer_name: sea_orm::ActiveValue::Set(String::new()),
            message_type: sea_orm::ActiveValue::Set("text".into()),
            text: sea_orm::ActiveValue::Set("hola".into()),
            raw: sea_orm::ActiveValue::Set(None),
            status: sea_orm::ActiveValue::Set("pending".into()),
            error_code: sea_orm::ActiveValue::Set(None),
            error_title: sea_orm::ActiveValue::Set(None),
            error_detail: sea_orm::ActiveValue::Set(None),
            sent_at: sea_orm::ActiveValue::Set(now),
            agent_id: sea_orm::ActiveValue::Set(None),
            idempotency_key: sea_orm::ActiveValue::Set(Some(key.clone())),
            sending_until: sea_orm::ActiveValue::Set(None),
            created_at: sea_orm::ActiveValue::Set(now),
            updated_at: sea_orm::ActiveValue::Set(now),
            ..Default::default()
        };
        let stored = store::insert_outbound(db, row, &key).await.expect("insert");
        store::mark_accepted(db, stored.id, wamid)
            .await
            .expect("accept");
        store::apply_kept_statuses(db, wamid).await.expect("apply");
        stored.id
    }

    async fn status_of(db: &DatabaseConnection, id: Uuid) -> message::Model {
        store::find_message(db, id)
            .await
            .expect("find")
            .expect("exists")
    }

    async fn statuses_only_move_a_message_forward(db: TestDatabase) {
        let h = harness(db, &[]).await;
        let id = accepted(&h.db, "wamid.xyzxyz").await;
        for (file, expected) in [
            ("status_read.json", "read"),
            ("status_delivered.json", "read"),
            ("status_sent.json", "read"),
            ("status_failed.json", "failed"),
            ("status_read.json", "failed"),
        ] {
            h.receive(fixture(file)).await;
            h.drain().await;
            assert_eq!(status_of(&h.db, id).await.status, expected, "after {file}");
        }
        let failed = status_of(&h.db, id).await;
        assert_eq!(failed.error_code, Some(130472));
        assert_eq!(
            failed.error_title.as_deref(),
            Some("User's number is part of an experiment")
        );
        let kept = status::Entity::find().all(&h.db).await.expect("statuses");
        assert_eq!(kept.len(), 4, "one row per (wamid, status)");
    }
    on_both_databases!(statuses_only_move_a_message_forward);

    async fn a_status_for_an_unknown_message_is_kept_and_applied_when_it_appears(db: TestDatabase) {
        let h = harness(db, &[]).await;
        let row = h.receive(fixture("status_delivered.json")).await;
        assert_eq!(h.drain().await, 1, "an unknown wamid is no failure");
        assert!(h.row(row).await.processed_at.is_some());
        let id = accepted(&h.db, "wamid.xyzxyz").await;
        assert_eq!(status_of(&h.db, id).await.status, "delivered");
    }
    on_both_databases!(a_status_for_an_unknown_message_is_kept_and_applied_when_it_appears);

    async fn an_unreadable_body_is_kept_but_not_retried(db: TestDatabase) {
        let h = harness(db, &[]).await;
        let row = h.receive(b"not json".to_vec()).await;
        assert_eq!(h.drain().await, 1);
        let row = h.row(row).await;
        assert!(row.processed_at.is_some());
        assert!(row.last_error.is_some());
    }
    on_both_databases!(an_unreadable_body_is_kept_but_not_retried);

    async fn the_processor_wakes_up_when_told(db: TestDatabase) {
        let h = harness(db, &[PYWA_NUMBER]).await;
        let wake = Arc::new(Notify::new());
        let mut processor = h.processor.clone();
        processor.wake = wake.clone();
        processor.poll_interval = Duration::from_secs(3600);
        let token = CancellationToken::new();
        let task = tokio::spawn(processor.run(token.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.receive(fixture("signed_inbound_text_pywa.json")).await;
        wake.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while h.messages().await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "processed after the wake-up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        token.cancel();
        task.await.expect("stops on shutdown");
    }
    on_both_databases!(the_processor_wakes_up_when_told);
}
