//! The router: hands each campaign's queue to its agents by the campaign's
//! assignment mode. A routing pass holds the campaign's row lock, so passes
//! of one campaign run one at a time across every replica; each offer is a
//! conditional move, so no attention is offered twice. Nothing routing needs
//! lives only in memory.

mod choice;
mod deadlines;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use crate::admin::AssignmentMode;
use crate::attention::{Move, State};
use crate::entity::{agent, attention, campaign, campaign_agent, offer_refusal};
use crate::error::Error;
use crate::presence::PresenceState;
use crate::queue::{Cause, Queue, parse_id, transition};

pub use choice::Candidate;
pub use deadlines::Router;

/// Routing passes asked for and done, per campaign, in this process.
#[derive(Default)]
pub struct Passes(std::sync::Mutex<HashMap<String, Arc<CampaignPasses>>>);

#[derive(Default)]
struct CampaignPasses {
    requested: AtomicU64,
    /// The last request the latest finished pass covered; held while a pass runs.
    completed: tokio::sync::Mutex<u64>,
}

impl Passes {
    fn of(&self, campaign_id: &str) -> Arc<CampaignPasses> {
        let mut passes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        passes.entry(campaign_id.to_owned()).or_default().clone()
    }
}

/// Who the router acts as in the events it writes.
const ROUTER: &str = "router";

impl Queue {
    /// Serves the queues of `campaigns` now. A failure is logged, not
    /// returned: the attentions stay safely queued and the router's next tick
    /// serves them.
    pub async fn serve(&self, campaigns: &[impl AsRef<str> + Sync]) {
        for campaign_id in campaigns {
            let campaign_id = campaign_id.as_ref();
            if let Err(error) = self.route_coalesced(campaign_id).await {
                tracing::warn!(campaign_id, %error, "routing failed; the next tick retries");
            }
        }
    }

    /// A routing pass that started after this call was made, run by this call
    /// or by a concurrent one. When many agents free slots at once, callers
    /// waiting for a pass share the next one instead of queueing one each on
    /// the campaign's lock. Only an optimisation within this process: every
    /// pass reads the database, and replicas still serialize on the lock.
    async fn route_coalesced(&self, campaign_id: &str) -> Result<(), Error> {
        let pass = self.passes.of(campaign_id);
        let mine = pass.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut completed = pass.completed.lock().await;
        if *completed >= mine {
            return Ok(());
        }
        // Every request counted so far was made after its caller committed,
        // so the pass about to start sees what each of them changed.
        let covers = pass.requested.load(Ordering::SeqCst);
        self.route(campaign_id).await?;
        *completed = covers;
        Ok(())
    }

    /// One routing pass over the campaign's queue: waiting attentions, VIP
    /// first and then oldest first, are offered to agents with room by the
    /// campaign's mode (or all at once to everyone, for offer to all).
    /// Returns how many offers it made.
    pub async fn route(&self, campaign_id: &str) -> Result<usize, Error> {
        let txn = self.db.begin().await?;
        // The campaign's row lock (a no-op update: a row lock on PostgreSQL,
        // the writer lock on SQLite) serializes passes across replicas.
        let locked = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Active,
                Expr::col(campaign::Column::Active),
            )
            .filter(campaign::Column::Id.eq(campaign_id))
            .filter(campaign::Column::Active.eq(true))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        let Some(campaign) = campaign::Entity::find_by_id(campaign_id)
            .one(&txn)
            .await?
            .filter(|_| locked)
        else {
            return Ok(0);
        };
        let now = Utc::now();
        let offers = match AssignmentMode::parse(&campaign.assignment_mode) {
            Some(AssignmentMode::OfferToAll) => offer_to_all(&txn, &campaign.id).await?,
            Some(
                mode @ (AssignmentMode::LeastBusy
                | AssignmentMode::RoundRobin
                | AssignmentMode::Random),
            ) => {
                let candidates = self.candidates(&txn, &campaign, now).await?;
                offer_one_by_one(&txn, &campaign, mode, candidates, now).await?
            }
            Some(AssignmentMode::Manual) | None => 0,
        };
        txn.commit().await?;
        Ok(offers)
    }

    /// Declines an offer made to the agent: the attention goes back to the head
    /// of its queue and the next agent gets it.
    pub async fn decline(&self, attention_id: &str, agent_id: &str) -> Result<(), Error> {
        let id = parse_id(attention_id)?;
        let model = self.find(id).await?;
        let offered = model.state == State::Offered.as_str();
        if offered && model.offered_to.is_none() {
            return Err(Error::FailedPrecondition(
                "the attention is offered to every agent: leave it for another".into(),
            ));
        }
        if !offered || model.offered_to.as_deref() != Some(agent_id) {
            return Err(Error::FailedPrecondition(
                "the attention is not offered to you".into(),
            ));
        }
        if !self
            .release(&model, Move::Decline, agent_id, "declined by the agent")
            .await?
        {
            return Err(Error::FailedPrecondition(
                "the attention is not offered to you".into(),
            ));
        }
        self.serve(&[model.campaign_id.as_str()]).await;
        Ok(())
    }

    /// Takes back every offer pending to an agent who paused or logged out,
    /// and passes them on.
    pub async fn hand_back_offers(&self, agent_id: &str) -> Result<(), Error> {
        let pending = attention::Entity::find()
            .filter(attention::Column::OfferedTo.eq(agent_id))
            .filter(attention::Column::State.eq(State::Offered.as_str()))
            .all(&self.db)
            .await?;
        let mut campaigns = HashSet::new();
        for model in pending {
            let reason = "the agent paused or logged out";
            if self
                .release(&model, Move::Decline, agent_id, reason)
                .await?
            {
                campaigns.insert(model.campaign_id);
            }
        }
        self.serve(&campaigns.into_iter().collect::<Vec<_>>()).await;
        Ok(())
    }

    /// Takes an offer back from the agent it was made to (declined, lapsed, or
    /// the agent paused): the attention is queued again with its place (its
    /// queue time is kept), and the agent is skipped for it for a while.
    /// False when the offer was no longer that agent's.
    async fn release(
        &self,
        model: &attention::Model,
        kind: Move,
        actor: &str,
        reason: &str,
    ) -> Result<bool, Error> {
        let Some(agent_id) = model.offered_to.as_deref() else {
            return Ok(false);
        };
        let txn = self.db.begin().await?;
        let requeue = attention::Entity::update_many()
            .col_expr(attention::Column::OfferedTo, Expr::value(None::<String>))
            .col_expr(
                attention::Column::OfferExpiresAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(attention::Column::OfferedTo.eq(agent_id));
        let cause = Cause::new(actor, reason).with(serde_json::json!({ "agent_id": agent_id }));
        if !transition(&txn, model.id, kind, &cause, requeue).await? {
            return Ok(false);
        }
        refuse(&txn, model.id, agent_id).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Agents of the campaign who may get offers now (available, with a live
    /// client), with their load and capacity.
    async fn candidates(
        &self,
        txn: &impl ConnectionTrait,
        campaign: &campaign::Model,
        now: DateTime<Utc>,
    ) -> Result<Vec<Candidate>, Error> {
        // Each member's capacity here: their override, else the campaign's.
        let capacities: HashMap<String, u64> = campaign_agent::Entity::find()
            .filter(campaign_agent::Column::CampaignId.eq(&campaign.id))
            .all(txn)
            .await?
            .into_iter()
            .map(|m| {
                let capacity = m.capacity.unwrap_or(campaign.default_agent_capacity);
                (m.agent_id, u64::try_from(capacity).unwrap_or(0))
            })
            .collect();
        let agents = agent::Entity::find()
            .filter(agent::Column::Id.is_in(capacities.keys().cloned()))
            .filter(agent::Column::Presence.eq(PresenceState::Available.as_str()))
            .filter(agent::Column::LastSeenAt.gte(now - self.heartbeat_timeout))
            .order_by_asc(agent::Column::Id)
            .all(txn)
            .await?;
        let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
        let loads = loads(txn, &ids).await?;
        Ok(agents
            .into_iter()
            .map(|agent| Candidate {
                load: loads.get(&agent.id).copied().unwrap_or(0),
                capacity: capacities.get(&agent.id).copied().unwrap_or(0),
                id: agent.id,
                last_offered_at: agent.last_offered_at,
            })
            .collect())
    }
}

/// Offers every waiting attention of the campaign to all its agents.
async fn offer_to_all(txn: &impl ConnectionTrait, campaign_id: &str) -> Result<usize, Error> {
    let waiting = waiting(txn, campaign_id, 0, None).await?;
    let mut offers = 0;
    for model in waiting {
        let offer = attention::Entity::update_many()
            .col_expr(attention::Column::OfferedTo, Expr::value(None::<String>));
        let cause = Cause::new(ROUTER, "offered to every agent");
        if transition(txn, model.id, Move::Offer, &cause, offer).await? {
            offers += 1;
        }
    }
    Ok(offers)
}

/// Offers waiting attentions in serving order, each to the agent the mode
/// chooses, until no agent has room.
async fn offer_one_by_one(
    txn: &impl ConnectionTrait,
    campaign: &campaign::Model,
    mode: AssignmentMode,
    mut candidates: Vec<Candidate>,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let room: u64 = candidates
        .iter()
        .map(|c| c.capacity.saturating_sub(c.load))
        .sum();
    if room == 0 {
        return Ok(0);
    }
    // A refusal keeps the agent from being offered the attention again for
    // one accept timeout: long enough to reach someone else, short enough
    // that an attention only one agent can take is not left waiting forever.
    let accept = chrono::Duration::seconds(i64::from(campaign.accept_timeout_seconds));
    let mut room = room;
    let mut offers = 0;
    // Pages in serving order. Offered attentions leave the queue; those
    // nobody with room may take (they refused them) stay, and the next page
    // starts after them.
    let mut skipped = 0;
    while room > 0 {
        let page = waiting(txn, &campaign.id, skipped, Some(room)).await?;
        let last_page = (page.len() as u64) < room;
        skipped += page.len() as u64;
        let refusals: HashSet<(Uuid, String)> = offer_refusal::Entity::find()
            .filter(offer_refusal::Column::AttentionId.is_in(page.iter().map(|a| a.id)))
            .filter(offer_refusal::Column::CreatedAt.gt(now - accept))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| (r.attention_id, r.agent_id))
            .collect();
        for model in page {
            let refused = |agent: &str| refusals.contains(&(model.id, agent.to_owned()));
            let Some(i) = choice::choose(mode, &candidates, refused, |n| fastrand::usize(..n))
            else {
                continue;
            };
            let Some(chosen) = candidates.get_mut(i) else {
                continue;
            };
            let offer = attention::Entity::update_many()
                .col_expr(attention::Column::OfferedTo, Expr::value(chosen.id.clone()))
                .col_expr(attention::Column::OfferExpiresAt, Expr::value(now + accept));
            let cause = Cause::new(ROUTER, mode.as_str())
                .with(serde_json::json!({ "agent_id": chosen.id }));
            if transition(txn, model.id, Move::Offer, &cause, offer).await? {
                skipped -= 1;
                agent::Entity::update_many()
                    .col_expr(agent::Column::LastOfferedAt, Expr::value(now))
                    .filter(agent::Column::Id.eq(&chosen.id))
                    .exec(txn)
                    .await?;
                chosen.load += 1;
                chosen.last_offered_at = Some(now);
                offers += 1;
                room -= 1;
            }
        }
        if last_page {
            break;
        }
    }
    Ok(offers)
}

/// The campaign's queued attentions in serving order: VIP first, then the
/// longest waiting.
async fn waiting(
    txn: &impl ConnectionTrait,
    campaign_id: &str,
    offset: u64,
    limit: Option<u64>,
) -> Result<Vec<attention::Model>, Error> {
    Ok(attention::Entity::find()
        .filter(attention::Column::CampaignId.eq(campaign_id))
        .filter(attention::Column::State.eq(State::Queued.as_str()))
        .order_by_desc(attention::Column::Priority)
        .order_by_asc(attention::Column::QueuedAt)
        .order_by_asc(attention::Column::Id)
        // SQLite has no OFFSET without LIMIT.
        .offset(Some(offset).filter(|o| *o > 0))
        .limit(limit)
        .all(txn)
        .await?)
}

/// How many attentions in `state` each of `agents` has in `column`.
/// How many attentions each of `agents` holds open or is offered. One
/// statement, so it sees one snapshot: counted in two, an offer accepted
/// between them (offered → open) would count for neither and the agent
/// would get one more than their capacity.
async fn loads(
    txn: &impl ConnectionTrait,
    agents: &[String],
) -> Result<HashMap<String, u64>, Error> {
    use sea_orm::Condition;
    use sea_orm::sea_query::ExprTrait as _;
    let rows: Vec<(String, Option<String>, Option<String>)> = attention::Entity::find()
        .select_only()
        .column(attention::Column::State)
        .column(attention::Column::AgentId)
        .column(attention::Column::OfferedTo)
        .filter(
            Condition::any()
                .add(
                    attention::Column::State
                        .eq(State::Open.as_str())
                        .and(attention::Column::AgentId.is_in(agents.to_vec())),
                )
                .add(
                    attention::Column::State
                        .eq(State::Offered.as_str())
                        .and(attention::Column::OfferedTo.is_in(agents.to_vec())),
                ),
        )
        .into_tuple()
        .all(txn)
        .await?;
    let mut loads = HashMap::new();
    for (state, holder, offered_to) in rows {
        let agent = if state == State::Open.as_str() {
            holder
        } else {
            offered_to
        };
        if let Some(agent) = agent {
            *loads.entry(agent).or_insert(0) += 1;
        }
    }
    Ok(loads)
}

/// Records that the agent turned the attention down (or let it lapse).
async fn refuse(
    txn: &impl ConnectionTrait,
    attention_id: Uuid,
    agent_id: &str,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ActiveValue::Set;
    use sea_orm::sea_query::OnConflict;
    offer_refusal::Entity::insert(offer_refusal::ActiveModel {
        attention_id: Set(attention_id),
        agent_id: Set(agent_id.to_owned()),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([
            offer_refusal::Column::AttentionId,
            offer_refusal::Column::AgentId,
        ])
        .update_column(offer_refusal::Column::CreatedAt)
        .to_owned(),
    )
    .exec(txn)
    .await
    .map(|_| ())
}
