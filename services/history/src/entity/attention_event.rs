//! One lifecycle event of an attention, as the queue's outbox had it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attention_events")]
pub struct Model {
    /// The id in the queue's outbox.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: i64,
    pub attention_id: String,
    pub kind: String,
    pub campaign_id: String,
    pub actor: String,
    pub agent_id: String,
    pub occurred_at: DateTimeUtc,
    pub payload: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
