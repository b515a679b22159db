//! Events written in the same transaction as the state change they announce.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub attention_id: Uuid,
    pub kind: String,
    pub payload: Json,
    pub created_at: DateTimeUtc,
    /// Commit-ordered position (the live feed's cursor); set shortly after
    /// the event commits.
    pub position: Option<i64>,
    /// The agent holding the attention when the event was written, while it
    /// was open: its conversation's events are that agent's alone.
    pub holder: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
