//! A media file, received or sent: its durable state (the bytes are in the
//! object store under a key made from `id`).

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messaging_media")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `inbound` or `outbound` (see [`crate::domain::Direction`]).
    pub direction: String,
    /// Inbound: the message it came with.
    #[sea_orm(unique)]
    pub message_id: Option<Uuid>,
    /// Outbound: the attention it was uploaded for.
    pub attention_id: Option<Uuid>,
    pub business_phone_number_id: String,
    /// See [`crate::media::MediaKind`].
    pub kind: String,
    pub mime_type: String,
    pub filename: Option<String>,
    /// See [`crate::media::MediaState`].
    pub state: String,
    /// Inbound: the id to fetch it with; outbound: WhatsApp's id of the upload.
    pub whatsapp_media_id: Option<String>,
    /// Base64 from the webhook (inbound) or hex from the agent's client (outbound).
    pub expected_sha256: Option<String>,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: Option<String>,
    pub declared_size: Option<i64>,
    pub size_bytes: Option<i64>,
    pub received_bytes: i64,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
