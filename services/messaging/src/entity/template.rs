//! A template WhatsApp approved (or paused, or rejected) for a business number.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub business_phone_number_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub language: String,
    /// marketing, utility or authentication.
    pub category: String,
    /// approved, paused or rejected.
    pub status: String,
    pub body: String,
    pub body_parameter_count: i32,
    /// Empty for none.
    pub header_text: String,
    /// `[{"kind", "text", "value"}]`.
    pub buttons: Json,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
