//! The 24-hour customer service window of a customer on a business number.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_windows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub business_phone_number_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    /// The customer's latest message (WhatsApp's time); the window ends 24 h later.
    pub last_inbound_at: DateTime<Utc>,
    /// When WhatsApp said the window was closed (error 131047).
    pub closed_at: Option<DateTime<Utc>>,
    /// The `last_inbound_at` whose coming close was announced.
    pub warned_for: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
