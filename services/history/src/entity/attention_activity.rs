//! What reports count of one attention, folded from its events. It holds no
//! customer data, so erasure and retention leave it as it is.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attention_activity")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub attention_id: String,
    pub campaign_id: String,
    pub direction: String,
    pub state: String,
    /// The agent holding it, or who last did; empty if none ever did.
    pub agent_id: String,
    pub created_at: DateTimeUtc,
    pub first_opened_at: Option<DateTimeUtc>,
    pub first_response_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub first_response_seconds: Option<i32>,
    pub handling_seconds: Option<i32>,
    pub reassignments: i32,
    pub orphaned: bool,
    pub messages_received: i32,
    pub messages_sent: i32,
    /// The newest event applied (see the migration).
    pub last_event_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
