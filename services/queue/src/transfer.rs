//! What an agent does with an attention they hold besides finishing it:
//! transfer it (to another agent or another campaign's queue) and tag it.
//! The attention keeps its id, so its conversation and form draft follow it.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use atenciones_proto::queue::v1 as pb;

use crate::attention::{self, Access, Move};
use crate::entity::{attention as attentions, campaign, campaign_agent};
use crate::error::Error;
use crate::queue::{Cause, Queue, Slot, is_vip, parse_id, reserve_slot, transition};

/// Longest transfer note kept.
const MAX_NOTE: usize = 500;

/// Where a transferred attention goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Another agent of the attention's campaign; it stays open.
    Agent(String),
    /// Another campaign's queue.
    Campaign(String),
}

impl Target {
    pub fn from_proto(
        target: Option<pb::transfer_attention_request::Target>,
    ) -> Result<Self, Error> {
        use pb::transfer_attention_request::Target as T;
        match target {
            Some(T::ToAgentId(id)) if !id.is_empty() => Ok(Self::Agent(id)),
            Some(T::ToCampaignId(id)) if !id.is_empty() => Ok(Self::Campaign(id)),
            _ => Err(Error::invalid(
                "target",
                "to_agent_id or to_campaign_id is required",
            )),
        }
    }
}

impl Queue {
    /// Hands an open attention the agent holds to `target`, with a note.
    pub async fn transfer(
        &self,
        attention_id: &str,
        agent_id: &str,
        target: Target,
        note: &str,
    ) -> Result<pb::Attention, Error> {
        let id = parse_id(attention_id)?;
        let note = note.trim();
        if note.chars().count() > MAX_NOTE {
            return Err(Error::invalid("note", "at most 500 characters"));
        }
        let model = self.find(id).await?;
        let campaigns = self.campaigns_of(agent_id).await?;
        attention::authorize(&model, agent_id, &campaigns, Access::Hold)?;
        let mut serve = campaigns;
        let txn = self.db.begin().await?;
        let update = attentions::Entity::update_many()
            .col_expr(attentions::Column::TransferNote, Expr::value(note))
            .filter(attentions::Column::AgentId.eq(agent_id));
        let (kind, update, detail) = match &target {
            Target::Agent(to) => {
                if to == agent_id {
                    return Err(Error::invalid("to_agent_id", "must be another agent"));
                }
                let member =
                    campaign_agent::Entity::find_by_id((model.campaign_id.clone(), to.clone()))
                        .one(&txn)
                        .await?;
                if member.is_none() {
                    return Err(Error::FailedPrecondition(format!(
                        "agent {to} is not in campaign {}",
                        model.campaign_id
                    )));
                }
                match reserve_slot(&txn, &model.campaign_id, to).await? {
                    Slot::Free => {}
                    Slot::Offline => {
                        return Err(Error::FailedPrecondition(format!("agent {to} is offline")));
                    }
                    Slot::Full { open, capacity } => {
                        return Err(Error::FailedPrecondition(format!(
                            "agent {to} is at capacity ({open} of {capacity} open)"
                        )));
                    }
                }
                let update = update.col_expr(attentions::Column::AgentId, Expr::value(to));
                (
                    Move::TransferToAgent,
                    update,
                    serde_json::json!({ "from_agent_id": agent_id, "to_agent_id": to, "note": note }),
                )
            }
            Target::Campaign(to) => {
                if *to == model.campaign_id {
                    return Err(Error::invalid("to_campaign_id", "must be another campaign"));
                }
                campaign::Entity::find_by_id(to)
                    .one(&txn)
                    .await?
                    .filter(|c| c.active)
                    .ok_or_else(|| Error::NotFound(format!("campaign {to}")))?;
                let vip = is_vip(&txn, to, &model.customer_id).await?;
                // A new queue: its wait starts now, and the flags of the old
                // queue do not follow.
                let update = update
                    .col_expr(attentions::Column::CampaignId, Expr::value(to))
                    .col_expr(attentions::Column::AgentId, Expr::value(None::<String>))
                    .col_expr(attentions::Column::QueuedAt, Expr::value(Utc::now()))
                    .col_expr(attentions::Column::Priority, Expr::value(i32::from(vip)))
                    .col_expr(attentions::Column::Orphaned, Expr::value(false))
                    .col_expr(attentions::Column::Overflowed, Expr::value(false));
                serve.push(to.clone());
                (
                    Move::TransferToCampaign,
                    update,
                    serde_json::json!({
                        "from_agent_id": agent_id,
                        "from_campaign_id": model.campaign_id,
                        "to_campaign_id": to,
                        "note": note,
                    }),
                )
            }
        };
        let cause = Cause::new(agent_id, "transferred by the agent").with(detail);
        if !transition(&txn, id, kind, &cause, update).await? {
            return Err(Error::FailedPrecondition(
                "the attention changed meanwhile; reload it".into(),
            ));
        }
        txn.commit().await?;
        // The agent has a free slot, and the target campaign a new attention.
        self.serve(&serve).await;
        let model = self.find(id).await?;
        self.with_campaign_name(model).await
    }

    /// Sets (or, with an empty tag, clears) the tag of an attention the agent holds.
    pub async fn set_tag(
        &self,
        attention_id: &str,
        agent_id: &str,
        tag: &str,
    ) -> Result<pb::Attention, Error> {
        let id = parse_id(attention_id)?;
        let model = self.find(id).await?;
        let campaigns = self.campaigns_of(agent_id).await?;
        attention::authorize(&model, agent_id, &campaigns, Access::Hold)?;
        if !tag.is_empty() {
            let defined = campaign::Entity::find_by_id(&model.campaign_id)
                .one(&self.db)
                .await?
                .is_some_and(|c| crate::admin::tags(&c).iter().any(|t| t.id == tag));
            if !defined {
                return Err(Error::invalid(
                    "tag",
                    "not a tag of the attention's campaign",
                ));
            }
        }
        attentions::Entity::update_many()
            .col_expr(
                attentions::Column::Tag,
                Expr::value(Some(tag).filter(|t| !t.is_empty())),
            )
            .filter(attentions::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        let model = self.find(id).await?;
        self.with_campaign_name(model).await
    }
}
