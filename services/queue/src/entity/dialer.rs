//! A supervisor's dialer.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dialers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub campaign_id: String,
    pub business_phone_number_id: String,
    pub template_name: String,
    pub template_language: String,
    pub template_parameter_count: i32,
    pub messages_per_minute: i32,
    /// See `crate::hours::BusinessHours`; none: any time.
    pub schedule: Option<Json>,
    pub max_attempts: i32,
    pub retry_after_minutes: i32,
    /// See `crate::dialer::DialerState`.
    pub state: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    /// Not before this time (the pace, a schedule, WhatsApp's limits).
    pub next_send_at: Option<DateTimeUtc>,
    /// The replica sending for it, until `lease_until`.
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// Why it is not sending now, or what WhatsApp said last.
    pub notice: Option<String>,
    /// The agent replies go to; none: the campaign's queue.
    pub agent_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
