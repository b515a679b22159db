//! The attention's states and directions, and who may do what with it.

use std::fmt;
use std::str::FromStr;

use atenciones_proto::common::v1 as common;
use atenciones_proto::queue::v1 as pb;

pub use atenciones_domain::Direction;

use crate::entity::attention;
use crate::error::Error;

/// Where an attention is. [`Move`] is the one table of how it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Offered,
    Open,
    Finished,
}

/// Outbox event kinds: one per attention move, one per message linked to an
/// attention, and presence changes.
pub mod event {
    pub const QUEUED: &str = "attention.queued";
    pub const OFFERED: &str = "attention.offered";
    pub const DECLINED: &str = "attention.offer_declined";
    pub const EXPIRED: &str = "attention.offer_expired";
    pub const OPENED: &str = "attention.opened";
    pub const FINISHED: &str = "attention.finished";
    pub const TRANSFERRED: &str = "attention.transferred";
    pub const ORPHANED: &str = "attention.orphaned";
    pub const OVERFLOWED: &str = "attention.overflowed";
    pub const MESSAGE_RECEIVED: &str = "attention.message_received";
    pub const MESSAGE_SENT: &str = "attention.message_sent";
    pub const MESSAGE_STATUS: &str = "attention.message_status";
    pub const WINDOW_CLOSING: &str = "attention.window_closing";
    pub const PRESENCE: &str = "agent.presence";
}

/// Every way an attention changes state. Each move has one source state, one
/// target state and the event announcing it; a new move is added here and
/// nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The router offers it to one agent, or to all.
    Offer,
    /// The agent it was offered to (or any agent, for an offer to all) opens it.
    Accept,
    /// The agent declines: back to the head of the queue.
    Decline,
    /// Nobody accepted in time: back to the head of the queue.
    Expire,
    /// An agent picks it from the queue by hand.
    Pick,
    /// Its agent finishes it.
    Finish,
    /// Its agent hands it to another agent of the campaign; it stays open.
    TransferToAgent,
    /// Its agent hands it to another campaign's queue.
    TransferToCampaign,
    /// Its agent left and did not come back within the grace period.
    Orphan,
    /// It waited too long and moves to the overflow campaign's queue.
    Overflow,
    /// It waited too long and is offered to every agent of its campaign.
    OverflowToAll,
}

impl Move {
    #[cfg(test)]
    const ALL: [Self; 11] = [
        Self::Offer,
        Self::Accept,
        Self::Decline,
        Self::Expire,
        Self::Pick,
        Self::Finish,
        Self::TransferToAgent,
        Self::TransferToCampaign,
        Self::Orphan,
        Self::Overflow,
        Self::OverflowToAll,
    ];

    /// (from, to, event).
    pub fn definition(self) -> (State, State, &'static str) {
        use State::*;
        match self {
            Self::Offer => (Queued, Offered, event::OFFERED),
            Self::Accept => (Offered, Open, event::OPENED),
            Self::Decline => (Offered, Queued, event::DECLINED),
            Self::Expire => (Offered, Queued, event::EXPIRED),
            Self::Pick => (Queued, Open, event::OPENED),
            Self::Finish => (Open, Finished, event::FINISHED),
            Self::TransferToAgent => (Open, Open, event::TRANSFERRED),
            Self::TransferToCampaign => (Open, Queued, event::TRANSFERRED),
            Self::Orphan => (Open, Queued, event::ORPHANED),
            Self::Overflow => (Queued, Queued, event::OVERFLOWED),
            Self::OverflowToAll => (Queued, Offered, event::OVERFLOWED),
        }
    }
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Offered => "offered",
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
            "offered" => Ok(Self::Offered),
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
    /// Any attention of the agent's campaigns, whatever its state (to open
    /// it, or learn who has it).
    Member,
    /// Read its conversation: one waiting or finished, of the agent's
    /// campaigns; one open, only its holder.
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
    let held_by_another = attention.agent_id.as_deref() != Some(agent);
    if access == Access::View && state == State::Open && held_by_another {
        return Err(Error::PermissionDenied(
            "the attention is open and held by another agent: its conversation is theirs".into(),
        ));
    }
    if access == Access::Hold {
        match state {
            State::Queued | State::Offered => {
                return Err(Error::FailedPrecondition("open the attention first".into()));
            }
            State::Finished => {
                return Err(Error::FailedPrecondition(
                    "the attention is finished".into(),
                ));
            }
            State::Open if held_by_another => {
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
    let time = atenciones_proto::time::timestamp;
    let state = match model.state.parse() {
        Ok(State::Queued) => pb::AttentionState::Queued,
        Ok(State::Offered) => pb::AttentionState::Offered,
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
        last_message_time: Some(time(model.last_message_at)),
        create_time: Some(time(model.created_at)),
        open_time: model.opened_at.map(time),
        finish_time: model.finished_at.map(time),
        unread_count: u32::try_from(model.unread_count).unwrap_or_default(),
        offered_to: model.offered_to.unwrap_or_default(),
        offer_expire_time: model.offer_expires_at.map(time),
        queue_time: model.queued_at.map(time),
        vip: model.priority > 0,
        out_of_hours: model.out_of_hours,
        orphaned: model.orphaned,
        overflowed: model.overflowed,
        tag: model.tag.unwrap_or_default(),
        transfer_note: model.transfer_note.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_state_machine_moves_are_allowed() {
        use State::*;
        let mut allowed: Vec<_> = Move::ALL
            .iter()
            .map(|m| (m.definition().0, m.definition().1))
            .collect();
        allowed.sort_by_key(|(from, to)| (from.as_str(), to.as_str()));
        allowed.dedup();
        assert_eq!(
            allowed,
            vec![
                (Offered, Open),
                (Offered, Queued),
                (Open, Finished),
                (Open, Open),
                (Open, Queued),
                (Queued, Offered),
                (Queued, Open),
                (Queued, Queued),
            ]
        );
        // Nothing leaves finished.
        assert!(Move::ALL.iter().all(|m| m.definition().0 != Finished));
    }
}
