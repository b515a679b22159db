//! Agent presence (available, paused with a reason, offline) and the event
//! feed that announces it along with attention transitions.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use atenciones_proto::queue::v1 as pb;

use crate::attention::event;
use crate::entity::agent;
use crate::error::Error;
use crate::queue::{Queue, record_event};

/// Longest pause reason kept.
const MAX_REASON: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceState {
    Available,
    Paused,
    Offline,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Paused => "paused",
            Self::Offline => "offline",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "available" => Some(Self::Available),
            "paused" => Some(Self::Paused),
            "offline" => Some(Self::Offline),
            _ => None,
        }
    }

    fn to_proto(self) -> pb::PresenceState {
        match self {
            Self::Available => pb::PresenceState::Available,
            Self::Paused => pb::PresenceState::Paused,
            Self::Offline => pb::PresenceState::Offline,
        }
    }
}

/// A presence an agent may set: a pause always says why, and only a pause
/// carries a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    state: PresenceState,
    pause_reason: Option<String>,
}

impl Presence {
    pub fn from_proto(state: i32, pause_reason: String) -> Result<Self, Error> {
        let state = match pb::PresenceState::try_from(state) {
            Ok(pb::PresenceState::Available) => PresenceState::Available,
            Ok(pb::PresenceState::Paused) => PresenceState::Paused,
            Ok(pb::PresenceState::Offline) => PresenceState::Offline,
            _ => {
                return Err(Error::invalid(
                    "state",
                    "must be AVAILABLE, PAUSED or OFFLINE",
                ));
            }
        };
        let reason = pause_reason.trim();
        match state {
            PresenceState::Paused if reason.is_empty() => {
                Err(Error::invalid("pause_reason", "required when pausing"))
            }
            PresenceState::Paused if reason.chars().count() > MAX_REASON => {
                Err(Error::invalid("pause_reason", "at most 200 characters"))
            }
            PresenceState::Paused => Ok(Self {
                state,
                pause_reason: Some(reason.to_owned()),
            }),
            _ => Ok(Self {
                state,
                pause_reason: None,
            }),
        }
    }
}

pub fn to_proto(agent: &agent::Model) -> pb::Presence {
    pb::Presence {
        state: PresenceState::parse(&agent.presence)
            .map_or(pb::PresenceState::Unspecified, PresenceState::to_proto)
            .into(),
        pause_reason: agent.pause_reason.clone().unwrap_or_default(),
        change_time: agent
            .presence_changed_at
            .map(atenciones_proto::time::timestamp),
    }
}

impl Queue {
    /// Sets the agent's presence and announces the change in the same
    /// transaction. Logging in counts as a heartbeat. An agent who pauses or
    /// logs out hands back pending offers; one who becomes available is
    /// served at once.
    pub async fn set_presence(
        &self,
        agent_id: &str,
        presence: Presence,
    ) -> Result<pb::Presence, Error> {
        let txn = self.db.begin().await?;
        let before = agent::Entity::find_by_id(agent_id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent {agent_id}")))?;
        agent::Entity::update_many()
            .col_expr(
                agent::Column::Presence,
                Expr::value(presence.state.as_str()),
            )
            .col_expr(
                agent::Column::PauseReason,
                Expr::value(presence.pause_reason.clone()),
            )
            .col_expr(agent::Column::PresenceChangedAt, Expr::value(Utc::now()))
            .col_expr(agent::Column::LastSeenAt, Expr::value(Utc::now()))
            .filter(agent::Column::Id.eq(agent_id))
            .exec(&txn)
            .await?;
        // Agent events carry the nil attention id: the outbox predates them.
        let payload = serde_json::json!({
            "actor": agent_id,
            "agent_id": agent_id,
            "reason": presence.pause_reason,
            "from": before.presence,
            "to": presence.state.as_str(),
        });
        record_event(&txn, Uuid::nil(), event::PRESENCE, payload).await?;
        txn.commit().await?;
        if presence.state == PresenceState::Available {
            let campaigns = self.campaigns_of(agent_id).await?;
            self.serve(&campaigns).await;
        } else {
            self.hand_back_offers(agent_id).await?;
        }
        self.presence(agent_id).await
    }

    /// Records that the agent's client is alive. An agent coming back after
    /// going silent is served at once.
    pub async fn heartbeat(&self, agent_id: &str) -> Result<pb::Presence, Error> {
        let now = Utc::now();
        let agent = agent::Entity::find_by_id(agent_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent {agent_id}")))?;
        agent::Entity::update_many()
            .col_expr(agent::Column::LastSeenAt, Expr::value(now))
            .filter(agent::Column::Id.eq(agent_id))
            .exec(&self.db)
            .await?;
        let was_silent = agent
            .last_seen_at
            .is_none_or(|seen| seen + self.heartbeat_timeout <= now);
        if was_silent && agent.presence == PresenceState::Available.as_str() {
            let campaigns = self.campaigns_of(agent_id).await?;
            self.serve(&campaigns).await;
        }
        self.presence(agent_id).await
    }

    pub async fn presence(&self, agent_id: &str) -> Result<pb::Presence, Error> {
        let agent = agent::Entity::find_by_id(agent_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent {agent_id}")))?;
        Ok(to_proto(&agent))
    }
}
