//! What the gRPC API does: send a text through the Cloud API, list the
//! messages of an attention. Knows nothing about protobuf.

use chrono::{DateTime, Duration, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::content::{self, Content, Details, Reaction, ReactionEvent};
use crate::domain::{self, Customer, Direction, MessageStatus, Routing};
use crate::entity::message;
use crate::error::{Error, Violation};
use crate::graph::{Graph, SendError};
use crate::{notification, store};

/// How long one SendText call owns the Cloud API call of a message; longer
/// than the HTTP client's timeout, so a live owner never loses it.
const SEND_LEASE: Duration = Duration::seconds(60);
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
/// Characters of a message the queue keeps as the attention's preview.
pub const PREVIEW_CHARS: usize = 100;

/// A text to send in an attention.
#[derive(Debug, Clone)]
pub struct SendText {
    pub attention_id: Uuid,
    pub business_phone_number_id: String,
    pub customer: Customer,
    pub text: String,
    pub preview_url: bool,
    pub idempotency_key: String,
    pub agent_id: Option<String>,
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
    graph: Graph,
}

impl Messaging {
    pub fn new(db: DatabaseConnection, graph: Graph) -> Self {
        Self { db, graph }
    }

    /// Sends a text once per idempotency key. The message is stored PENDING
    /// before the Cloud API is called, so a crash or a timeout leaves a record
    /// that the next call with the same key completes instead of duplicating.
    pub async fn send_text(&self, command: SendText) -> Result<message::Model, Error> {
        let now = domain::now();
        let body = Graph::text_body(&command.customer.wa_id, &command.text, command.preview_url);
        let row = message::ActiveModel {
            id: Set(Uuid::new_v4()),
            wamid: Set(None),
            direction: Set(Direction::Outbound.as_str().to_owned()),
            attention_id: Set(Some(command.attention_id)),
            routing: Set(Routing::Routed.as_str().to_owned()),
            business_phone_number_id: Set(command.business_phone_number_id),
            customer_id: Set(command.customer.id),
            customer_wa_id: Set(command.customer.wa_id),
            customer_user_id: Set(command.customer.user_id),
            customer_name: Set(command.customer.name),
            message_type: Set("text".to_owned()),
            text: Set(command.text),
            // The exact request, so a retry sends what the first call meant to.
            raw: Set(Some(body)),
            status: Set(MessageStatus::Pending.as_str().to_owned()),
            error_code: Set(None),
            error_title: Set(None),
            error_detail: Set(None),
            sent_at: Set(now),
            agent_id: Set(command.agent_id),
            idempotency_key: Set(Some(command.idempotency_key.clone())),
            sending_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let stored = store::insert_outbound(&self.db, row, &command.idempotency_key).await?;
        if stored.status != MessageStatus::Pending.as_str() {
            // Sent (or refused) before: the same key never sends twice.
            return Ok(stored);
        }
        self.deliver(stored).await
    }

    /// Calls the Cloud API for a PENDING message and records the outcome.
    async fn deliver(&self, message: message::Model) -> Result<message::Model, Error> {
        if !store::claim_send(&self.db, message.id, SEND_LEASE).await? {
            // Another call with this key holds the send, or has just finished it.
            let current = self.reload(message.id).await?;
            return if current.status == MessageStatus::Pending.as_str() {
                Err(Error::SendInProgress)
            } else {
                Ok(current)
            };
        }
        let body = message
            .raw
            .clone()
            .unwrap_or_else(|| Graph::text_body(&message.customer_wa_id, &message.text, false));
        match self
            .graph
            .send(&message.business_phone_number_id, &body)
            .await
        {
            Ok(wamid) => {
                if let Err(error) = store::mark_accepted(&self.db, message.id, &wamid).await {
                    // WhatsApp has the message; say which one, for reconciliation.
                    tracing::error!(message_id = %message.id, %wamid, %error, "accepted send not stored");
                    return Err(error);
                }
                // Status webhooks can beat the send's answer; they were kept.
                store::apply_kept_statuses(&self.db, &wamid).await?;
                self.reload(message.id).await
            }
            Err(SendError::Refused(refusal)) => {
                tracing::info!(message_id = %message.id, %refusal, "Cloud API refused a message");
                store::mark_refused(&self.db, message.id, &refusal).await?;
                Err(Error::Refused(refusal))
            }
            Err(SendError::Unavailable(reason)) => {
                store::release_send(&self.db, message.id).await?;
                Err(Error::Unavailable(reason))
            }
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
    use atenciones_test_support::{Answer, CloudApi, TestDatabase, on_both_databases};
    use sea_orm::{EntityTrait, PaginatorTrait};
    use serde_json::json;

    use super::*;
    use crate::notification::StatusUpdate;
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

    struct Harness {
        db: DatabaseConnection,
        graph: CloudApi,
        messaging: Messaging,
        _test_db: TestDatabase,
    }

    async fn harness(test_db: TestDatabase) -> Harness {
        let db = testkit::migrated(&test_db).await;
        let graph = CloudApi::start().await;
        let messaging = Messaging::new(db.clone(), testkit::graph(&graph));
        Harness {
            db,
            graph,
            messaging,
            _test_db: test_db,
        }
    }

    fn command(key: &str) -> SendText {
        SendText {
            attention_id: Uuid::from_u128(7),
            business_phone_number_id: "1122334455667".into(),
            customer: Customer::new("5491155550000".into(), String::new(), "Ana".into()),
            text: "Hola Ana, ¿en qué te ayudo?".into(),
            preview_url: true,
            idempotency_key: key.into(),
            agent_id: Some("agent-7".into()),
        }
    }

    async fn count(db: &DatabaseConnection) -> u64 {
        message::Entity::find().count(db).await.expect("count")
    }

    async fn a_text_is_sent_once_and_stored_with_whatsapps_id(db: TestDatabase) {
        let h = harness(db).await;
        let sent = h.messaging.send_text(command("k1")).await.expect("sent");
        assert_eq!(sent.status, "accepted");
        assert_eq!(sent.wamid.as_deref(), Some("wamid.sent.1"));
        assert_eq!(sent.direction, "outbound");
        assert_eq!(sent.attention_id, Some(Uuid::from_u128(7)));
        assert_eq!(sent.agent_id.as_deref(), Some("agent-7"));

        let calls = h.graph.sent();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].version.as_str(), calls[0].phone_number_id.as_str()),
            (API_VERSION, "1122334455667")
        );
        assert_eq!(calls[0].authorization, format!("Bearer {ACCESS_TOKEN}"));
        assert_eq!(
            calls[0].body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "5491155550000",
                "type": "text",
                "text": { "body": "Hola Ana, ¿en qué te ayudo?", "preview_url": true },
            })
        );
    }
    on_both_databases!(a_text_is_sent_once_and_stored_with_whatsapps_id);

    async fn the_same_key_returns_the_stored_message_and_sends_nothing(db: TestDatabase) {
        let h = harness(db).await;
        let first = h.messaging.send_text(command("k1")).await.expect("sent");
        let again = h
            .messaging
            .send_text(SendText {
                text: "otra cosa".into(),
                ..command("k1")
            })
            .await
            .expect("replayed");
        assert_eq!(again, first);
        assert_eq!(h.graph.sent().len(), 1);
        assert_eq!(count(&h.db).await, 1);
    }
    on_both_databases!(the_same_key_returns_the_stored_message_and_sends_nothing);

    async fn concurrent_sends_with_one_key_send_once(db: TestDatabase) {
        let h = harness(db).await;
        let (a, b) = tokio::join!(
            h.messaging.send_text(command("k1")),
            h.messaging.send_text(command("k1"))
        );
        // One sends; the other returns the result or asks for a retry.
        assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
        for result in [a, b] {
            assert!(
                matches!(result, Ok(_) | Err(Error::SendInProgress)),
                "{result:?}"
            );
        }
        assert_eq!(h.graph.sent().len(), 1);
        assert_eq!(count(&h.db).await, 1);
    }
    on_both_databases!(concurrent_sends_with_one_key_send_once);

    async fn a_refusal_is_stored_as_failed_with_whatsapps_error(db: TestDatabase) {
        let h = harness(db).await;
        h.graph.answer(Answer::Refuse);
        let error = h
            .messaging
            .send_text(command("k1"))
            .await
            .expect_err("refused");
        let Error::Refused(refusal) = &error else {
            panic!("expected a refusal, got {error:?}")
        };
        assert_eq!(refusal.code, 131047);
        assert_eq!(refusal.title, "(#131047) Re-engagement message");
        assert!(refusal.detail.contains("24 hours"), "{}", refusal.detail);

        let stored = store::find_by_idempotency_key(&h.db, "k1")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(stored.status, "failed");
        assert_eq!(stored.error_code, Some(131047));
        assert_eq!(stored.wamid, None);

        // Refused is final for this key: nothing is sent again.
        h.graph.answer(Answer::Accept);
        let again = h
            .messaging
            .send_text(command("k1"))
            .await
            .expect("stored message");
        assert_eq!(again.status, "failed");
        assert_eq!(h.graph.sent().len(), 1);
    }
    on_both_databases!(a_refusal_is_stored_as_failed_with_whatsapps_error);

    async fn an_unreachable_cloud_api_leaves_the_message_pending_for_a_retry(db: TestDatabase) {
        let h = harness(db).await;
        h.graph.answer(Answer::Fail);
        let error = h
            .messaging
            .send_text(command("k1"))
            .await
            .expect_err("unavailable");
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
        let pending = store::find_by_idempotency_key(&h.db, "k1")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(pending.status, "pending");
        assert_eq!(
            pending.sending_until, None,
            "the send is released for the retry"
        );

        h.graph.answer(Answer::Accept);
        let sent = h.messaging.send_text(command("k1")).await.expect("retried");
        assert_eq!(sent.id, pending.id);
        assert_eq!(sent.status, "accepted");
        assert_eq!(
            sent.sent_at, pending.sent_at,
            "the time it was first stored"
        );
        assert_eq!(h.graph.sent().len(), 2);
        assert_eq!(count(&h.db).await, 1);
    }
    on_both_databases!(an_unreachable_cloud_api_leaves_the_message_pending_for_a_retry);

    async fn a_cloud_api_that_does_not_answer_at_all_is_unavailable(test_db: TestDatabase) {
        let db = testkit::migrated(&test_db).await;
        // Nothing listens on port 9 of localhost.
        let graph = Graph::new(&testkit::whatsapp_settings("http://127.0.0.1:9")).expect("client");
        let messaging = Messaging::new(db, graph);
        let error = messaging
            .send_text(command("k1"))
            .await
            .expect_err("unavailable");
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    }
    on_both_databases!(a_cloud_api_that_does_not_answer_at_all_is_unavailable);

    async fn statuses_that_beat_the_send_answer_are_applied(db: TestDatabase) {
        let h = harness(db).await;
        h.graph.next_wamid("wamid.fast");
        let delivered = StatusUpdate {
            business_phone_number_id: "1122334455667".into(),
            wamid: "wamid.fast".into(),
            status: "delivered".into(),
            recipient_id: "5491155550000".into(),
            time: domain::now(),
            error: None,
            raw: json!({}),
        };
        store::keep_status(&h.db, &delivered).await.expect("kept");
        let sent = h.messaging.send_text(command("k1")).await.expect("sent");
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
