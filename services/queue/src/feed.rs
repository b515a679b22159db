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

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use atenciones_proto::queue::v1 as pb;

use crate::attention::State;
use crate::entity::{attention, feed_horizon, outbox, outbox_offset};
use crate::error::Error;
use crate::handoff;
use crate::queue::Queue;

const MAX_EVENTS: u64 = 1000;
/// The one row of `queue_feed_horizon`.
const HORIZON: i32 = 1;
/// Serializes sequencing transactions across replicas on PostgreSQL.
const SEQUENCER_LOCK: i64 = 0x0061_7465_6e63_6961;
/// Numbers the committed events that have no position, after the last one
/// handed out: the highest position in the feed, or the horizon when
/// pruning removed it (positions are never reused).
const SEQUENCE: &str = "UPDATE queue_outbox SET position = numbered.position \
     FROM (SELECT id, (SELECT CASE WHEN m > h THEN m ELSE h END \
                       FROM (SELECT COALESCE(MAX(position), 0) AS m FROM queue_outbox) AS kept, \
                            (SELECT COALESCE(MAX(pruned_position), 0) AS h \
                             FROM queue_feed_horizon) AS pruned) \
                      + ROW_NUMBER() OVER (ORDER BY id) AS position \
           FROM queue_outbox WHERE position IS NULL) AS numbered \
     WHERE queue_outbox.id = numbered.id";

impl Queue {
    /// Removes events older than `retention` that history already has, and
    /// moves the horizon (the highest position removed) past them. Events of
    /// attentions not finished yet stay: history reads an attention's whole
    /// life when it finishes. Returns how many it removed.
    pub async fn prune_feed(&self, retention: Duration) -> Result<u64, Error> {
        let delivered = outbox_offset::Entity::find_by_id(handoff::CONSUMER)
            .one(&self.db)
            .await?
            .map_or(0, |o| o.last_event_id);
        let cutoff = Utc::now() - TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
        let unfinished = attention::Entity::find()
            .select_only()
            .column(attention::Column::Id)
            .filter(attention::Column::State.ne(State::Finished.as_str()))
            .into_query();
        let removable = Condition::all()
            .add(outbox::Column::Id.lte(delivered))
            .add(outbox::Column::AttentionId.not_in_subquery(unfinished));
        let old = removable
            .clone()
            .add(outbox::Column::CreatedAt.lt(cutoff))
            .add(outbox::Column::Position.is_not_null());
        let newest_old: Option<i64> = outbox::Entity::find()
            .select_only()
            .column_as(outbox::Column::Position.max(), "newest")
            .filter(old)
            .into_tuple()
            .one(&self.db)
            .await?
            .flatten();
        let Some(newest_old) = newest_old else {
            return Ok(0);
        };
        let txn = self.db.begin().await?;
        let horizon = feed_horizon::Entity::find_by_id(HORIZON)
            .one(&txn)
            .await?
            .map_or(0, |h| h.pruned_position)
            .max(newest_old);
        feed_horizon::Entity::insert(feed_horizon::ActiveModel {
            id: Set(HORIZON),
            pruned_position: Set(horizon),
        })
        .on_conflict(
            OnConflict::column(feed_horizon::Column::Id)
                .update_column(feed_horizon::Column::PrunedPosition)
                .to_owned(),
        )
        .exec(&txn)
        .await?;
        // Events history does not have yet, and those of unfinished
        // attentions, stay until a later pruning.
        let removed = outbox::Entity::delete_many()
            .filter(outbox::Column::Position.lte(horizon))
            .filter(removable)
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(removed)
    }

    /// Hands positions to every committed event without one.
    /// Every live stream reads the feed several times a second, so the
    /// write transaction is taken only when an event is waiting for one (a
    /// read through the index of unsequenced events).
    async fn sequence(&self) -> Result<(), Error> {
        let waiting = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Id)
            .filter(outbox::Column::Position.is_null())
            .into_tuple::<i64>()
            .one(&self.db)
            .await?;
        if waiting.is_none() {
            return Ok(());
        }
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
    /// this call included), and the last position handed out. A cursor older
    /// than what the feed keeps is FAILED_PRECONDITION: the reader must
    /// reload and read from now.
    pub async fn events(&self, after: i64, limit: u32) -> Result<(Vec<pb::Event>, i64), Error> {
        let horizon = feed_horizon::Entity::find_by_id(HORIZON)
            .one(&self.db)
            .await?
            .map_or(0, |h| h.pruned_position);
        if after < horizon {
            return Err(Error::FailedPrecondition(format!(
                "events up to position {horizon} are no longer kept: reload and read from now"
            )));
        }
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
                holder_agent_id: e.holder.unwrap_or_default(),
            })
            .collect();
        Ok((events, head.unwrap_or_default().max(horizon)))
    }
}

/// Prunes the feed now and then: a quarter of the retention, between a
/// second and ten minutes. Every replica may prune; the horizon only moves
/// forward.
pub async fn prune_periodically(queue: Queue, retention: Duration, shutdown: CancellationToken) {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match queue.prune_feed(retention).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "old events pruned from the feed"),
            Err(error) => tracing::warn!(%error, "pruning the event feed failed"),
        }
    }
}
