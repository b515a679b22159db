//! Hands the attentions' life to the history service: every lifecycle event
//! (for reports) and, when one finishes, its record. It follows the outbox
//! from its own stored offset, so nothing is missed even if history was down
//! when it happened, or this process died right after the commit. Delivery is
//! at-least-once; history stores each event and each attention once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::history::v1 as history_pb;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::paging::all_messages;
use atenciones_proto::time::timestamp;

use crate::attention::{Direction, event};
use crate::clients::Clients;
use crate::entity::{attention, attention_message, outbox, outbox_offset};
use crate::error::Error;
use crate::queue::Queue;

/// Its offset in `queue_outbox_offsets`; the feed keeps every event past it.
pub(crate) const CONSUMER: &str = "history";
const BATCH: u64 = 100;
/// Longest wait between retries while history (or a service it needs) is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Even with no wake-up, look again this often: events of other replicas,
/// and every lifecycle event reports count (only finishing wakes it).
const POLL: Duration = Duration::from_secs(1);
/// Longer than any transaction that writes an outbox event stays open.
const COMMIT_LAG: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

pub struct Handoff {
    db: DatabaseConnection,
    queue: Queue,
    clients: Clients,
    wake: Arc<Notify>,
}

impl Handoff {
    pub fn new(db: DatabaseConnection, queue: Queue, clients: Clients, wake: Arc<Notify>) -> Self {
        Self {
            db,
            queue,
            clients,
            wake,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let wait = match self.deliver_pending().await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    POLL
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "history hand-off failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends the batch's attention events, each with what reports group by:
    /// the attention's campaign, direction and start, and who holds it now.
    async fn forward(&self, events: &[outbox::Model]) -> Result<(), Error> {
        let events: Vec<_> = events.iter().filter(|e| !e.attention_id.is_nil()).collect();
        if events.is_empty() {
            return Ok(());
        }
        let attentions: HashMap<Uuid, attention::Model> = attention::Entity::find()
            .filter(attention::Column::Id.is_in(events.iter().map(|e| e.attention_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        let events = events
            .into_iter()
            .filter_map(|e| {
                let attention = attentions.get(&e.attention_id)?;
                Some(history_pb::AttentionEvent {
                    id: e.id,
                    kind: e.kind.clone(),
                    attention_id: e.attention_id.to_string(),
                    campaign_id: attention.campaign_id.clone(),
                    direction: Direction::parse(&attention.direction)
                        .map_or(0, |d| d.to_proto().into()),
                    attention_create_time: Some(timestamp(attention.created_at)),
                    time: Some(timestamp(e.created_at)),
                    actor: e.payload["actor"].as_str().unwrap_or_default().to_owned(),
                    agent_id: attention.agent_id.clone().unwrap_or_default(),
                    payload_json: e.payload.to_string(),
                })
            })
            .collect();
        self.clients
            .history()
            .record_attention_events(history_pb::RecordAttentionEventsRequest { events })
            .await?;
        Ok(())
    }

    /// Delivers every finished attention past the offset, in order, moving the
    /// offset after each one so a failure resumes exactly there.
    async fn deliver_pending(&self) -> Result<(), Error> {
        loop {
            let offset = outbox_offset::Entity::find_by_id(CONSUMER)
                .one(&self.db)
                .await?
                .map_or(0, |o| o.last_event_id);
            let events = outbox::Entity::find()
                .filter(outbox::Column::Id.gt(offset))
                .order_by_asc(outbox::Column::Id)
                .limit(BATCH)
                .all(&self.db)
                .await?;
            // Ids are handed out at insert, not at commit: an event with a
            // smaller id may still become visible. The offset only moves past
            // events old enough that every transaction around them has
            // committed; newer ones are delivered now and again on the next
            // pass (history stores each attention once).
            let settled = chrono::Utc::now() - COMMIT_LAG;
            let mut advanced = false;
            let mut holding = false;
            let full = events.len() as u64 == BATCH;
            self.forward(&events).await?;
            for event in events {
                if event.kind == event::FINISHED {
                    self.deliver(&event).await?;
                }
                holding |= event.created_at > settled;
                if !holding {
                    self.advance(event.id).await?;
                    advanced = true;
                }
            }
            if !(full && advanced) {
                return Ok(());
            }
        }
    }

    async fn deliver(&self, event: &outbox::Model) -> Result<(), Error> {
        let attention = self
            .queue
            .with_campaign_name(self.queue.find(event.attention_id).await?)
            .await?;
        let form = if attention.form_id.is_empty() {
            None
        } else {
            self.clients
                .form()
                .get_submission(form_pb::GetSubmissionRequest {
                    attention_id: attention.id.clone(),
                })
                .await?
                .into_inner()
                .submission
        };
        let transcript = self.transcript(&attention.id).await?;
        self.check_complete(event.attention_id, &transcript).await?;
        let life = outbox::Entity::find()
            .filter(outbox::Column::AttentionId.eq(event.attention_id))
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?;
        let path = Path::of(&life);
        let record = history_pb::AttentionRecord {
            attention_id: attention.id,
            campaign_id: attention.campaign_id,
            campaign_name: attention.campaign_name,
            business_phone_number_id: attention.business_phone_number_id,
            customer: attention.customer,
            direction: attention.direction,
            agent_id: attention.agent_id,
            create_time: attention.create_time,
            open_time: path.first_open.or(attention.open_time),
            finish_time: attention.finish_time,
            message_count: u32::try_from(transcript.len()).unwrap_or(u32::MAX),
            transcript,
            form,
            tag: attention.tag,
            agent_ids: path.agent_ids,
            transfers: path.transfers,
            // Computed by history.
            first_response_time: None,
            waiting_seconds: 0,
            handling_seconds: 0,
        };
        self.clients
            .history()
            .record_attention(history_pb::RecordAttentionRequest {
                record: Some(record),
            })
            .await?;
        Ok(())
    }

    /// Fails (to be tried again) while a customer message the queue joined to
    /// the attention is not in its transcript yet: messaging records a
    /// message's attention only after the queue answered, so one that joined
    /// just before the finish can still be unlisted, and history keeps the
    /// first record it gets.
    async fn check_complete(
        &self,
        attention_id: Uuid,
        transcript: &[messaging_pb::Message],
    ) -> Result<(), Error> {
        let joined = attention_message::Entity::find()
            .filter(attention_message::Column::AttentionId.eq(attention_id))
            .filter(attention_message::Column::Direction.eq(Direction::Inbound.as_str()))
            .all(&self.db)
            .await?;
        match joined
            .iter()
            .find(|link| !transcript.iter().any(|m| m.id == link.message_id))
        {
            Some(link) => Err(Error::FailedPrecondition(format!(
                "message {} of attention {attention_id} is not in messaging's transcript yet",
                link.message_id
            ))),
            None => Ok(()),
        }
    }

    /// Every message of the attention, oldest first.
    async fn transcript(&self, attention_id: &str) -> Result<Vec<messaging_pb::Message>, Error> {
        let mut messages = all_messages(&mut self.clients.messaging(), attention_id).await?;
        messages.reverse();
        Ok(messages)
    }

    async fn advance(&self, event_id: i64) -> Result<(), Error> {
        outbox_offset::Entity::insert(outbox_offset::ActiveModel {
            consumer: Set(CONSUMER.to_owned()),
            last_event_id: Set(event_id),
        })
        .on_conflict(
            OnConflict::column(outbox_offset::Column::Consumer)
                .update_column(outbox_offset::Column::LastEventId)
                .to_owned(),
        )
        .exec(&self.db)
        .await?;
        Ok(())
    }
}

/// Who held an attention and how it changed hands, read from its events.
#[derive(Debug, Default, PartialEq)]
struct Path {
    first_open: Option<prost_types::Timestamp>,
    agent_ids: Vec<String>,
    transfers: Vec<history_pb::Transfer>,
}

impl Path {
    fn of(events: &[outbox::Model]) -> Self {
        let mut path = Self::default();
        let text = |payload: &serde_json::Value, key: &str| {
            payload[key].as_str().unwrap_or_default().to_owned()
        };
        for e in events {
            let holder = match e.kind.as_str() {
                event::OPENED => {
                    let time = timestamp(e.created_at);
                    path.first_open.get_or_insert(time);
                    text(&e.payload, "actor")
                }
                event::TRANSFERRED => {
                    path.transfers.push(history_pb::Transfer {
                        from_agent_id: text(&e.payload, "from_agent_id"),
                        to_agent_id: text(&e.payload, "to_agent_id"),
                        from_campaign_id: text(&e.payload, "from_campaign_id"),
                        to_campaign_id: text(&e.payload, "to_campaign_id"),
                        note: text(&e.payload, "note"),
                        time: Some(timestamp(e.created_at)),
                    });
                    text(&e.payload, "to_agent_id")
                }
                _ => continue,
            };
            if !holder.is_empty() && path.agent_ids.last() != Some(&holder) {
                path.agent_ids.push(holder);
            }
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, kind: &str, payload: serde_json::Value) -> outbox::Model {
        outbox::Model {
            id,
            attention_id: uuid::Uuid::nil(),
            kind: kind.into(),
            payload,
            created_at: chrono::DateTime::from_timestamp(1_000 + id, 0).unwrap_or_default(),
            position: Some(id),
            holder: None,
        }
    }

    #[test]
    fn the_path_lists_holders_in_order_and_every_transfer() {
        let events = [
            event(
                1,
                event::QUEUED,
                serde_json::json!({"actor": "5491100000000"}),
            ),
            event(2, event::OPENED, serde_json::json!({"actor": "ana"})),
            event(
                3,
                event::TRANSFERRED,
                serde_json::json!({
                    "from_agent_id": "ana", "to_agent_id": "luis", "note": "descuento"
                }),
            ),
            event(
                4,
                event::TRANSFERRED,
                serde_json::json!({
                    "from_agent_id": "luis", "from_campaign_id": "ventas",
                    "to_campaign_id": "soporte", "note": "técnico"
                }),
            ),
            event(5, event::OPENED, serde_json::json!({"actor": "marta"})),
            event(6, event::FINISHED, serde_json::json!({"actor": "marta"})),
        ];
        let path = Path::of(&events);
        assert_eq!(path.agent_ids, ["ana", "luis", "marta"]);
        assert_eq!(path.first_open.map(|t| t.seconds), Some(1_002));
        let notes: Vec<_> = path
            .transfers
            .iter()
            .map(|t| {
                (
                    t.to_agent_id.as_str(),
                    t.to_campaign_id.as_str(),
                    t.note.as_str(),
                )
            })
            .collect();
        assert_eq!(
            notes,
            [("luis", "", "descuento"), ("", "soporte", "técnico")]
        );
    }
}
