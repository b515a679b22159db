//! Supervisors' administration of campaigns, business numbers and agents:
//! validated, allowed only on campaigns the supervisor supervises, and audited
//! (who, when, what, before and after) in the same transaction as the change.

use std::collections::BTreeSet;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::Serialize;

use atenciones_proto::queue::v1 as pb;

use crate::attention::{State, event};
use crate::entity::{
    admin_audit, agent, attention, business_number, campaign, campaign_agent, supervisor,
    supervisor_campaign, vip_customer,
};
use crate::error::{Error, Violations};
use crate::hours::BusinessHours;
use crate::presence::PresenceState;
use crate::queue::{Queue, is_vip, record_event};

/// Largest capacity a supervisor may give: far above any human's.
const MAX_CAPACITY: u32 = 100;
const MAX_ACCEPT_TIMEOUT: u32 = 3600;
const MAX_ORPHAN_GRACE: u32 = 86_400;
const MAX_TAGS: usize = 100;

/// How a campaign hands queued attentions to agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentMode {
    Manual,
    LeastBusy,
    RoundRobin,
    Random,
    OfferToAll,
}

impl AssignmentMode {
    const ALL: [Self; 5] = [
        Self::Manual,
        Self::LeastBusy,
        Self::RoundRobin,
        Self::Random,
        Self::OfferToAll,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::LeastBusy => "least_busy",
            Self::RoundRobin => "round_robin",
            Self::Random => "random",
            Self::OfferToAll => "offer_to_all",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == stored)
    }

    fn to_proto(self) -> pb::AssignmentMode {
        match self {
            Self::Manual => pb::AssignmentMode::Manual,
            Self::LeastBusy => pb::AssignmentMode::LeastBusy,
            Self::RoundRobin => pb::AssignmentMode::RoundRobin,
            Self::Random => pb::AssignmentMode::Random,
            Self::OfferToAll => pb::AssignmentMode::OfferToAll,
        }
    }

    fn from_proto(value: i32) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| i32::from(m.to_proto()) == value)
    }
}

/// A campaign's settings as a supervisor may save them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignSettings {
    id: String,
    name: String,
    assignment_mode: AssignmentMode,
    accept_timeout_seconds: u32,
    max_queue_seconds: u32,
    overflow_campaign_id: Option<String>,
    default_agent_capacity: u32,
    active: bool,
    business_hours: Option<BusinessHours>,
    orphan_grace_seconds: u32,
    tags: Vec<Tag>,
    out_of_hours_template: Option<TemplateRef>,
}

/// A template by name and language, as messaging registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
}

impl TemplateRef {
    /// The template a request names, its fields checked under `field`.
    pub fn from_proto(t: pb::TemplateRef, field: &str, v: &mut Violations) -> Self {
        v.check(
            atenciones_domain::is_template_name(&t.name),
            &format!("{field}.name"),
            "a template name: lowercase letters, digits and _",
        );
        v.check(
            atenciones_domain::is_language_code(&t.language),
            &format!("{field}.language"),
            "a language code such as es or es_MX",
        );
        Self {
            name: t.name,
            language: t.language,
        }
    }

    pub fn to_proto(&self) -> pb::TemplateRef {
        pb::TemplateRef {
            name: self.name.clone(),
            language: self.language.clone(),
        }
    }
}

/// A label agents may put on a campaign's attentions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tag {
    pub id: String,
    pub label: String,
}

/// A business number bound to a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberSettings {
    phone_number_id: String,
    display_phone_number: String,
    campaign_id: String,
    active: bool,
}

/// An agent, their campaigns and capacity overrides (0: the campaign's default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentSettings {
    id: String,
    name: String,
    campaigns: Vec<(String, u32)>,
}

/// A supervisor and the campaigns they supervise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupervisorSettings {
    id: String,
    name: String,
    campaign_ids: Vec<String>,
}

impl TryFrom<Option<pb::Supervisor>> for SupervisorSettings {
    type Error = Error;
    fn try_from(supervisor: Option<pb::Supervisor>) -> Result<Self, Error> {
        let s = supervisor.ok_or_else(|| Error::invalid("supervisor", "required"))?;
        let mut v = Violations::default();
        v.check(is_id(&s.id), "supervisor.id", "1–64 of a-z, 0-9, -, _, .");
        v.check(
            is_name(&s.name),
            "supervisor.name",
            "required, at most 100 characters",
        );
        v.into_result(())?;
        let campaign_ids: BTreeSet<String> = s.campaign_ids.into_iter().collect();
        Ok(Self {
            name: s.name.trim().to_owned(),
            campaign_ids: campaign_ids.into_iter().collect(),
            id: s.id,
        })
    }
}

impl SupervisorSettings {
    pub fn to_proto(&self) -> pb::Supervisor {
        pb::Supervisor {
            id: self.id.clone(),
            name: self.name.clone(),
            campaign_ids: self.campaign_ids.clone(),
        }
    }
}

/// A customer's VIP mark in one campaign, or in all (`campaign_id` empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipMark {
    campaign_id: String,
    customer_id: String,
    vip: bool,
}

impl VipMark {
    pub fn new(campaign_id: String, customer_id: String, vip: bool) -> Result<Self, Error> {
        let mut v = Violations::default();
        v.check(
            campaign_id.is_empty() || is_id(&campaign_id),
            "campaign_id",
            "a campaign id, or empty for every campaign",
        );
        v.check(
            !customer_id.is_empty() && customer_id.len() <= 64,
            "customer_id",
            "required",
        );
        v.into_result(Self {
            campaign_id,
            customer_id,
            vip,
        })
    }
}

/// Ids people type and systems key on: lowercase letters, digits, `-`, `_`, `.`.
fn is_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn is_digits(value: &str) -> bool {
    (1..=32).contains(&value.len()) && value.chars().all(|c| c.is_ascii_digit())
}

fn is_name(value: &str) -> bool {
    !value.trim().is_empty() && value.chars().count() <= 100
}

impl TryFrom<Option<pb::Campaign>> for CampaignSettings {
    type Error = Error;
    fn try_from(campaign: Option<pb::Campaign>) -> Result<Self, Error> {
        let c = campaign.ok_or_else(|| Error::invalid("campaign", "required"))?;
        let mode = AssignmentMode::from_proto(c.assignment_mode);
        let mut v = Violations::default();
        v.check(is_id(&c.id), "campaign.id", "1–64 of a-z, 0-9, -, _, .");
        v.check(
            is_name(&c.name),
            "campaign.name",
            "required, at most 100 characters",
        );
        v.check(mode.is_some(), "campaign.assignment_mode", "required");
        v.check(
            (1..=MAX_ACCEPT_TIMEOUT).contains(&c.accept_timeout_seconds),
            "campaign.accept_timeout_seconds",
            "between 1 and 3600",
        );
        v.check(
            (1..=MAX_CAPACITY).contains(&c.default_agent_capacity),
            "campaign.default_agent_capacity",
            "between 1 and 100",
        );
        v.check(
            c.overflow_campaign_id != c.id,
            "campaign.overflow_campaign_id",
            "must be another campaign",
        );
        v.check(
            c.orphan_grace_seconds <= MAX_ORPHAN_GRACE,
            "campaign.orphan_grace_seconds",
            "at most 86400",
        );
        let business_hours = c
            .business_hours
            .and_then(|h| BusinessHours::from_proto(h, "campaign.business_hours", &mut v));
        v.check(
            c.tags.len() <= MAX_TAGS,
            "campaign.tags",
            "at most 100 tags",
        );
        let mut seen = BTreeSet::new();
        for (i, tag) in c.tags.iter().enumerate() {
            v.check(
                is_id(&tag.id) && seen.insert(tag.id.as_str()),
                &format!("campaign.tags[{i}].id"),
                "1–64 of a-z, 0-9, -, _, .; unique in the campaign",
            );
            v.check(
                is_name(&tag.label),
                &format!("campaign.tags[{i}].label"),
                "required, at most 100 characters",
            );
        }
        let out_of_hours_template = c
            .out_of_hours_template
            .map(|t| TemplateRef::from_proto(t, "campaign.out_of_hours_template", &mut v));
        v.into_result(())?;
        let tags = c
            .tags
            .into_iter()
            .map(|t| Tag {
                id: t.id,
                label: t.label.trim().to_owned(),
            })
            .collect();
        Ok(Self {
            assignment_mode: mode.unwrap_or(AssignmentMode::Manual),
            name: c.name.trim().to_owned(),
            accept_timeout_seconds: c.accept_timeout_seconds,
            max_queue_seconds: c.max_queue_seconds,
            overflow_campaign_id: Some(c.overflow_campaign_id).filter(|o| !o.is_empty()),
            default_agent_capacity: c.default_agent_capacity,
            active: true,
            business_hours,
            orphan_grace_seconds: c.orphan_grace_seconds,
            tags,
            out_of_hours_template,
            id: c.id,
        })
    }
}

impl TryFrom<Option<pb::BusinessNumber>> for NumberSettings {
    type Error = Error;
    fn try_from(number: Option<pb::BusinessNumber>) -> Result<Self, Error> {
        let n = number.ok_or_else(|| Error::invalid("business_number", "required"))?;
        let mut v = Violations::default();
        v.check(
            is_digits(&n.phone_number_id),
            "business_number.phone_number_id",
            "digits, required",
        );
        v.check(
            is_digits(&n.display_phone_number),
            "business_number.display_phone_number",
            "digits, required",
        );
        v.check(
            is_id(&n.campaign_id),
            "business_number.campaign_id",
            "required",
        );
        v.into_result(Self {
            phone_number_id: n.phone_number_id,
            display_phone_number: n.display_phone_number,
            campaign_id: n.campaign_id,
            active: true,
        })
    }
}

impl TryFrom<Option<pb::AgentSettings>> for AgentSettings {
    type Error = Error;
    fn try_from(agent: Option<pb::AgentSettings>) -> Result<Self, Error> {
        let a = agent.ok_or_else(|| Error::invalid("agent", "required"))?;
        let mut v = Violations::default();
        v.check(is_id(&a.id), "agent.id", "1–64 of a-z, 0-9, -, _, .");
        v.check(
            is_name(&a.name),
            "agent.name",
            "required, at most 100 characters",
        );
        let mut seen = BTreeSet::new();
        for (i, c) in a.campaigns.iter().enumerate() {
            v.check(
                seen.insert(c.campaign_id.as_str()),
                &format!("agent.campaigns[{i}].campaign_id"),
                "listed twice",
            );
            v.check(
                c.capacity <= MAX_CAPACITY,
                &format!("agent.campaigns[{i}].capacity"),
                "at most 100 (0: the campaign's default)",
            );
        }
        v.into_result(())?;
        Ok(Self {
            name: a.name.trim().to_owned(),
            campaigns: a
                .campaigns
                .into_iter()
                .map(|c| (c.campaign_id, c.capacity))
                .collect(),
            id: a.id,
        })
    }
}

impl CampaignSettings {
    pub(crate) fn from_model(m: &campaign::Model) -> Self {
        Self {
            id: m.id.clone(),
            name: m.name.clone(),
            assignment_mode: AssignmentMode::parse(&m.assignment_mode)
                .unwrap_or(AssignmentMode::Manual),
            accept_timeout_seconds: u32::try_from(m.accept_timeout_seconds).unwrap_or_default(),
            max_queue_seconds: u32::try_from(m.max_queue_seconds).unwrap_or_default(),
            overflow_campaign_id: m.overflow_campaign_id.clone(),
            default_agent_capacity: u32::try_from(m.default_agent_capacity).unwrap_or_default(),
            active: m.active,
            business_hours: business_hours(m),
            orphan_grace_seconds: u32::try_from(m.orphan_grace_seconds).unwrap_or_default(),
            tags: tags(m),
            out_of_hours_template: out_of_hours_template(m),
        }
    }

    pub fn to_proto(&self) -> pb::Campaign {
        pb::Campaign {
            id: self.id.clone(),
            name: self.name.clone(),
            assignment_mode: self.assignment_mode.to_proto().into(),
            accept_timeout_seconds: self.accept_timeout_seconds,
            max_queue_seconds: self.max_queue_seconds,
            overflow_campaign_id: self.overflow_campaign_id.clone().unwrap_or_default(),
            default_agent_capacity: self.default_agent_capacity,
            active: self.active,
            business_hours: self.business_hours.as_ref().map(BusinessHours::to_proto),
            orphan_grace_seconds: self.orphan_grace_seconds,
            tags: self
                .tags
                .iter()
                .map(|t| pb::Tag {
                    id: t.id.clone(),
                    label: t.label.clone(),
                })
                .collect(),
            out_of_hours_template: self
                .out_of_hours_template
                .as_ref()
                .map(TemplateRef::to_proto),
        }
    }

    fn to_model(&self, created_at: chrono::DateTime<Utc>) -> campaign::ActiveModel {
        let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        campaign::ActiveModel {
            id: Set(self.id.clone()),
            name: Set(self.name.clone()),
            created_at: Set(created_at),
            assignment_mode: Set(self.assignment_mode.as_str().to_owned()),
            accept_timeout_seconds: Set(int(self.accept_timeout_seconds)),
            max_queue_seconds: Set(int(self.max_queue_seconds)),
            overflow_campaign_id: Set(self.overflow_campaign_id.clone()),
            default_agent_capacity: Set(int(self.default_agent_capacity)),
            active: Set(self.active),
            business_hours: Set(self.business_hours.as_ref().and_then(json)),
            orphan_grace_seconds: Set(int(self.orphan_grace_seconds)),
            tags: Set(json(&self.tags)),
            out_of_hours_template: Set(self.out_of_hours_template.as_ref().and_then(json)),
        }
    }
}

impl NumberSettings {
    pub(crate) fn from_model(m: &business_number::Model) -> Self {
        Self {
            phone_number_id: m.phone_number_id.clone(),
            display_phone_number: m.display_phone_number.clone(),
            campaign_id: m.campaign_id.clone(),
            active: m.active,
        }
    }

    pub fn to_proto(&self) -> pb::BusinessNumber {
        pb::BusinessNumber {
            phone_number_id: self.phone_number_id.clone(),
            display_phone_number: self.display_phone_number.clone(),
            campaign_id: self.campaign_id.clone(),
            active: self.active,
        }
    }

    fn to_model(&self) -> business_number::ActiveModel {
        business_number::ActiveModel {
            phone_number_id: Set(self.phone_number_id.clone()),
            display_phone_number: Set(self.display_phone_number.clone()),
            campaign_id: Set(self.campaign_id.clone()),
            active: Set(self.active),
        }
    }
}

impl AgentSettings {
    pub(crate) fn from_models(agent: &agent::Model, memberships: &[campaign_agent::Model]) -> Self {
        Self {
            id: agent.id.clone(),
            name: agent.name.clone(),
            campaigns: memberships
                .iter()
                .map(|m| {
                    let capacity = m.capacity.and_then(|c| u32::try_from(c).ok());
                    (m.campaign_id.clone(), capacity.unwrap_or(0))
                })
                .collect(),
        }
    }

    pub fn to_proto(&self) -> pb::AgentSettings {
        pb::AgentSettings {
            id: self.id.clone(),
            name: self.name.clone(),
            campaigns: self
                .campaigns
                .iter()
                .map(|(campaign_id, capacity)| pb::AgentCampaign {
                    campaign_id: campaign_id.clone(),
                    capacity: *capacity,
                })
                .collect(),
        }
    }
}

fn json(value: &impl Serialize) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// The campaign's business hours; none (always open) when it has none.
pub fn business_hours(campaign: &campaign::Model) -> Option<BusinessHours> {
    serde_json::from_value(campaign.business_hours.clone()?).ok()
}

/// The template the campaign answers out-of-hours customers with, if any.
pub fn out_of_hours_template(campaign: &campaign::Model) -> Option<TemplateRef> {
    serde_json::from_value(campaign.out_of_hours_template.clone()?).ok()
}

/// The tags agents may set on the campaign's attentions.
pub fn tags(campaign: &campaign::Model) -> Vec<Tag> {
    campaign
        .tags
        .clone()
        .and_then(|t| serde_json::from_value(t).ok())
        .unwrap_or_default()
}

impl Queue {
    /// Creates or updates a campaign; its creator becomes its supervisor.
    pub async fn save_campaign(
        &self,
        actor: &str,
        settings: CampaignSettings,
    ) -> Result<CampaignSettings, Error> {
        let supervised = self.supervised(actor).await?;
        if let Some(overflow) = &settings.overflow_campaign_id {
            self.require_campaigns(&[overflow.as_str()], "campaign.overflow_campaign_id")
                .await?;
        }
        let txn = self.db.begin().await?;
        let before = campaign::Entity::find_by_id(&settings.id).one(&txn).await?;
        match &before {
            Some(existing) => {
                allow(&supervised, [existing.id.as_str()])?;
                let saved = CampaignSettings {
                    active: existing.active,
                    ..settings.clone()
                };
                campaign::Entity::update(saved.to_model(existing.created_at))
                    .exec(&txn)
                    .await?;
            }
            None => {
                campaign::Entity::insert(settings.to_model(Utc::now()))
                    .exec(&txn)
                    .await?;
                supervisor_campaign::Entity::insert(supervisor_campaign::ActiveModel {
                    supervisor_id: Set(actor.to_owned()),
                    campaign_id: Set(settings.id.clone()),
                })
                .exec(&txn)
                .await?;
            }
        }
        let after = campaign::Entity::find_by_id(&settings.id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("campaign {}", settings.id)))?;
        let after = CampaignSettings::from_model(&after);
        let before = before.as_ref().map(CampaignSettings::from_model);
        audit(&txn, actor, "campaign.save", &settings.id, &before, &after).await?;
        txn.commit().await?;
        // A new mode or capacity may let waiting attentions through now.
        self.serve(&[after.id.as_str()]).await;
        Ok(after)
    }

    pub async fn deactivate_campaign(
        &self,
        actor: &str,
        campaign_id: &str,
    ) -> Result<CampaignSettings, Error> {
        let supervised = self.supervised(actor).await?;
        let txn = self.db.begin().await?;
        let existing = campaign::Entity::find_by_id(campaign_id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("campaign {campaign_id}")))?;
        allow(&supervised, [campaign_id])?;
        let before = CampaignSettings::from_model(&existing);
        let after = CampaignSettings {
            active: false,
            ..before.clone()
        };
        campaign::Entity::update(after.to_model(existing.created_at))
            .exec(&txn)
            .await?;
        audit(
            &txn,
            actor,
            "campaign.deactivate",
            campaign_id,
            &Some(before),
            &after,
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    }

    /// Creates or updates a number; rebinding needs both campaigns supervised.
    pub async fn save_business_number(
        &self,
        actor: &str,
        settings: NumberSettings,
    ) -> Result<NumberSettings, Error> {
        let supervised = self.supervised(actor).await?;
        self.require_campaigns(
            &[settings.campaign_id.as_str()],
            "business_number.campaign_id",
        )
        .await?;
        let txn = self.db.begin().await?;
        let before = business_number::Entity::find_by_id(&settings.phone_number_id)
            .one(&txn)
            .await?;
        let old_campaign = before.as_ref().map(|b| b.campaign_id.as_str());
        allow(
            &supervised,
            old_campaign
                .into_iter()
                .chain([settings.campaign_id.as_str()]),
        )?;
        let model = settings.to_model();
        if before.is_some() {
            business_number::Entity::update(model).exec(&txn).await?;
        } else {
            business_number::Entity::insert(model).exec(&txn).await?;
        }
        let before = before.as_ref().map(NumberSettings::from_model);
        audit(
            &txn,
            actor,
            "business_number.save",
            &settings.phone_number_id,
            &before,
            &settings,
        )
        .await?;
        txn.commit().await?;
        Ok(settings)
    }

    pub async fn deactivate_business_number(
        &self,
        actor: &str,
        phone_number_id: &str,
    ) -> Result<NumberSettings, Error> {
        let supervised = self.supervised(actor).await?;
        let txn = self.db.begin().await?;
        let existing = business_number::Entity::find_by_id(phone_number_id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("business number {phone_number_id}")))?;
        allow(&supervised, [existing.campaign_id.as_str()])?;
        let before = NumberSettings::from_model(&existing);
        let after = NumberSettings {
            active: false,
            ..before.clone()
        };
        business_number::Entity::update(after.to_model())
            .exec(&txn)
            .await?;
        audit(
            &txn,
            actor,
            "business_number.deactivate",
            phone_number_id,
            &Some(before),
            &after,
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    }

    /// Creates or updates an agent and replaces their memberships; every
    /// campaign they leave or join must be supervised. New agents start offline.
    pub async fn save_agent(
        &self,
        actor: &str,
        settings: AgentSettings,
    ) -> Result<AgentSettings, Error> {
        let supervised = self.supervised(actor).await?;
        let joined: Vec<&str> = settings.campaigns.iter().map(|(c, _)| c.as_str()).collect();
        self.require_campaigns(&joined, "agent.campaigns").await?;
        let txn = self.db.begin().await?;
        let existing = agent::Entity::find_by_id(&settings.id).one(&txn).await?;
        let memberships = campaign_agent::Entity::find()
            .filter(campaign_agent::Column::AgentId.eq(&settings.id))
            .all(&txn)
            .await?;
        allow(
            &supervised,
            memberships
                .iter()
                .map(|m| m.campaign_id.as_str())
                .chain(joined.iter().copied()),
        )?;
        let before = existing
            .as_ref()
            .map(|a| AgentSettings::from_models(a, &memberships));
        match existing {
            Some(agent) => {
                agent::Entity::update(agent::ActiveModel {
                    id: Set(agent.id),
                    name: Set(settings.name.clone()),
                    ..Default::default()
                })
                .exec(&txn)
                .await?;
            }
            None => {
                agent::Entity::insert(agent::ActiveModel {
                    id: Set(settings.id.clone()),
                    name: Set(settings.name.clone()),
                    created_at: Set(Utc::now()),
                    presence: Set(PresenceState::Offline.as_str().to_owned()),
                    pause_reason: Set(None),
                    presence_changed_at: Set(None),
                    last_seen_at: Set(None),
                    last_offered_at: Set(None),
                })
                .exec(&txn)
                .await?;
            }
        }
        campaign_agent::Entity::delete_many()
            .filter(campaign_agent::Column::AgentId.eq(&settings.id))
            .exec(&txn)
            .await?;
        for (campaign_id, capacity) in &settings.campaigns {
            campaign_agent::Entity::insert(campaign_agent::ActiveModel {
                campaign_id: Set(campaign_id.clone()),
                agent_id: Set(settings.id.clone()),
                capacity: Set(Some(*capacity)
                    .filter(|c| *c > 0)
                    .and_then(|c| i32::try_from(c).ok())),
            })
            .exec(&txn)
            .await?;
        }
        audit(&txn, actor, "agent.save", &settings.id, &before, &settings).await?;
        txn.commit().await?;
        // A raised capacity or a new campaign frees slots: serve at once.
        let campaigns: Vec<&str> = settings.campaigns.iter().map(|(c, _)| c.as_str()).collect();
        self.serve(&campaigns).await;
        Ok(settings)
    }

    /// Creates or updates a supervisor; the actor must supervise every
    /// campaign given or taken away.
    pub async fn save_supervisor(
        &self,
        actor: &str,
        settings: SupervisorSettings,
    ) -> Result<SupervisorSettings, Error> {
        let supervised = self.supervised(actor).await?;
        let given: Vec<&str> = settings.campaign_ids.iter().map(String::as_str).collect();
        self.require_campaigns(&given, "supervisor.campaign_ids")
            .await?;
        let txn = self.db.begin().await?;
        let existing = supervisor::Entity::find_by_id(&settings.id)
            .one(&txn)
            .await?;
        let old: Vec<String> = supervisor_campaign::Entity::find()
            .filter(supervisor_campaign::Column::SupervisorId.eq(&settings.id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|s| s.campaign_id)
            .collect();
        allow(
            &supervised,
            old.iter().map(String::as_str).chain(given.iter().copied()),
        )?;
        let before = existing.as_ref().map(|s| SupervisorSettings {
            id: s.id.clone(),
            name: s.name.clone(),
            campaign_ids: old.clone(),
        });
        let model = supervisor::ActiveModel {
            id: Set(settings.id.clone()),
            name: Set(settings.name.clone()),
            created_at: Set(existing.as_ref().map_or_else(Utc::now, |s| s.created_at)),
            active: Set(true),
        };
        if existing.is_some() {
            supervisor::Entity::update(model).exec(&txn).await?;
        } else {
            supervisor::Entity::insert(model).exec(&txn).await?;
        }
        supervisor_campaign::Entity::delete_many()
            .filter(supervisor_campaign::Column::SupervisorId.eq(&settings.id))
            .exec(&txn)
            .await?;
        for campaign_id in &settings.campaign_ids {
            supervisor_campaign::Entity::insert(supervisor_campaign::ActiveModel {
                supervisor_id: Set(settings.id.clone()),
                campaign_id: Set(campaign_id.clone()),
            })
            .exec(&txn)
            .await?;
        }
        audit(
            &txn,
            actor,
            "supervisor.save",
            &settings.id,
            &before,
            &settings,
        )
        .await?;
        txn.commit().await?;
        Ok(settings)
    }

    /// Sets or removes a VIP mark; a mark in every campaign needs every
    /// active campaign supervised. Setting what is already set changes nothing
    /// but is still audited as asked.
    pub async fn set_vip(&self, actor: &str, mark: VipMark) -> Result<(), Error> {
        let supervised = self.supervised(actor).await?;
        let scope: Vec<String> = if mark.campaign_id.is_empty() {
            campaign::Entity::find()
                .filter(campaign::Column::Active.eq(true))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect()
        } else {
            self.require_campaigns(&[mark.campaign_id.as_str()], "campaign_id")
                .await?;
            vec![mark.campaign_id.clone()]
        };
        allow(&supervised, scope.iter().map(String::as_str))?;
        let txn = self.db.begin().await?;
        let key = (mark.campaign_id.clone(), mark.customer_id.clone());
        let was = vip_customer::Entity::find_by_id(key.clone())
            .one(&txn)
            .await?
            .is_some();
        match (was, mark.vip) {
            (false, true) => {
                vip_customer::Entity::insert(vip_customer::ActiveModel {
                    campaign_id: Set(key.0),
                    customer_id: Set(key.1),
                })
                .exec(&txn)
                .await?;
            }
            (true, false) => {
                vip_customer::Entity::delete_by_id(key).exec(&txn).await?;
            }
            _ => {}
        }
        // The customer's waiting attentions take their new place in the
        // queue at once (a mark in every campaign still counts where the
        // campaign's own mark was removed, and the other way round).
        for campaign_id in &scope {
            let vip = is_vip(&txn, campaign_id, &mark.customer_id).await?;
            attention::Entity::update_many()
                .col_expr(attention::Column::Priority, Expr::value(i32::from(vip)))
                .filter(attention::Column::CampaignId.eq(campaign_id))
                .filter(attention::Column::CustomerId.eq(&mark.customer_id))
                .filter(
                    attention::Column::State
                        .is_in([State::Queued.as_str(), State::Offered.as_str()]),
                )
                .exec(&txn)
                .await?;
        }
        let before = VipMark {
            vip: was,
            ..mark.clone()
        };
        let target = format!("{}/{}", mark.campaign_id, mark.customer_id);
        audit(
            &txn,
            actor,
            "vip_customer.set",
            &target,
            &Some(before),
            &mark,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn deactivate_agent(
        &self,
        actor: &str,
        agent_id: &str,
    ) -> Result<AgentSettings, Error> {
        let supervised = self.supervised(actor).await?;
        let txn = self.db.begin().await?;
        let existing = agent::Entity::find_by_id(agent_id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent {agent_id}")))?;
        let memberships = campaign_agent::Entity::find()
            .filter(campaign_agent::Column::AgentId.eq(agent_id))
            .all(&txn)
            .await?;
        allow(
            &supervised,
            memberships.iter().map(|m| m.campaign_id.as_str()),
        )?;
        let before = AgentSettings::from_models(&existing, &memberships);
        campaign_agent::Entity::delete_many()
            .filter(campaign_agent::Column::AgentId.eq(agent_id))
            .exec(&txn)
            .await?;
        agent::Entity::update(agent::ActiveModel {
            id: Set(existing.id.clone()),
            presence: Set(PresenceState::Offline.as_str().to_owned()),
            pause_reason: Set(None),
            presence_changed_at: Set(Some(Utc::now())),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        // Going offline this way is a presence change like any other.
        let payload = serde_json::json!({
            "actor": actor,
            "agent_id": agent_id,
            "reason": "deactivated",
            "from": existing.presence,
            "to": PresenceState::Offline.as_str(),
        });
        record_event(&txn, uuid::Uuid::nil(), event::PRESENCE, payload).await?;
        let after = AgentSettings {
            campaigns: Vec::new(),
            ..before.clone()
        };
        audit(
            &txn,
            actor,
            "agent.deactivate",
            agent_id,
            &Some(before),
            &after,
        )
        .await?;
        txn.commit().await?;
        // Offers waiting for them go to someone else now, not at their deadline.
        self.hand_back_offers(agent_id).await?;
        Ok(after)
    }

    pub async fn deactivate_supervisor(
        &self,
        actor: &str,
        supervisor_id: &str,
    ) -> Result<(), Error> {
        let supervised = self.supervised(actor).await?;
        let txn = self.db.begin().await?;
        let existing = supervisor::Entity::find_by_id(supervisor_id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("supervisor {supervisor_id}")))?;
        let campaign_ids: Vec<String> = supervisor_campaign::Entity::find()
            .filter(supervisor_campaign::Column::SupervisorId.eq(supervisor_id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|s| s.campaign_id)
            .collect();
        allow(&supervised, campaign_ids.iter().map(String::as_str))?;
        supervisor::Entity::update(supervisor::ActiveModel {
            id: Set(existing.id.clone()),
            active: Set(false),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let before = SupervisorSettings {
            id: existing.id,
            name: existing.name,
            campaign_ids,
        };
        let after = serde_json::json!({ "active": false });
        audit(
            &txn,
            actor,
            "supervisor.deactivate",
            supervisor_id,
            &Some(serde_json::json!(before)),
            &after,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The campaigns the actor oversees: a supervisor's, or a reporter's (both
    /// registered with SaveSupervisor; the role in the credential says which
    /// may change things). A caller with no active record sees nothing.
    pub(crate) async fn supervised(&self, actor: &str) -> Result<BTreeSet<String>, Error> {
        if !supervisor::Entity::find_by_id(actor)
            .one(&self.db)
            .await?
            .is_some_and(|s| s.active)
        {
            return Err(Error::PermissionDenied(
                "you oversee no campaign: a supervisor registers supervisors and reporters, with \
                 the campaigns they oversee, with AdminService.SaveSupervisor"
                    .into(),
            ));
        }
        Ok(supervisor_campaign::Entity::find()
            .filter(supervisor_campaign::Column::SupervisorId.eq(actor))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| s.campaign_id)
            .collect())
    }

    /// INVALID_ARGUMENT on `field` unless every campaign exists and is active.
    async fn require_campaigns(&self, ids: &[&str], field: &str) -> Result<(), Error> {
        let found = campaign::Entity::find()
            .filter(campaign::Column::Id.is_in(ids.iter().copied()))
            .filter(campaign::Column::Active.eq(true))
            .all(&self.db)
            .await?;
        let mut v = Violations::default();
        for id in ids {
            v.check(
                found.iter().any(|c| c.id == *id),
                field,
                &format!("no active campaign {id}"),
            );
        }
        v.into_result(())
    }
}

/// PERMISSION_DENIED unless the actor supervises every campaign touched.
pub(crate) fn allow<'a>(
    supervised: &BTreeSet<String>,
    touched: impl IntoIterator<Item = &'a str>,
) -> Result<(), Error> {
    match touched.into_iter().find(|c| !supervised.contains(*c)) {
        None => Ok(()),
        Some(campaign) => Err(Error::PermissionDenied(format!(
            "you do not supervise campaign {campaign}"
        ))),
    }
}

async fn audit<T: Serialize>(
    txn: &impl ConnectionTrait,
    actor: &str,
    action: &str,
    target: &str,
    before: &Option<T>,
    after: &T,
) -> Result<(), Error> {
    admin_audit::Entity::insert(admin_audit::ActiveModel {
        actor: Set(actor.to_owned()),
        action: Set(action.to_owned()),
        target: Set(target.to_owned()),
        before: Set(before.as_ref().and_then(json)),
        after: Set(json(after)),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    Ok(())
}
