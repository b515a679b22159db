//! A customer who asked a business number not to be written to.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_opt_outs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub business_phone_number_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    /// `customer` (an opt-out word) or `supervisor`.
    pub source: String,
    /// The supervisor, or the customer's message id.
    pub actor: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
