use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub created_at: DateTimeUtc,
    /// See `crate::admin::AssignmentMode`.
    pub assignment_mode: String,
    pub accept_timeout_seconds: i32,
    /// 0: attentions never overflow.
    pub max_queue_seconds: i32,
    pub overflow_campaign_id: Option<String>,
    pub default_agent_capacity: i32,
    pub active: bool,
    /// See `crate::hours::BusinessHours`; none: always open.
    pub business_hours: Option<Json>,
    pub orphan_grace_seconds: i32,
    /// See `crate::admin::Tag`; a JSON list.
    pub tags: Option<Json>,
    /// See `crate::admin::TemplateRef`; none: no automatic answer.
    pub out_of_hours_template: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
