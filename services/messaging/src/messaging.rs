//! What the gRPC API does: send every kind of message through the one
//! durable pipeline, mark conversations read, tell the 24-hour window, list
//! the messages of an attention. Knows nothing about protobuf.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::content::{self, Content, Details, Reaction, ReactionEvent};
use crate::domain::{self, Direction, MessageStatus, Routing};
use crate::entity::message;
use crate::error::{Error, Violation};
use crate::graph::{self, Graph, SendError};
use crate::outbound::{Outbound, OutboundBody, Recipient};
use crate::sender::{Outcome, Sender};
use crate::template::Templates;
use crate::window::{self, Window};
use crate::{notification, store};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
/// Characters of a message the queue keeps as the attention's preview.
pub const PREVIEW_CHARS: usize = 100;

/// A reaction to send: the target is a message of this system, resolved to its
/// WhatsApp id before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReaction {
    pub recipient: Recipient,
    pub message_id: Uuid,
    pub emoji: String,
    pub idempotency_key: String,
}

/// Where a page of messages starts: just older than this (time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    pub time: DateTime<Utc>,
    pub id: Uuid,
}

impl PageToken {
    /// Opaque to clients: hex of `v1:<unix micros>:<uuid>`.
    pub fn encode(&self) -> String {
        hex::encode(format!("v1:{}:{}", self.time.timestamp_micros(), self.id))
    }

    pub fn decode(token: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::InvalidArgument(vec![Violation::new(
                "page_token",
                "is not a token this service gave",
            )])
        };
        let bytes = hex::decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, ':');
        let (Some("v1"), Some(micros), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let time = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self { time, id })
    }
}

/// A stored message as the agent sees it: the row, what its WhatsApp JSON
/// says, and what other messages say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageView {
    pub row: message::Model,
    /// Read from the stored JSON when listed (see [`notification::details`]).
    pub details: Details,
    /// Our id of the message `details.reply_to` quotes, when it is stored here.
    pub reply_to_id: Option<Uuid>,
    /// Our id of the message a reaction message is on, when it is stored here.
    pub reaction_target_id: Option<Uuid>,
    /// The reactions on this message, at most one per side.
    pub reactions: Vec<Reaction>,
}

impl MessageView {
    /// The row alone, without looking up the messages it refers to.
    pub fn of(row: message::Model) -> Self {
        let details = row
            .raw
            .as_ref()
            .map(|raw| notification::details(&row.message_type, raw))
            // An outbound row stored before its request body: a plain text.
            .unwrap_or_else(|| Details {
                content: Content::Text(row.text.clone()),
                ..Details::default()
            });
        Self {
            row,
            details,
            reply_to_id: None,
            reaction_target_id: None,
            reactions: Vec::new(),
        }
    }

    fn reaction_target(&self) -> Option<&str> {
        match &self.details.content {
            Content::Reaction(reaction) if !reaction.target_wamid.is_empty() => {
                Some(&reaction.target_wamid)
            }
            _ => None,
        }
    }
}

pub struct Messaging {
    db: DatabaseConnection,
    graph: Arc<Graph>,
    sender: Sender,
    templates: Templates,
}

impl Messaging {
    pub fn new(db: DatabaseConnection, graph: Arc<Graph>, sender: Sender) -> Self {
        let templates = Templates::new(db.clone());
        Self {
            db,
            graph,
            sender,
            templates,
        }
    }

    /// The business numbers' templates, which every template send is checked against.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// For a template: Ok when WhatsApp would take it (registered for the
    /// number, approved, its parameters) and the customer has not opted out
    /// of the number. Other messages answer a customer: Ok.
    pub async fn check_template(&self, outbound: &Outbound) -> Result<(), Error> {
        let OutboundBody::Template(template) = &outbound.body else {
            return Ok(());
        };
        let recipient = &outbound.recipient;
        let number = &recipient.business_phone_number_id;
        self.templates.check(number, template).await?;
        crate::consent::check(&self.db, number, &recipient.customer.id).await
    }

    /// See [`crate::consent::opt_out`] (a supervisor's mark).
    pub async fn opt_out(
        &self,
        number: &str,
        customer_id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let mut bad = Vec::new();
        for (field, value) in [
            ("business_phone_number_id", number),
            ("customer_id", customer_id),
            ("reason", reason.trim()),
        ] {
            if value.is_empty() {
                bad.push(Violation::new(field, "required"));
            }
        }
        if !bad.is_empty() {
            return Err(Error::InvalidArgument(bad));
        }
        let source = crate::consent::Source::Supervisor;
        crate::consent::opt_out(&self.db, number, customer_id, source, actor, reason.trim()).await
    }

    /// See [`crate::consent::list`].
    pub async fn opt_outs(
        &self,
        numbers: Vec<String>,
    ) -> Result<Vec<crate::entity::opt_out::Model>, Error> {
        if numbers.is_empty() {
            return Err(Error::InvalidArgument(vec![Violation::new(
                "business_phone_number_ids",
                "at least one",
            )]));
        }
        crate::consent::list(&self.db, numbers).await
    }

    /// See [`crate::purge::purge`].
    pub async fn purge(
        &self,
        media: &crate::media::Media,
        attention_ids: &[Uuid],
        erase_customer: bool,
    ) -> Result<crate::purge::Purged, Error> {
        crate::purge::purge(&self.db, media, attention_ids, erase_customer).await
    }

    /// Sends a message once per idempotency key. It is stored PENDING before
    /// WhatsApp is called, so a crash, a timeout or an outage leaves a record
    /// that the background sender completes; a repeated key returns that
    /// record as it is now and sends nothing.
    ///
    /// Returns the message ACCEPTED, or PENDING after temporary trouble (the
    /// sender retries it). A refusal is an error, and the message is FAILED.
    pub async fn send(&self, outbound: Outbound) -> Result<message::Model, Error> {
        let key = outbound.idempotency_key.as_str();
        if let Some(stored) = store::find_by_idempotency_key(&self.db, key).await? {
            return Ok(stored);
        }
        let recipient = &outbound.recipient;
        self.check_template(&outbound).await?;
        if outbound.body.needs_window() {
            let window = self
                .window(&recipient.business_phone_number_id, &recipient.customer.id)
                .await?;
            if !window.is_open(domain::now()) {
                return Err(Error::WindowClosed(window.expire_time()));
            }
        }
        let reply_to = match outbound.reply_to {
            Some(id) => Some(
                self.wamid_in_conversation(id, recipient, "reply_to_message_id")
                    .await?,
            ),
            None => None,
        };
        let id = store::new_message_id();
        let row = self.pending_row(id, &outbound, reply_to.as_deref());
        let stored = store::insert_outbound(&self.db, row, key).await?;
        if stored.id != id {
            // A concurrent call with the same key stored it first and sends it.
            return Ok(stored);
        }
        // This call stored it, so it holds the lease: make the first try. A
        // task of its own, so the try and its outcome complete even if the
        // caller hangs up.
        let sender = self.sender.clone();
        let outcome = tokio::spawn(async move { sender.attempt(stored).await })
            .await
            .map_err(|e| Error::Internal(format!("send task: {e}")))??;
        match outcome {
            Outcome::Accepted | Outcome::Retrying => self.reload(id).await,
            Outcome::Refused(refusal) => Err(Error::Refused(refusal)),
            Outcome::GaveUp(error) => Err(Error::GaveUp(error)),
        }
    }

    /// Reacts to a message of the conversation (see [`Messaging::send`]).
    pub async fn send_reaction(&self, reaction: SendReaction) -> Result<message::Model, Error> {
        let target_wamid = self
            .wamid_in_conversation(reaction.message_id, &reaction.recipient, "message_id")
            .await?;
        let emoji = reaction.emoji.clone();
        let message = self
            .send(Outbound {
                recipient: reaction.recipient,
                body: OutboundBody::Reaction {
                    target_wamid: target_wamid.clone(),
                    emoji: reaction.emoji,
                },
                reply_to: None,
                idempotency_key: reaction.idempotency_key,
            })
            .await?;
        // The agent sees their reaction on the message at once (unless
        // WhatsApp refused it); keyed by the reaction message, so a retry with
        // the same key adds nothing.
        if message.status != MessageStatus::Failed.as_str() {
            store::keep_reaction(
                &self.db,
                message.id,
                &target_wamid,
                Direction::Outbound,
                &emoji,
                message.sent_at,
            )
            .await?;
        }
        Ok(message)
    }

    /// The PENDING row of a new message, its send lease already held, so the
    /// background sender leaves the first try to this call.
    fn pending_row(
        &self,
        id: Uuid,
        outbound: &Outbound,
        reply_to: Option<&str>,
    ) -> message::ActiveModel {
        let now = domain::now();
        let recipient = &outbound.recipient;
        let customer = &recipient.customer;
        let body = graph::message_body(&customer.wa_id, &outbound.body, reply_to, &id.to_string());
        message::ActiveModel {
            id: Set(id),
            wamid: Set(None),
            direction: Set(Direction::Outbound.as_str().to_owned()),
            attention_id: Set(Some(recipient.attention_id)),
            routing: Set(Routing::Routed.as_str().to_owned()),
            business_phone_number_id: Set(recipient.business_phone_number_id.clone()),
            customer_id: Set(customer.id.clone()),
            customer_wa_id: Set(customer.wa_id.clone()),
            customer_user_id: Set(customer.user_id.clone()),
            customer_name: Set(customer.name.clone()),
            message_type: Set(outbound.body.kind().to_owned()),
            text: Set(outbound.body.summary()),
            // The exact request, so every try sends what the first one meant to.
            raw: Set(Some(body)),
            status: Set(MessageStatus::Pending.as_str().to_owned()),
            error_code: Set(None),
            error_title: Set(None),
            error_detail: Set(None),
            sent_at: Set(now),
            agent_id: Set(recipient.agent_id.clone()),
            idempotency_key: Set(Some(outbound.idempotency_key.clone())),
            sending_until: Set(Some(now + self.sender.policy().lease)),
            created_at: Set(now),
            updated_at: Set(now),
            send_attempts: Set(0),
            send_error: Set(None),
            marked_read_at: Set(None),
        }
    }

    /// The WhatsApp id of message `id`, which must belong to the recipient's
    /// conversation (business number and customer).
    async fn wamid_in_conversation(
        &self,
        id: Uuid,
        recipient: &Recipient,
        field: &str,
    ) -> Result<String, Error> {
        let found = store::find_message(&self.db, id).await?.filter(|m| {
            m.business_phone_number_id == recipient.business_phone_number_id
                && m.customer_id == recipient.customer.id
        });
        let Some(message) = found else {
            return Err(Error::InvalidArgument(vec![Violation::new(
                field,
                "is not a message of this conversation",
            )]));
        };
        message.wamid.ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "message {id} has no WhatsApp id yet (WhatsApp has not accepted it)"
            ))
        })
    }

    /// The customer's 24-hour window on a business number.
    pub async fn window(
        &self,
        business_phone_number_id: &str,
        customer_id: &str,
    ) -> Result<Window, Error> {
        window::get(&self.db, business_phone_number_id, customer_id).await
    }

    /// Sends one read receipt, for the attention's newest customer message not
    /// marked yet (WhatsApp marks the earlier ones with it); returns how many
    /// messages that marked.
    pub async fn mark_attention_read(&self, attention_id: Uuid) -> Result<u64, Error> {
        let Some(latest) = store::latest_unread_inbound(&self.db, attention_id).await? else {
            return Ok(0);
        };
        let wamid = latest.wamid.as_deref().unwrap_or_default();
        match self
            .graph
            .mark_read(&latest.business_phone_number_id, wamid)
            .await
        {
            Ok(()) => store::mark_read_up_to(&self.db, attention_id, latest.sent_at).await,
            Err(SendError::Refused(refusal)) => Err(Error::Refused(refusal)),
            Err(SendError::Temporary(trouble)) => Err(Error::Unavailable(trouble.reason)),
        }
    }

    async fn reload(&self, id: Uuid) -> Result<message::Model, Error> {
        store::find_message(&self.db, id)
            .await?
            .ok_or_else(|| Error::Internal(format!("message {id} vanished")))
    }

    /// A page of an attention's messages, newest first, and the token of the
    /// next (older) page when there is one.
    pub async fn list_messages(
        &self,
        attention_id: Uuid,
        page_size: u32,
        page_token: Option<PageToken>,
    ) -> Result<(Vec<MessageView>, Option<PageToken>), Error> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        } as usize;
        let before = page_token.map(|t| (t.time, t.id));
        // One extra row says whether an older page exists.
        let mut messages =
            store::list_messages(&self.db, attention_id, before, size as u64 + 1).await?;
        let next = if messages.len() > size {
            messages.truncate(size);
            messages.last().map(|m| PageToken {
                time: m.sent_at,
                id: m.id,
            })
        } else {
            None
        };
        Ok((self.views(messages).await?, next))
    }

    /// Rows as the agent sees them: content read, quoted and reacted-to
    /// messages resolved to our ids, reactions attached. Two queries for the
    /// whole page, whatever its size.
    async fn views(&self, rows: Vec<message::Model>) -> Result<Vec<MessageView>, Error> {
        let mut views: Vec<MessageView> = rows.into_iter().map(MessageView::of).collect();
        let referenced: Vec<String> = views
            .iter()
            .flat_map(|v| [v.details.reply_to.as_deref(), v.reaction_target()])
            .flatten()
            .map(str::to_owned)
            .collect();
        let own: Vec<String> = views.iter().filter_map(|v| v.row.wamid.clone()).collect();
        let (ids, reactions) = tokio::try_join!(
            store::ids_by_wamid(&self.db, &referenced),
            store::reactions_on(&self.db, &own)
        )?;
        let mut reactions = content::current_reactions(reactions.into_iter().filter_map(|r| {
            Some(ReactionEvent {
                direction: Direction::parse(&r.direction)?,
                target_wamid: r.target_wamid,
                emoji: r.emoji,
                time: r.reacted_at,
                sequence: r.id,
            })
        }));
        let id_of = |wamid: Option<&str>| wamid.and_then(|w| ids.get(w)).copied();
        for view in &mut views {
            view.reply_to_id = id_of(view.details.reply_to.as_deref());
            view.reaction_target_id = id_of(view.reaction_target());
            if let Some(wamid) = &view.row.wamid {
                view.reactions = reactions.remove(wamid).unwrap_or_default();
            }
        }
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use atenciones_runtime::settings::WhatsAppSettings;
    use atenciones_test_support::{Answer, CloudApi, TestDatabase, on_both_databases};
    use sea_orm::{EntityTrait, PaginatorTrait};
    use serde_json::json;
    use tokio_util::sync::{CancellationToken, DropGuard};

    use super::*;
    use crate::domain::Customer;
    use crate::notification::{InboundMessage, StatusUpdate};
    use crate::outbound::Template;
    use crate::sender::RetryPolicy;
    use crate::testkit::{self, ACCESS_TOKEN, API_VERSION};

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let token = PageToken {
            time: domain::now(),
            id: Uuid::new_v4(),
        };
        assert_eq!(PageToken::decode(&token.encode()).expect("decodes"), token);
        for garbage in ["", "zz", &hex::encode("v2:1:x"), &hex::encode("v1:abc:def")] {
            assert!(PageToken::decode(garbage).is_err(), "{garbage:?}");
        }
    }

    const NUMBER: &str = "1122334455667";
    const CUSTOMER: &str = "5491155550000";

    struct Harness {
        db: DatabaseConnection,
        graph: CloudApi,
        messaging: Messaging,
        settings: WhatsAppSettings,
        _sender: DropGuard,
        _test_db: TestDatabase,
    }

    async fn harness(test_db: TestDatabase) -> Harness {
        harness_with(test_db, |_| {}).await
    }

    /// The service's sending side on `test_db`, its background sender running.
    async fn harness_with(
        test_db: TestDatabase,
        configure: impl FnOnce(&mut WhatsAppSettings),
    ) -> Harness {
        let db = testkit::migrated(&test_db).await;
        let graph = CloudApi::start().await;
        let mut settings = testkit::whatsapp_settings(&graph.base_url());
        configure(&mut settings);
        let sender = sender(&db, &settings);
        let stop = CancellationToken::new();
        tokio::spawn(sender.clone().run(stop.clone()));
        let client = Arc::new(Graph::new(&settings).expect("graph client"));
        let messaging = Messaging::new(db.clone(), client, sender);
        // The template the tests send, as a supervisor registers it.
        messaging
            .templates()
            .save(atenciones_proto::messaging::v1::Template {
                business_phone_number_id: NUMBER.into(),
                name: "seguimiento".into(),
                language: "es".into(),
                category: atenciones_proto::messaging::v1::TemplateCategory::Utility.into(),
                status: atenciones_proto::messaging::v1::TemplateStatus::Approved.into(),
                body: "Hola {{1}}, ¿pudimos ayudarle?".into(),
                ..Default::default()
            })
            .await
            .expect("template registered");
        Harness {
            messaging,
            db,
            graph,
            settings,
            _sender: stop.drop_guard(),
            _test_db: test_db,
        }
    }

    fn sender(db: &DatabaseConnection, settings: &WhatsAppSettings) -> Sender {
        let graph = Arc::new(Graph::new(settings).expect("graph client"));
        Sender::new(
            db.clone(),
            graph,
            RetryPolicy::new(settings).expect("policy"),
        )
    }

    fn recipient() -> Recipient {
        Recipient {
            attention_id: Uuid::from_u128(7),
            business_phone_number_id: NUMBER.into(),
            customer: Customer::new(CUSTOMER.into(), String::new(), "Ana".into()),
            agent_id: Some("agent-7".into()),
        }
    }

    fn text(key: &str) -> Outbound {
        Outbound {
            recipient: recipient(),
            body: OutboundBody::Text {
                body: "Hola Ana, ¿en qué te ayudo?".into(),
                preview_url: true,
            },
            reply_to: None,
            idempotency_key: key.into(),
        }
    }

    fn template(key: &str) -> Outbound {
        Outbound {
            body: OutboundBody::Template(Template {
                name: "seguimiento".into(),
                language: "es".into(),
                body_parameters: vec!["Ana".into()],
            }),
            ..text(key)
        }
    }

    /// The customer writes (`hours_ago`): stored, routed to attention 7, and
    /// their window opened as the inbox processor opens it.
    async fn customer_wrote(h: &Harness, wamid: &str, hours_ago: i64) -> message::Model {
        let message = InboundMessage {
            business_phone_number_id: NUMBER.into(),
            wamid: wamid.into(),
            customer: Customer::new(CUSTOMER.into(), String::new(), "Ana".into()),
            kind: "text".into(),
            text: "hola".into(),
            time: domain::now() - chrono::TimeDelta::hours(hours_ago),
            raw: json!({}),
            details: Default::default(),
        };
        let stored = store::store_inbound(&h.db, &message).await.expect("stored");
        store::set_attention(&h.db, stored.id, Uuid::from_u128(7))
            .await
            .expect("routed");
        window::record_inbound(&h.db, &stored)
            .await
            .expect("window");
        h.reload(stored.id).await
    }

    impl Harness {
        async fn reload(&self, id: Uuid) -> message::Model {
            store::find_message(&self.db, id)
                .await
                .expect("find")
                .expect("stored")
        }

        async fn by_key(&self, key: &str) -> message::Model {
            store::find_by_idempotency_key(&self.db, key)
                .await
                .expect("find")
                .expect("stored")
        }

        /// Waits for the background sender to settle the message.
        async fn settled(&self, key: &str) -> message::Model {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let message = self.by_key(key).await;
                if message.status != "pending" {
                    return message;
                }
                assert!(Instant::now() < deadline, "{key} still pending");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn count(db: &DatabaseConnection) -> u64 {
        message::Entity::find().count(db).await.expect("count")
    }

    async fn a_text_is_sent_once_and_stored_with_whatsapps_id(db: TestDatabase) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.in", 1).await;
        let sent = h.messaging.send(text("k1")).await.expect("sent");
        assert_eq!(sent.status, "accepted");
        assert_eq!(sent.wamid.as_deref(), Some("wamid.sent.1"));
        assert_eq!(sent.direction, "outbound");
        assert_eq!(sent.attention_id, Some(Uuid::from_u128(7)));
        assert_eq!(sent.agent_id.as_deref(), Some("agent-7"));
        assert_eq!(sent.sending_until, None, "the lease is given back");

        let calls = h.graph.sent();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].version.as_str(), calls[0].phone_number_id.as_str()),
            (API_VERSION, NUMBER)
        );
        assert_eq!(calls[0].authorization, format!("Bearer {ACCESS_TOKEN}"));
        assert_eq!(
            calls[0].body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": CUSTOMER,
                "type": "text",
                "text": { "body": "Hola Ana, ¿en qué te ayudo?", "preview_url": true },
                "biz_opaque_callback_data": sent.id.to_string(),
            })
        );
    }
    on_both_databases!(a_text_is_sent_once_and_stored_with_whatsapps_id);

    async fn the_same_key_returns_the_stored_message_and_sends_nothing(db: TestDatabase) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.in", 1).await;
        let first = h.messaging.send(text("k1")).await.expect("sent");
        let mut other = text("k1");
        other.body = OutboundBody::Text {
            body: "otra cosa".into(),
            preview_url: false,
        };
        let again = h.messaging.send(other).await.expect("replayed");
        assert_eq!(again, first);
        assert_eq!(h.graph.sent().len(), 1);
        assert_eq!(
            count(&h.db).await,
            2,
            "the customer's message and one reply"
        );
    }
    on_both_databases!(the_same_key_returns_the_stored_message_and_sends_nothing);

    async fn concurrent_sends_with_one_key_send_once(db: TestDatabase) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.in", 1).await;
        let (a, b) = tokio::join!(h.messaging.send(text("k1")), h.messaging.send(text("k1")));
        // One sends; the other returns the stored message, sent or still pending.
        let (a, b) = (a.expect("first"), b.expect("second"));
        assert_eq!(a.id, b.id);
        assert_eq!(h.settled("k1").await.status, "accepted");
        assert_eq!(h.graph.sent().len(), 1);
    }
    on_both_databases!(concurrent_sends_with_one_key_send_once);

    async fn a_refusal_is_stored_as_failed_with_whatsapps_error(db: TestDatabase) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.in", 1).await;
        h.graph.answer(Answer::Reject {
            code: 131026,
            title: "(#131026) Message undeliverable",
            detail: "Unable to deliver message.",
        });
        let error = h.messaging.send(text("k1")).await.expect_err("refused");
        let Error::Refused(refusal) = &error else {
            panic!("expected a refusal, got {error:?}")
        };
        assert_eq!(refusal.code, 131026);
        assert_eq!(refusal.title, "(#131026) Message undeliverable");
        assert_eq!(refusal.detail, "Unable to deliver message.");

        let stored = h.by_key("k1").await;
        assert_eq!(stored.status, "failed");
        assert_eq!(stored.error_code, Some(131026));
        assert_eq!(stored.wamid, None);

        // Refused is final for this key: nothing is sent again.
        h.graph.answer(Answer::Accept);
        let again = h.messaging.send(text("k1")).await.expect("stored message");
        assert_eq!(again.status, "failed");
        assert_eq!(h.graph.sent().len(), 1);
        let window = h.messaging.window(NUMBER, CUSTOMER).await.expect("window");
        assert!(
            window.is_open(domain::now()),
            "only 131047 closes the window"
        );
    }
    on_both_databases!(a_refusal_is_stored_as_failed_with_whatsapps_error);

    async fn a_131047_fails_the_message_and_closes_the_window(db: TestDatabase) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.in", 1).await;
        h.graph.answer(Answer::Refuse);
        let error = h.messaging.send(text("k1")).await.expect_err("refused");
        assert!(
            matches!(&error, Error::Refused(e) if e.code == window::CLOSED_CODE),
            "{error:?}"
        );
        let window = h.messaging.window(NUMBER, CUSTOMER).await.expect("window");
        assert!(!window.is_open(domain::now()));

        // The next free-form message is refused here, before WhatsApp.
        let error = h.messaging.send(text("k2")).await.expect_err("closed");
        assert!(matches!(error, Error::WindowClosed(Some(_))), "{error:?}");
        assert_eq!(h.graph.sent().len(), 1);

        // The customer writes again: open again.
        customer_wrote(&h, "wamid.in.2", 0).await;
        h.graph.answer(Answer::Accept);
        let sent = h.messaging.send(text("k3")).await.expect("sent");
        assert_eq!(sent.status, "accepted");
    }
    on_both_databases!(a_131047_fails_the_message_and_closes_the_window);

    async fn only_templates_go_outside_the_window(db: TestDatabase) {
        let h = harness(db).await;
        // Never wrote: no window at all.
        let error = h.messaging.send(text("k1")).await.expect_err("no window");
        assert!(matches!(error, Error::WindowClosed(None)), "{error:?}");
        // Wrote 25 hours ago: closed an hour ago.
        let inbound = customer_wrote(&h, "wamid.old", 25).await;
        let error = h.messaging.send(text("k2")).await.expect_err("closed");
        let Error::WindowClosed(Some(expired)) = error else {
            panic!("expected a closed window, got {error:?}");
        };
        assert_eq!(expired, inbound.sent_at + window::LENGTH);
        let reaction = h
            .messaging
            .send_reaction(SendReaction {
                recipient: recipient(),
                message_id: inbound.id,
                emoji: "👍".into(),
                idempotency_key: "k3".into(),
            })
            .await
            .expect_err("closed");
        assert!(matches!(reaction, Error::WindowClosed(_)), "{reaction:?}");
        assert!(h.graph.sent().is_empty(), "nothing reached WhatsApp");
        assert_eq!(count(&h.db).await, 1, "nothing stored");

        let sent = h.messaging.send(template("k4")).await.expect("template");
        assert_eq!(sent.status, "accepted");
        assert_eq!(sent.message_type, "template");
        assert_eq!(sent.text, "Template seguimiento: Ana");
    }
    on_both_databases!(only_templates_go_outside_the_window);

    /// What WhatsApp would refuse never gets stored or sent: a template not
    /// registered for the number, one not approved, the wrong parameters.
    async fn templates_are_checked_before_anything_is_stored(db: TestDatabase) {
        let h = harness(db).await;
        h.messaging
            .templates()
            .save(atenciones_proto::messaging::v1::Template {
                business_phone_number_id: NUMBER.into(),
                name: "promo".into(),
                language: "es".into(),
                category: atenciones_proto::messaging::v1::TemplateCategory::Marketing.into(),
                status: atenciones_proto::messaging::v1::TemplateStatus::Paused.into(),
                body: "Oferta para {{1}}".into(),
                ..Default::default()
            })
            .await
            .expect("saved");
        let with = |key: &str, name: &str, language: &str, parameters: &[&str]| Outbound {
            body: OutboundBody::Template(Template {
                name: name.into(),
                language: language.into(),
                body_parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
            }),
            ..text(key)
        };
        for (name, language) in [("promo", "es"), ("nope", "es"), ("seguimiento", "en")] {
            let refused = h
                .messaging
                .send(with("k1", name, language, &["Ana"]))
                .await
                .expect_err("unavailable");
            assert!(
                matches!(refused, Error::TemplateUnavailable(_)),
                "{refused:?}"
            );
        }
        let refused = h
            .messaging
            .send(with("k1", "seguimiento", "es", &["Ana", "de más"]))
            .await
            .expect_err("one parameter too many");
        let Error::InvalidArgument(violations) = refused else {
            panic!("expected field violations, got {refused:?}");
        };
        assert_eq!(violations[0].field, "body_parameters");
        assert!(h.graph.sent().is_empty(), "nothing reached WhatsApp");
        assert_eq!(count(&h.db).await, 0, "nothing stored");
        h.messaging
            .send(with("k1", "seguimiento", "es", &["Ana"]))
            .await
            .expect("approved, with its one parameter");
    }

    on_both_databases!(templates_are_checked_before_anything_is_stored);

    async fn replies_and_reactions_point_at_messages_of_the_conversation(db: TestDatabase) {
        let h = harness(db).await;
        let inbound = customer_wrote(&h, "wamid.in", 1).await;
        let reply = h
            .messaging
            .send(Outbound {
                reply_to: Some(inbound.id),
                ..text("k1")
            })
            .await
            .expect("reply");
        assert_eq!(
            h.graph.sent()[0].body["context"],
            json!({ "message_id": "wamid.in" })
        );
        let reaction = h
            .messaging
            .send_reaction(SendReaction {
                recipient: recipient(),
                message_id: inbound.id,
                emoji: "❤️".into(),
                idempotency_key: "k2".into(),
            })
            .await
            .expect("reaction");
        assert_eq!(reaction.message_type, "reaction");
        assert_eq!(
            h.graph.sent()[1].body["reaction"],
            json!({ "message_id": "wamid.in", "emoji": "❤️" })
        );

        // Another customer's message is not part of this conversation.
        let mut stranger = recipient();
        stranger.customer = Customer::new("5491199999999".into(), String::new(), String::new());
        let error = h
            .messaging
            .send(Outbound {
                recipient: stranger,
                reply_to: Some(inbound.id),
                ..template("k3")
            })
            .await
            .expect_err("not this conversation");
        assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");

        // A message WhatsApp has not accepted yet has no id to react to.
        h.graph.answer(Answer::ServerError);
        let pending = h.messaging.send(text("k4")).await.expect("pending");
        assert_eq!(pending.status, "pending");
        let error = h
            .messaging
            .send_reaction(SendReaction {
                recipient: recipient(),
                message_id: pending.id,
                emoji: "👍".into(),
                idempotency_key: "k5".into(),
            })
            .await
            .expect_err("no wamid yet");
        assert!(matches!(error, Error::FailedPrecondition(_)), "{error:?}");
        assert_eq!(reply.status, "accepted");
    }
    on_both_databases!(replies_and_reactions_point_at_messages_of_the_conversation);

    async fn temporary_trouble_leaves_it_pending_until_the_sender_gets_it_through(
        db: TestDatabase,
    ) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.in", 1).await;
        h.graph.script(&[
            Answer::RateLimited,
            Answer::TooManyRequests,
            Answer::PairRateLimited,
            Answer::ServerError,
            Answer::Fail,
        ]);
        let pending = h.messaging.send(text("k1")).await.expect("pending");
        assert_eq!(pending.status, "pending");
        assert_eq!(pending.send_attempts, 1);
        assert!(
            pending
                .send_error
                .as_deref()
                .is_some_and(|e| e.contains("130429")),
            "{:?}",
            pending.send_error
        );
        let sent = h.settled("k1").await;
        assert_eq!(sent.status, "accepted");
        assert_eq!(sent.id, pending.id);
        assert_eq!(
            sent.sent_at, pending.sent_at,
            "the time it was first stored"
        );
        assert_eq!(sent.send_error, None);
        let calls = h.graph.sent();
        assert_eq!(calls.len(), 6);
        assert_eq!(h.graph.accepted().len(), 1, "sent once");
        // The waits double: 250, 500 ms, then capped.
        let gaps: Vec<Duration> = calls
            .windows(2)
            .map(|pair| pair[1].received_at - pair[0].received_at)
            .collect();
        for (gap, at_least) in gaps.iter().zip([250, 500, 500, 500, 500]) {
            assert!(
                *gap >= Duration::from_millis(at_least),
                "{gaps:?} shorter than the backoff"
            );
        }
        assert_eq!(count(&h.db).await, 2);
    }
    on_both_databases!(temporary_trouble_leaves_it_pending_until_the_sender_gets_it_through);

    async fn trouble_that_outlasts_every_try_fails_the_message_with_the_reason(db: TestDatabase) {
        let h = harness_with(db, |s| {
            s.send_max_attempts = std::num::NonZeroU32::new(3).expect("3");
        })
        .await;
        customer_wrote(&h, "wamid.in", 1).await;
        h.graph.answer(Answer::Fail);
        let pending = h.messaging.send(text("k1")).await.expect("pending");
        assert_eq!(pending.status, "pending");
        let failed = h.settled("k1").await;
        assert_eq!(failed.status, "failed");
        assert_eq!(
            failed.error_title.as_deref(),
            Some("WhatsApp did not take the message")
        );
        assert_eq!(
            failed.error_detail.as_deref(),
            Some("gave up after 3 tries; last: WhatsApp answered HTTP 503")
        );
        assert_eq!(h.graph.sent().len(), 3);
    }
    on_both_databases!(trouble_that_outlasts_every_try_fails_the_message_with_the_reason);

    async fn an_unreachable_or_slow_cloud_api_keeps_the_message_pending(test_db: TestDatabase) {
        let h = harness_with(test_db, |s| {
            s.request_timeout_ms = 200;
            s.send_lease_ms = 1_000;
        })
        .await;
        customer_wrote(&h, "wamid.in", 1).await;
        // Nothing listens on port 9 of localhost.
        let mut unreachable = h.settings.clone();
        unreachable.api_base_url = "http://127.0.0.1:9".into();
        let graph = Arc::new(Graph::new(&unreachable).expect("client"));
        let sender = sender(&h.db, &unreachable);
        let offline = Messaging::new(h.db.clone(), graph, sender);
        let pending = offline.send(text("k1")).await.expect("pending");
        assert_eq!(pending.status, "pending");
        assert_eq!(
            pending.send_error.as_deref(),
            Some("WhatsApp could not be reached")
        );
        // The harness's sender reaches the fake: it goes through.
        assert_eq!(h.settled("k1").await.status, "accepted");

        h.graph.script(&[Answer::Slow(Duration::from_millis(600))]);
        let slow = h.messaging.send(text("k2")).await.expect("pending");
        assert_eq!(slow.status, "pending");
        assert_eq!(
            slow.send_error.as_deref(),
            Some("WhatsApp did not answer within 200 ms")
        );
        assert_eq!(h.settled("k2").await.status, "accepted");
    }
    on_both_databases!(an_unreachable_or_slow_cloud_api_keeps_the_message_pending);

    async fn a_send_left_by_a_dead_replica_is_sent_once_by_one_survivor(db: TestDatabase) {
        let h = harness_with(db, |s| {
            s.request_timeout_ms = 200;
            s.send_lease_ms = 300;
        })
        .await;
        customer_wrote(&h, "wamid.in", 1).await;
        // Stored with its lease held, as a Send* call stores it, by a replica
        // that died before calling WhatsApp.
        let id = Uuid::new_v4();
        let row = h.messaging.pending_row(id, &text("k1"), None);
        store::insert_outbound(&h.db, row, "k1")
            .await
            .expect("stored");
        // Two more replicas' senders race the harness's for it.
        let stop = CancellationToken::new();
        for _ in 0..2 {
            tokio::spawn(sender(&h.db, &h.settings).run(stop.clone()));
        }
        let sent = h.settled("k1").await;
        stop.cancel();
        assert_eq!(sent.status, "accepted");
        assert_eq!(h.graph.sent_for(&id.to_string()).len(), 1, "sent once");
    }
    on_both_databases!(a_send_left_by_a_dead_replica_is_sent_once_by_one_survivor);

    async fn sends_are_paced_per_business_number(db: TestDatabase) {
        let h = harness_with(db, |s| {
            s.messages_per_second = std::num::NonZeroU32::new(20).expect("20");
        })
        .await;
        let other = "9988776655";
        let inbound = customer_wrote(&h, "wamid.in", 1).await;
        let mut second = inbound.clone();
        second.business_phone_number_id = other.into();
        window::record_inbound(&h.db, &second)
            .await
            .expect("window");
        let started = Instant::now();
        let sends = (0..21).flat_map(|i| {
            let mut elsewhere = text(&format!("other-{i}"));
            elsewhere.recipient.business_phone_number_id = other.into();
            [
                h.messaging.send(text(&format!("k{i}"))),
                h.messaging.send(elsewhere),
            ]
        });
        for sent in futures::future::join_all(sends).await {
            assert_eq!(sent.expect("sent").status, "accepted");
        }
        let elapsed = started.elapsed();
        // 21 sends at 20/s, evenly spaced: 20 gaps of 50 ms, on each number
        // at once. Paced together, each number's sends would spread over 2 s.
        let calls = h.graph.sent();
        for number in [NUMBER, other] {
            let times: Vec<Instant> = calls
                .iter()
                .filter(|c| c.phone_number_id == number)
                .map(|c| c.received_at)
                .collect();
            let span = times[times.len() - 1] - times[0];
            eprintln!("{number}: 21 sends spread over {span:?}");
            assert!(
                span >= Duration::from_millis(950) && span < Duration::from_millis(1_600),
                "{number}: {span:?}"
            );
            let busiest_second = times
                .iter()
                .map(|start| {
                    times
                        .iter()
                        .filter(|t| **t >= *start && **t < *start + Duration::from_secs(1))
                        .count()
                })
                .max();
            assert!(
                busiest_second <= Some(21),
                "{busiest_second:?} in one second"
            );
        }
        eprintln!("42 sends on two numbers in {elapsed:?}");
    }
    on_both_databases!(sends_are_paced_per_business_number);

    async fn reading_an_attention_sends_one_receipt_for_the_newest_message(db: TestDatabase) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.a", 3).await;
        customer_wrote(&h, "wamid.b", 2).await;
        let marked = h
            .messaging
            .mark_attention_read(Uuid::from_u128(7))
            .await
            .expect("marked");
        assert_eq!(marked, 2);
        let receipts = h.graph.read_receipts();
        assert_eq!(receipts.len(), 1);
        assert_eq!(
            receipts[0].body,
            json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.b" })
        );
        assert_eq!(receipts[0].phone_number_id, NUMBER);
        assert!(h.graph.sent().is_empty(), "a receipt is not a message");
        // Nothing new: no call.
        let again = h
            .messaging
            .mark_attention_read(Uuid::from_u128(7))
            .await
            .expect("marked");
        assert_eq!(again, 0);
        assert_eq!(h.graph.read_receipts().len(), 1);
        customer_wrote(&h, "wamid.c", 0).await;
        assert_eq!(
            h.messaging
                .mark_attention_read(Uuid::from_u128(7))
                .await
                .expect("marked"),
            1
        );
        assert_eq!(h.graph.read_receipts()[1].body["message_id"], "wamid.c");
    }
    on_both_databases!(reading_an_attention_sends_one_receipt_for_the_newest_message);

    async fn statuses_that_beat_the_send_answer_are_applied(db: TestDatabase) {
        let h = harness(db).await;
        customer_wrote(&h, "wamid.in", 1).await;
        h.graph.next_wamid("wamid.fast");
        let delivered = StatusUpdate {
            business_phone_number_id: NUMBER.into(),
            wamid: "wamid.fast".into(),
            status: "delivered".into(),
            recipient_id: CUSTOMER.into(),
            time: domain::now(),
            error: None,
            raw: json!({}),
        };
        store::keep_status(&h.db, &delivered).await.expect("kept");
        let sent = h.messaging.send(text("k1")).await.expect("sent");
        assert_eq!(sent.status, "delivered");
    }
    on_both_databases!(statuses_that_beat_the_send_answer_are_applied);

    async fn stored_at(h: &Harness, attention: Uuid, seconds: i64, wamid: &str) -> Uuid {
        let raw = json!({"type": "text", "text": {"body": wamid}});
        stored_raw(h, attention, seconds, wamid, raw).await
    }

    /// An inbound message object stored as the processor stores it.
    async fn stored_raw(
        h: &Harness,
        attention: Uuid,
        seconds: i64,
        wamid: &str,
        raw: serde_json::Value,
    ) -> Uuid {
        let kind = raw["type"].as_str().unwrap_or_default().to_owned();
        let details = notification::details(&kind, &raw);
        let message = crate::notification::InboundMessage {
            business_phone_number_id: "1".into(),
            wamid: wamid.into(),
            customer: Customer::new("2".into(), String::new(), String::new()),
            kind,
            text: details.content.summary(),
            details,
            time: chrono::DateTime::from_timestamp(seconds, 0).expect("time"),
            raw,
        };
        let stored = store::store_inbound(&h.db, &message).await.expect("stored");
        store::set_attention(&h.db, stored.id, attention)
            .await
            .expect("routed");
        stored.id
    }

    async fn messages_are_listed_newest_first_a_page_at_a_time(db: TestDatabase) {
        let h = harness(db).await;
        let attention = Uuid::new_v4();
        // Two pairs share a second: the id breaks the tie, and no page loses one.
        for (seconds, wamid) in [
            (100, "a"),
            (200, "b"),
            (200, "c"),
            (300, "d"),
            (300, "e"),
            (400, "f"),
            (500, "g"),
        ] {
            stored_at(&h, attention, seconds, wamid).await;
        }
        stored_at(&h, Uuid::new_v4(), 250, "other attention").await;

        let mut seen = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let (page, next) = h
                .messaging
                .list_messages(attention, 2, token)
                .await
                .expect("page");
            pages += 1;
            assert!(page.len() <= 2);
            seen.extend(
                page.into_iter()
                    .map(|m| (m.row.sent_at.timestamp(), m.row.text)),
            );
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 4);
        let times: Vec<i64> = seen.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [500, 400, 300, 300, 200, 200, 100]);
        let mut texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
        texts.sort_unstable();
        assert_eq!(texts, ["a", "b", "c", "d", "e", "f", "g"]);

        let (all, next) = h
            .messaging
            .list_messages(attention, 0, None)
            .await
            .expect("page");
        assert_eq!(
            (all.len(), next),
            (7, None),
            "0 means the default page size"
        );
    }
    on_both_databases!(messages_are_listed_newest_first_a_page_at_a_time);

    async fn react(h: &Harness, on: &str, direction: Direction, emoji: &str, seconds: i64) {
        let time = chrono::DateTime::from_timestamp(seconds, 0).expect("time");
        store::keep_reaction(&h.db, Uuid::new_v4(), on, direction, emoji, time)
            .await
            .expect("kept");
    }

    async fn listed_messages_show_their_content_quotes_and_reactions(db: TestDatabase) {
        let h = harness(db).await;
        let attention = Uuid::new_v4();
        // A reaction that arrives before the message it is on is kept for it.
        react(&h, "wamid.t", Direction::Inbound, "😮", 90).await;
        let quoted = stored_at(&h, attention, 100, "wamid.t").await;
        let reply = json!({"type": "text", "text": {"body": "this"},
            "context": {"id": "wamid.t", "from": "1"}});
        stored_raw(&h, attention, 110, "wamid.r", reply).await;
        let reaction =
            json!({"type": "reaction", "reaction": {"message_id": "wamid.t", "emoji": "❤️"}});
        stored_raw(&h, attention, 120, "wamid.x", reaction).await;
        react(&h, "wamid.t", Direction::Inbound, "❤️", 120).await;
        react(&h, "wamid.t", Direction::Outbound, "👍", 130).await;
        let lost = json!({"type": "text", "text": {"body": "?"}, "context": {"id": "wamid.gone"}});
        stored_raw(&h, attention, 140, "wamid.l", lost).await;

        let (page, _) = h
            .messaging
            .list_messages(attention, 0, None)
            .await
            .expect("page");
        let by_wamid = |wamid: &str| {
            page.iter()
                .find(|v| v.row.wamid.as_deref() == Some(wamid))
                .cloned()
                .expect(wamid)
        };
        let target = by_wamid("wamid.t");
        let shown: Vec<(&str, Direction)> = target
            .reactions
            .iter()
            .map(|r| (r.emoji.as_str(), r.direction))
            .collect();
        assert_eq!(
            shown,
            [("❤️", Direction::Inbound), ("👍", Direction::Outbound)],
            "one per side, the latest"
        );
        let reply = by_wamid("wamid.r");
        assert_eq!(reply.details.reply_to.as_deref(), Some("wamid.t"));
        assert_eq!(reply.reply_to_id, Some(quoted));
        assert!(reply.reactions.is_empty());
        let reaction = by_wamid("wamid.x");
        assert_eq!(reaction.reaction_target_id, Some(quoted));
        assert_eq!(reaction.row.text, "❤️");
        let lost = by_wamid("wamid.l");
        assert_eq!(
            (lost.details.reply_to.as_deref(), lost.reply_to_id),
            (Some("wamid.gone"), None),
            "a quote of an unknown message keeps its WhatsApp id"
        );

        react(&h, "wamid.t", Direction::Inbound, "", 150).await;
        let (page, _) = h
            .messaging
            .list_messages(attention, 0, None)
            .await
            .expect("page");
        let target = page.iter().find(|v| v.row.id == quoted).expect("target");
        assert_eq!(target.reactions.len(), 1, "the customer's is removed");
        assert_eq!(target.reactions[0].direction, Direction::Outbound);
    }
    on_both_databases!(listed_messages_show_their_content_quotes_and_reactions);
}
