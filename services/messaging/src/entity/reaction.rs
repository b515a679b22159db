//! One reaction message (either side), kept for the message it reacts to.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_reactions")]
pub struct Model {
    /// Arrival order.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The reaction message.
    #[sea_orm(unique)]
    pub message_id: Uuid,
    /// The message reacted to; it may not be stored yet.
    pub target_wamid: String,
    /// See [`crate::domain::Direction`].
    pub direction: String,
    /// Empty: removed.
    pub emoji: String,
    pub reacted_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
