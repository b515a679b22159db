//! One WhatsApp message, inbound or outbound.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub wamid: Option<String>,
    /// `inbound` or `outbound` (see [`crate::domain::Direction`]).
    pub direction: String,
    pub attention_id: Option<Uuid>,
    /// See [`crate::domain::Routing`].
    pub routing: String,
    pub business_phone_number_id: String,
    pub customer_id: String,
    pub customer_wa_id: String,
    pub customer_user_id: String,
    pub customer_name: String,
    /// WhatsApp's type name, kept as sent even when unknown to us.
    pub message_type: String,
    pub text: String,
    /// Inbound: the message object of the webhook. Outbound: the Graph request body.
    pub raw: Option<Json>,
    /// See [`crate::domain::MessageStatus`].
    pub status: String,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_detail: Option<String>,
    pub sent_at: DateTime<Utc>,
    pub agent_id: Option<String>,
    #[sea_orm(unique)]
    pub idempotency_key: Option<String>,
    /// Outbound, pending: nobody sends it before then. A replica holds the
    /// send (its lease) or a retry waits out its backoff; NULL: due now.
    pub sending_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Outbound: failed tries so far.
    pub send_attempts: i32,
    /// Outbound, pending: why the last try did not go through.
    pub send_error: Option<String>,
    /// Inbound: when WhatsApp was told the business read it.
    pub marked_read_at: Option<DateTime<Utc>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
