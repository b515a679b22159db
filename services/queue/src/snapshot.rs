//! The supervisor's live view of a campaign: the queue and every agent's
//! presence and load, read in one transaction so the numbers agree.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use atenciones_proto::queue::v1 as pb;

use crate::admin::allow;
use crate::attention::State;
use crate::entity::{agent, attention, campaign, campaign_agent};
use crate::error::Error;
use crate::presence::{self, PresenceState};
use crate::queue::{Queue, capacity};

impl Queue {
    pub async fn snapshot(
        &self,
        actor: &str,
        campaign_id: &str,
    ) -> Result<pb::CampaignSnapshot, Error> {
        let supervised = self.supervised(actor).await?;
        let txn = self.db.begin().await?;
        campaign::Entity::find_by_id(campaign_id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("campaign {campaign_id}")))?;
        allow(&supervised, [campaign_id])?;
        let now = Utc::now();
        let live = attention::Entity::find()
            .filter(attention::Column::CampaignId.eq(campaign_id))
            .filter(attention::Column::State.ne(State::Finished.as_str()))
            .all(&txn)
            .await?;
        let members = campaign_agent::Entity::find()
            .filter(campaign_agent::Column::CampaignId.eq(campaign_id))
            .all(&txn)
            .await?;
        let agents = agent::Entity::find()
            .filter(agent::Column::Id.is_in(members.iter().map(|m| m.agent_id.clone())))
            .order_by_asc(agent::Column::Id)
            .all(&txn)
            .await?;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let in_state = |state: State| live.iter().filter(move |a| a.state == state.as_str());
        let waiting: Vec<_> = in_state(State::Queued)
            .chain(in_state(State::Offered))
            .collect();
        let longest_wait = waiting
            .iter()
            .filter_map(|a| a.queued_at)
            .min()
            .map_or(0, |oldest| (now - oldest).num_seconds().max(0));
        let mut open_by_agent: HashMap<&str, usize> = HashMap::new();
        let mut offered_by_agent: HashMap<&str, usize> = HashMap::new();
        for a in &live {
            if a.state == State::Open.as_str() {
                *open_by_agent
                    .entry(a.agent_id.as_deref().unwrap_or_default())
                    .or_default() += 1;
            }
            if let Some(to) = a
                .offered_to
                .as_deref()
                .filter(|_| a.state == State::Offered.as_str())
            {
                *offered_by_agent.entry(to).or_default() += 1;
            }
        }
        let mut snapshot = pb::CampaignSnapshot {
            campaign_id: campaign_id.to_owned(),
            snapshot_time: Some(atenciones_proto::time::timestamp(now)),
            queued_count: count(in_state(State::Queued).count()),
            offered_count: count(in_state(State::Offered).count()),
            open_count: count(in_state(State::Open).count()),
            longest_wait_seconds: u32::try_from(longest_wait).unwrap_or(u32::MAX),
            out_of_hours_count: count(waiting.iter().filter(|a| a.out_of_hours).count()),
            ..Default::default()
        };
        for agent in &agents {
            let connected = self.gone_since(agent, now).is_none();
            match (PresenceState::parse(&agent.presence), connected) {
                (Some(PresenceState::Available), true) => snapshot.agents_available += 1,
                (Some(PresenceState::Paused), true) => snapshot.agents_paused += 1,
                _ => snapshot.agents_offline += 1,
            }
            snapshot.agents.push(pb::AgentLoad {
                agent_id: agent.id.clone(),
                name: agent.name.clone(),
                presence: Some(presence::to_proto(agent)),
                connected,
                open_count: count(open_by_agent.get(agent.id.as_str()).copied().unwrap_or(0)),
                offered_count: count(
                    offered_by_agent
                        .get(agent.id.as_str())
                        .copied()
                        .unwrap_or(0),
                ),
                capacity: u32::try_from(capacity(&txn, campaign_id, &agent.id).await?)
                    .unwrap_or(u32::MAX),
            });
        }
        txn.commit().await?;
        Ok(snapshot)
    }
}
