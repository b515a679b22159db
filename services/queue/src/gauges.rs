//! The queues as Prometheus gauges: unfinished attentions by campaign and
//! state (`atenciones_attentions`: queued is the queue's depth, open what
//! agents hold) and the longest wait of a queued one
//! (`atenciones_queue_longest_wait_seconds`). Read from the database at
//! every routing tick by every replica, so each reports the same numbers:
//! take the max across replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use tokio_util::sync::CancellationToken;

use crate::attention::State;
use crate::entity::attention as attentions;
use crate::error::Error;
use crate::queue::Queue;

/// Refreshes the gauges `every` until `shutdown`.
pub async fn refresh_periodically(queue: Queue, every: Duration, shutdown: CancellationToken) {
    let mut shown = Shown::default();
    loop {
        if let Err(error) = shown.refresh(&queue).await {
            tracing::warn!(%error, "queue gauges not refreshed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// The series shown so far: one that has no attentions any more shows 0.
#[derive(Default)]
struct Shown {
    states: BTreeSet<(String, String)>,
    campaigns: BTreeSet<String>,
}

impl Shown {
    async fn refresh(&mut self, queue: &Queue) -> Result<(), Error> {
        let rows: Vec<(String, String, i64, Option<DateTime<Utc>>)> = attentions::Entity::find()
            .select_only()
            .column(attentions::Column::CampaignId)
            .column(attentions::Column::State)
            .column_as(attentions::Column::Id.count(), "count")
            .column_as(attentions::Column::QueuedAt.min(), "oldest")
            .filter(attentions::Column::State.ne(State::Finished.as_str()))
            .group_by(attentions::Column::CampaignId)
            .group_by(attentions::Column::State)
            .into_tuple()
            .all(&queue.db)
            .await?;
        let now = Utc::now();
        let mut counts = BTreeMap::new();
        let mut longest = BTreeMap::new();
        for (campaign, state, count, oldest) in rows {
            if state == State::Queued.as_str() {
                let waited = oldest.map_or(0, |at| (now - at).num_seconds().max(0));
                longest.insert(campaign.clone(), waited);
            }
            counts.insert((campaign, state), count);
        }
        self.states.extend(counts.keys().cloned());
        self.campaigns
            .extend(counts.keys().map(|(campaign, _)| campaign.clone()));
        for key in &self.states {
            let (campaign, state) = key.clone();
            let count = counts.get(key).copied().unwrap_or(0);
            metrics::gauge!("atenciones_attentions", "campaign" => campaign, "state" => state)
                .set(count as f64);
        }
        for campaign in &self.campaigns {
            let waited = longest.get(campaign).copied().unwrap_or(0);
            metrics::gauge!("atenciones_queue_longest_wait_seconds", "campaign" => campaign.clone())
                .set(waited as f64);
        }
        Ok(())
    }
}
