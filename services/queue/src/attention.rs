//! The attention's states and directions, and who may do what with it.

use std::fmt;
use std::str::FromStr;

use atenciones_proto::common::v1 as common;
use atenciones_proto::queue::v1 as pb;

pub use atenciones_domain::Direction;

use crate::entity::attention;
use crate::error::Error;

/// queued → open → finished, and open → queued (a re-queue); no other move
/// exists. [`State::event_of_move`] is the one table of allowed moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Open,
    Finished,
}

/// Outbox event kinds: one per attention transition, and presence changes.
pub mod event {
    pub const QUEUED: &str = "attention.queued";
    pub const OPENED: &str = "attention.opened";
    pub const FINISHED: &str = "attention.finished";
    pub const REQUEUED: &str = "attention.requeued";
    pub const PRESENCE: &str = "agent.presence";
}

impl State {
    /// The event announcing a move from `self` to `next`, or FAILED_PRECONDITION
    /// when the state machine does not allow it. Every state change goes through
    /// here, so a new move (offered, transferred) is added in this one place.
    pub fn event_of_move(self, next: State) -> Result<&'static str, Error> {
        match (self, next) {
            (Self::Queued, Self::Open) => Ok(event::OPENED),
            (Self::Open, Self::Finished) => Ok(event::FINISHED),
            // Transfers and orphans put an open attention back in the queue.
            (Self::Open, Self::Queued) => Ok(event::REQUEUED),
            (from, to) => Err(Error::FailedPrecondition(format!(
                "an attention cannot go from {from} to {to}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Open => "open",
            Self::Finished => "finished",
        }
    }
}

impl FromStr for State {
    type Err = sea_orm::DbErr;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(Self::Queued),
            "open" => Ok(Self::Open),
            "finished" => Ok(Self::Finished),
            other => Err(sea_orm::DbErr::Custom(format!(
                "unknown attention state {other:?}"
            ))),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller wants to do; checked in one place for every operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any attention of the agent's campaigns.
    View,
    /// An open attention held by the agent.
    Hold,
}

impl TryFrom<i32> for Access {
    type Error = Error;
    fn try_from(value: i32) -> Result<Self, Error> {
        match pb::Access::try_from(value) {
            Ok(pb::Access::View) => Ok(Self::View),
            Ok(pb::Access::Hold) => Ok(Self::Hold),
            _ => Err(Error::invalid(
                "access",
                "must be ACCESS_VIEW or ACCESS_HOLD",
            )),
        }
    }
}

/// Checks that `agent` (a member of `agent_campaigns`) may access `attention` as asked.
pub fn authorize(
    attention: &attention::Model,
    agent: &str,
    agent_campaigns: &[String],
    access: Access,
) -> Result<State, Error> {
    if !agent_campaigns.contains(&attention.campaign_id) {
        return Err(Error::PermissionDenied(
            "the attention belongs to a campaign you are not in".into(),
        ));
    }
    let state: State = attention.state.parse()?;
    if access == Access::Hold {
        match state {
            State::Queued => {
                return Err(Error::FailedPrecondition("open the attention first".into()));
            }
            State::Finished => {
                return Err(Error::FailedPrecondition(
                    "the attention is finished".into(),
                ));
            }
            State::Open if attention.agent_id.as_deref() != Some(agent) => {
                return Err(Error::PermissionDenied(
                    "the attention is held by another agent".into(),
                ));
            }
            State::Open => {}
        }
    }
    Ok(state)
}

/// The attention as the API shows it.
pub fn to_proto(model: attention::Model, campaign_name: String) -> pb::Attention {
    let state = match model.state.parse() {
        Ok(State::Queued) => pb::AttentionState::Queued,
        Ok(State::Open) => pb::AttentionState::Open,
        Ok(State::Finished) => pb::AttentionState::Finished,
        Err(_) => pb::AttentionState::Unspecified,
    };
    pb::Attention {
        id: model.id.to_string(),
        campaign_id: model.campaign_id,
        campaign_name,
        business_phone_number_id: model.business_phone_number_id,
        customer: Some(common::Customer {
            id: model.customer_id,
            wa_id: model.customer_wa_id,
            user_id: model.customer_user_id,
            name: model.customer_name,
        }),
        direction: Direction::parse(&model.direction)
            .map_or(common::Direction::Unspecified, Direction::to_proto)
            .into(),
        state: state.into(),
        agent_id: model.agent_id.unwrap_or_default(),
        form_id: model.form_id.unwrap_or_default(),
        last_message_preview: model.last_message_preview,
        last_message_time: Some(atenciones_proto::time::timestamp(model.last_message_at)),
        create_time: Some(atenciones_proto::time::timestamp(model.created_at)),
        open_time: model.opened_at.map(atenciones_proto::time::timestamp),
        finish_time: model.finished_at.map(atenciones_proto::time::timestamp),
        unread_count: u32::try_from(model.unread_count).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_state_machine_moves_are_allowed() {
        use State::*;
        let states = [Queued, Open, Finished];
        let allowed: Vec<_> = states
            .iter()
            .flat_map(|&from| states.iter().map(move |&to| (from, to)))
            .filter(|(from, to)| from.event_of_move(*to).is_ok())
            .collect();
        assert_eq!(
            allowed,
            vec![(Queued, Open), (Open, Queued), (Open, Finished)]
        );
    }
}
