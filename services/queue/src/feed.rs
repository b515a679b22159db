//! The event feed: the outbox in commit order, the source of the gateway's
//! live event stream.
//!
//! Outbox ids are handed out when a row is inserted, so an event with a
//! smaller id can become visible after one with a larger id. Readers page by
//! `position` instead, which a sequencing step hands out only to committed
//! events, one sequencing transaction at a time (a PostgreSQL advisory lock;
//! SQLite has one writer): positions grow in the order readers can see them,
//! so resuming after the last position seen misses and repeats nothing,
//! whichever replica wrote or reads.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, TransactionTrait,
};
use uuid::Uuid;

use atenciones_proto::queue::v1 as pb;

use crate::entity::{attention, outbox};
use crate::error::Error;
use crate::queue::Queue;

const MAX_EVENTS: u64 = 1000;
/// Serializes sequencing transactions across replicas on PostgreSQL.
const SEQUENCER_LOCK: i64 = 0x0061_7465_6e63_6961;
/// Numbers the committed events that have no position, after the last one.
const SEQUENCE: &str = "UPDATE queue_outbox SET position = numbered.position \
     FROM (SELECT id, (SELECT COALESCE(MAX(position), 0) FROM queue_outbox) \
                      + ROW_NUMBER() OVER (ORDER BY id) AS position \
           FROM queue_outbox WHERE position IS NULL) AS numbered \
     WHERE queue_outbox.id = numbered.id";

impl Queue {
    /// Hands positions to every committed event without one.
    async fn sequence(&self) -> Result<(), Error> {
        let txn = self.db.begin().await?;
        let backend = txn.get_database_backend();
        if backend == DatabaseBackend::Postgres {
            txn.execute_raw(Statement::from_string(
                backend,
                format!("SELECT pg_advisory_xact_lock({SEQUENCER_LOCK})"),
            ))
            .await?;
        }
        txn.execute_raw(Statement::from_string(backend, SEQUENCE))
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Events after `after` in commit order (every event committed before
    /// this call included), and the last position handed out.
    pub async fn events(&self, after: i64, limit: u32) -> Result<(Vec<pb::Event>, i64), Error> {
        self.sequence().await?;
        let limit = match u64::from(limit) {
            0 => 100,
            n => n.min(MAX_EVENTS),
        };
        let head: Option<i64> = outbox::Entity::find()
            .select_only()
            .column_as(outbox::Column::Position.max(), "head")
            .into_tuple()
            .one(&self.db)
            .await?
            .flatten();
        let events = outbox::Entity::find()
            .filter(outbox::Column::Position.gt(after))
            .order_by_asc(outbox::Column::Position)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids: Vec<Uuid> = events
            .iter()
            .map(|e| e.attention_id)
            .filter(|id| !id.is_nil())
            .collect();
        let campaigns: HashMap<Uuid, String> = attention::Entity::find()
            .select_only()
            .column(attention::Column::Id)
            .column(attention::Column::CampaignId)
            .filter(attention::Column::Id.is_in(ids))
            .into_tuple()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        let events = events
            .into_iter()
            .map(|e| pb::Event {
                id: e.id,
                kind: e.kind,
                attention_id: if e.attention_id.is_nil() {
                    String::new()
                } else {
                    e.attention_id.to_string()
                },
                campaign_id: campaigns.get(&e.attention_id).cloned().unwrap_or_default(),
                payload_json: e.payload.to_string(),
                create_time: Some(atenciones_proto::time::timestamp(e.created_at)),
                position: e.position.unwrap_or_default(),
            })
            .collect();
        Ok((events, head.unwrap_or_default()))
    }
}
