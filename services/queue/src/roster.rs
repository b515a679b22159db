//! What supervisors read back: their campaigns with the numbers bound to
//! them, the agents of those campaigns with presence, and the audit trail of
//! changes to all of these.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use atenciones_proto::queue::v1 as pb;

use crate::admin::{AgentSettings, CampaignSettings, NumberSettings};
use crate::entity::{admin_audit, agent, business_number, campaign, campaign_agent};
use crate::error::Error;
use crate::presence;
use atenciones_domain::escape_like;

use crate::queue::Queue;

/// Largest page of the audit trail.
const MAX_AUDIT_PAGE: u64 = 500;

impl Queue {
    pub async fn list_campaigns(
        &self,
        actor: &str,
    ) -> Result<(Vec<pb::Campaign>, Vec<pb::BusinessNumber>), Error> {
        let supervised = self.supervised(actor).await?;
        let campaigns = campaign::Entity::find()
            .filter(campaign::Column::Id.is_in(supervised.clone()))
            .order_by_asc(campaign::Column::Id)
            .all(&self.db)
            .await?;
        let numbers = business_number::Entity::find()
            .filter(business_number::Column::CampaignId.is_in(supervised))
            .order_by_asc(business_number::Column::PhoneNumberId)
            .all(&self.db)
            .await?;
        Ok((
            campaigns
                .iter()
                .map(|c| CampaignSettings::from_model(c).to_proto())
                .collect(),
            numbers
                .iter()
                .map(|n| NumberSettings::from_model(n).to_proto())
                .collect(),
        ))
    }

    /// Agents in any supervised campaign; each shows only those campaigns.
    pub async fn list_agents(&self, actor: &str) -> Result<Vec<pb::AgentRecord>, Error> {
        let supervised = self.supervised(actor).await?;
        let mut memberships: BTreeMap<String, Vec<campaign_agent::Model>> = BTreeMap::new();
        for m in campaign_agent::Entity::find()
            .filter(campaign_agent::Column::CampaignId.is_in(supervised))
            .order_by_asc(campaign_agent::Column::CampaignId)
            .all(&self.db)
            .await?
        {
            memberships.entry(m.agent_id.clone()).or_default().push(m);
        }
        let agents = agent::Entity::find()
            .filter(agent::Column::Id.is_in(memberships.keys().cloned()))
            .order_by_asc(agent::Column::Id)
            .all(&self.db)
            .await?;
        Ok(agents
            .iter()
            .map(|a| pb::AgentRecord {
                settings: Some(
                    AgentSettings::from_models(
                        a,
                        memberships.get(&a.id).map_or(&[], Vec::as_slice),
                    )
                    .to_proto(),
                ),
                presence: Some(presence::to_proto(a)),
            })
            .collect())
    }

    /// Changes to the supervised campaigns, their numbers and agents (VIP
    /// marks included), and the actor's own, newest first. The page token is
    /// the id of the last entry of the previous page.
    pub async fn audit_entries(
        &self,
        actor: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<pb::AuditEntry>, String), Error> {
        let before = match page_token {
            "" => None,
            token => Some(
                token
                    .parse::<i64>()
                    .map_err(|_| Error::invalid("page_token", "not a token this API gave"))?,
            ),
        };
        let size = match u64::from(page_size) {
            0 => 50,
            n => Ord::min(n, MAX_AUDIT_PAGE),
        };
        let supervised = self.supervised(actor).await?;
        let mut targets: BTreeSet<String> = supervised.clone();
        targets.extend(
            business_number::Entity::find()
                .filter(business_number::Column::CampaignId.is_in(supervised.clone()))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|n| n.phone_number_id),
        );
        targets.extend(
            campaign_agent::Entity::find()
                .filter(campaign_agent::Column::CampaignId.is_in(supervised.clone()))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|m| m.agent_id),
        );
        let mut scope = Condition::any()
            .add(admin_audit::Column::Actor.eq(actor))
            .add(admin_audit::Column::Target.is_in(targets));
        // VIP marks are audited as `campaign/customer`.
        for campaign in &supervised {
            let prefix = escape_like(campaign);
            scope = scope.add(
                Expr::col(admin_audit::Column::Target)
                    .like(LikeExpr::new(format!("{prefix}/%")).escape('\\')),
            );
        }
        let mut query = admin_audit::Entity::find().filter(scope);
        if let Some(before) = before {
            query = query.filter(admin_audit::Column::Id.lt(before));
        }
        let mut rows = query
            .order_by_desc(admin_audit::Column::Id)
            .limit(size + 1)
            .all(&self.db)
            .await?;
        let more = rows.len() as u64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next = match rows.last() {
            Some(last) if more => last.id.to_string(),
            _ => String::new(),
        };
        let json =
            |value: Option<serde_json::Value>| value.map(|v| v.to_string()).unwrap_or_default();
        let entries = rows
            .into_iter()
            .map(|row| pb::AuditEntry {
                id: row.id,
                actor_id: row.actor,
                action: row.action,
                target: row.target,
                before_json: json(row.before),
                after_json: json(row.after),
                create_time: Some(atenciones_proto::time::timestamp(row.created_at)),
            })
            .collect();
        Ok((entries, next))
    }
}
