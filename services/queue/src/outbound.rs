//! Outbound attentions an agent starts: open and held by that agent from the
//! start, with the campaign's outbound form. The customer's reply joins it, as
//! any message of a customer with an unfinished attention on the number does.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use uuid::Uuid;

use atenciones_proto::common::v1 as common;
use atenciones_proto::queue::v1 as pb;

use crate::attention::{Direction, State, event};
use crate::entity::{attention as attentions, business_number, campaign};
use crate::error::Error;
use crate::queue::{Queue, Start, new_attention, record_event, reserve_slot};

impl Queue {
    /// Starts an outbound attention for `agent_id`, or returns the customer's
    /// unfinished one on the number (`false`). A start repeating `key`
    /// returns the attention that key started (`true`).
    pub async fn start_outbound(
        &self,
        agent_id: &str,
        campaign_id: &str,
        number_id: &str,
        customer: common::Customer,
        key: &str,
    ) -> Result<(pb::Attention, bool), Error> {
        if customer.id.is_empty() {
            return Err(Error::invalid("customer.id", "required"));
        }
        if key.is_empty() {
            return Err(Error::invalid("idempotency_key", "required"));
        }
        if let Some(started) = self.started_by(key).await? {
            if started.agent_id.as_deref() != Some(agent_id)
                && started.state != State::Finished.as_str()
            {
                // Another agent now holds what this key started: theirs to see.
                return Err(Error::FailedPrecondition(
                    "the attention this key started is held by another agent".into(),
                ));
            }
            return Ok((self.with_campaign_name(started).await?, true));
        }
        let campaign = campaign::Entity::find_by_id(campaign_id)
            .one(&self.db)
            .await?
            .filter(|c| c.active)
            .ok_or_else(|| Error::NotFound(format!("campaign {campaign_id}")))?;
        if !self.campaigns_of(agent_id).await?.contains(&campaign.id) {
            return Err(Error::PermissionDenied(format!(
                "you are not an agent of campaign {campaign_id}"
            )));
        }
        let number = self.campaign_number(&campaign.id, number_id).await?;
        if let Some(active) = self
            .active_attention(&number.phone_number_id, &customer.id)
            .await?
        {
            return Ok((self.with_campaign_name(active).await?, false));
        }
        let form_id = self.current_form(&campaign.id, Direction::Outbound).await?;
        let id = Uuid::new_v4();
        let txn = self.db.begin().await?;
        reserve_slot(&txn, &campaign.id, agent_id)
            .await?
            .for_caller()?;
        let inserted = attentions::Entity::insert(new_attention(Start {
            id,
            campaign_id: &campaign.id,
            business_phone_number_id: &number.phone_number_id,
            customer: &customer,
            direction: Direction::Outbound,
            form_id,
            now: Utc::now(),
            holder: Some(agent_id),
            vip: false,
            out_of_hours: false,
            message: None,
            start_key: Some(key),
        }))
        .exec(&txn)
        .await;
        match inserted {
            Ok(_) => {
                record_event(
                    &txn,
                    id,
                    event::OPENED,
                    serde_json::json!({
                        "actor": agent_id,
                        "reason": "outbound attention started by the agent",
                        "to": State::Open.as_str(),
                        "agent_id": agent_id,
                    }),
                )
                .await?;
                txn.commit().await?;
                let model = self.find(id).await?;
                Ok((self.with_campaign_name(model).await?, true))
            }
            // A concurrent start with the same key won: the attention it made.
            Err(error) if crate::queue::is_unique_violation(&error) => {
                txn.rollback().await?;
                let started = self.started_by(key).await?.ok_or(error)?;
                Ok((self.with_campaign_name(started).await?, true))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn started_by(&self, key: &str) -> Result<Option<attentions::Model>, Error> {
        Ok(attentions::Entity::find()
            .filter(attentions::Column::StartKey.eq(key))
            .one(&self.db)
            .await?)
    }

    /// The number the business writes from for the campaign (outbound
    /// attentions, dialers): the one given, which must be an active number of
    /// the campaign, or its first active one.
    pub(crate) async fn campaign_number(
        &self,
        campaign_id: &str,
        number_id: &str,
    ) -> Result<business_number::Model, Error> {
        let mut query = business_number::Entity::find()
            .filter(business_number::Column::CampaignId.eq(campaign_id))
            .filter(business_number::Column::Active.eq(true));
        if !number_id.is_empty() {
            query = query.filter(business_number::Column::PhoneNumberId.eq(number_id));
        }
        query
            .order_by_asc(business_number::Column::PhoneNumberId)
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                Error::FailedPrecondition(if number_id.is_empty() {
                    format!("campaign {campaign_id} has no active business number")
                } else {
                    format!("business number {number_id} is not an active number of campaign {campaign_id}")
                })
            })
    }
}
