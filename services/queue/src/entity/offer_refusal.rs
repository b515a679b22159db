//! Agents who declined an attention or let its offer lapse.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_offer_refusals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub attention_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_id: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
