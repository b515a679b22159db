//! What happens because time passes: offers lapse, attentions overflow,
//! agents who left lose their attentions after the grace period. Every
//! replica runs the same tick; each change is a conditional move, so two
//! replicas acting on one deadline change it once.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use tokio_util::sync::CancellationToken;

use crate::admin::AssignmentMode;
use crate::attention::{Move, State};
use crate::entity::{agent, attention, campaign};
use crate::error::Error;
use crate::presence::PresenceState;
use crate::queue::{Cause, Queue, transition};

use super::ROUTER;

/// Most deadlines handled per kind and tick; the rest wait for the next.
const BATCH: u64 = 500;

/// Runs the deadlines and a safety-net pass over every queue each tick.
pub struct Router {
    queue: Queue,
    tick: Duration,
}

impl Router {
    pub fn new(queue: Queue, tick: Duration) -> Self {
        Self { queue, tick }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(error) = self.queue.tick().await {
                tracing::warn!(%error, "routing tick failed; retrying at the next");
            }
        }
    }
}

impl Queue {
    /// Handles every deadline that has passed, then serves every automatic
    /// queue (catching anything a failed inline pass or another replica left).
    pub async fn tick(&self) -> Result<(), Error> {
        let now = Utc::now();
        let mut touched = BTreeSet::new();
        touched.extend(self.expire_offers(now).await?);
        touched.extend(self.overflow(now).await?);
        touched.extend(self.orphan(now).await?);
        let automatic = campaign::Entity::find()
            .filter(campaign::Column::Active.eq(true))
            .filter(campaign::Column::AssignmentMode.ne(AssignmentMode::Manual.as_str()))
            .all(&self.db)
            .await?;
        touched.extend(automatic.into_iter().map(|c| c.id));
        self.serve(&touched.into_iter().collect::<Vec<_>>()).await;
        Ok(())
    }

    /// Offers nobody accepted in time go back to the head of their queue.
    /// Returns the campaigns to serve again.
    async fn expire_offers(&self, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let lapsed = attention::Entity::find()
            .filter(attention::Column::State.eq(State::Offered.as_str()))
            .filter(attention::Column::OfferExpiresAt.lt(now))
            .limit(BATCH)
            .all(&self.db)
            .await?;
        let mut campaigns = Vec::new();
        for model in lapsed {
            if self
                .release(&model, Move::Expire, ROUTER, "not accepted in time")
                .await?
            {
                campaigns.push(model.campaign_id);
            }
        }
        Ok(campaigns)
    }

    /// Attentions queued longer than their campaign allows move to the
    /// overflow campaign's queue, or are offered to every agent of their
    /// campaign when it names none. Each overflows once.
    async fn overflow(&self, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let campaigns = campaign::Entity::find()
            .filter(campaign::Column::Active.eq(true))
            .filter(campaign::Column::MaxQueueSeconds.gt(0))
            .all(&self.db)
            .await?;
        let mut touched = Vec::new();
        for campaign in campaigns {
            let limit = now - chrono::Duration::seconds(i64::from(campaign.max_queue_seconds));
            let late = attention::Entity::find()
                .filter(attention::Column::CampaignId.eq(&campaign.id))
                .filter(attention::Column::State.eq(State::Queued.as_str()))
                .filter(attention::Column::Overflowed.eq(false))
                .filter(attention::Column::QueuedAt.lt(limit))
                .limit(BATCH)
                .all(&self.db)
                .await?;
            if late.is_empty() {
                continue;
            }
            let target = match &campaign.overflow_campaign_id {
                Some(id) => campaign::Entity::find_by_id(id)
                    .one(&self.db)
                    .await?
                    .filter(|c| c.active),
                None => None,
            };
            for model in late {
                let txn = self.db.begin().await?;
                let mut update = attention::Entity::update_many()
                    .col_expr(attention::Column::Overflowed, Expr::value(true));
                let (kind, detail) = match &target {
                    Some(target) => {
                        update =
                            update.col_expr(attention::Column::CampaignId, Expr::value(&target.id));
                        (
                            Move::Overflow,
                            serde_json::json!({ "from_campaign_id": campaign.id, "campaign_id": target.id }),
                        )
                    }
                    None => (
                        Move::OverflowToAll,
                        serde_json::json!({ "campaign_id": campaign.id }),
                    ),
                };
                let cause =
                    Cause::new(ROUTER, "waited longer than the campaign allows").with(detail);
                if transition(&txn, model.id, kind, &cause, update).await? {
                    txn.commit().await?;
                    touched.push(target.as_ref().map_or(&campaign.id, |t| &t.id).clone());
                }
            }
        }
        Ok(touched)
    }

    /// Open attentions of agents who logged out or stopped sending heartbeats
    /// return to their queue, flagged orphaned, once the campaign's grace
    /// period has passed. An agent back in time keeps them.
    async fn orphan(&self, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let holders: Vec<String> = attention::Entity::find()
            .select_only()
            .column(attention::Column::AgentId)
            .distinct()
            .filter(attention::Column::State.eq(State::Open.as_str()))
            .into_tuple::<Option<String>>()
            .all(&self.db)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let agents = agent::Entity::find()
            .filter(agent::Column::Id.is_in(holders))
            .all(&self.db)
            .await?;
        let mut touched = Vec::new();
        for agent in agents {
            let Some(gone_since) = self.gone_since(&agent, now) else {
                continue;
            };
            let held = attention::Entity::find()
                .filter(attention::Column::AgentId.eq(&agent.id))
                .filter(attention::Column::State.eq(State::Open.as_str()))
                .all(&self.db)
                .await?;
            for model in held {
                let grace = campaign::Entity::find_by_id(&model.campaign_id)
                    .one(&self.db)
                    .await?
                    .map_or(0, |c| c.orphan_grace_seconds);
                if gone_since + chrono::Duration::seconds(i64::from(grace)) > now {
                    continue;
                }
                let txn = self.db.begin().await?;
                let requeue = attention::Entity::update_many()
                    .col_expr(attention::Column::AgentId, Expr::value(None::<String>))
                    .col_expr(attention::Column::Orphaned, Expr::value(true))
                    .filter(attention::Column::AgentId.eq(&agent.id));
                let cause = Cause::new(ROUTER, "its agent left and did not come back in time")
                    .with(serde_json::json!({ "agent_id": agent.id }));
                if transition(&txn, model.id, Move::Orphan, &cause, requeue).await? {
                    txn.commit().await?;
                    touched.push(model.campaign_id);
                }
            }
        }
        Ok(touched)
    }

    /// When the agent left: logged out, or their client went silent (the
    /// heartbeat timeout after the last one); none while they are here. An
    /// agent whose client never sent a heartbeat is not tracked.
    pub(crate) fn gone_since(
        &self,
        agent: &agent::Model,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if agent.presence == PresenceState::Offline.as_str() {
            return Some(agent.presence_changed_at.unwrap_or(DateTime::UNIX_EPOCH));
        }
        let silent_since = agent.last_seen_at? + self.heartbeat_timeout;
        (silent_since <= now).then_some(silent_since)
    }
}
