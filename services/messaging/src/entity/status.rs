//! A delivery status WhatsApp reported for an outbound message, once per
//! (wamid, status), kept even while the message is unknown.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_statuses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub wamid: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub status: String,
    pub business_phone_number_id: String,
    pub recipient_id: String,
    pub status_at: DateTime<Utc>,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_detail: Option<String>,
    pub raw: Option<Json>,
    pub received_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
