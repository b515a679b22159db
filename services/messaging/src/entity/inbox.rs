//! Webhook bodies as received, until the processor has handled every item.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_inbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The raw bytes Meta signed; never re-serialised.
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// Set once every message and status of the body is stored (and routed).
    pub processed_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// Backoff: the processor leaves the row alone until then.
    pub next_attempt_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
