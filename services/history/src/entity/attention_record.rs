//! One finished attention, without its messages.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attention_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub attention_id: String,
    pub campaign_id: String,
    pub campaign_name: String,
    pub business_phone_number_id: String,
    pub customer_id: String,
    pub customer_wa_id: String,
    pub customer_user_id: String,
    pub customer_name: String,
    pub direction: String,
    pub agent_id: String,
    pub created_at: DateTimeUtc,
    pub opened_at: Option<DateTimeUtc>,
    pub finished_at: DateTimeUtc,
    pub message_count: i32,
    /// The form submission, protobuf-encoded.
    pub form: Option<Vec<u8>>,
    pub recorded_at: DateTimeUtc,
    pub tag: String,
    /// JSON list of agent ids, in the order they held the attention.
    pub agent_ids: Option<Json>,
    /// JSON list of `crate::record::Transfer`.
    pub transfers: Option<Json>,
    pub first_response_at: Option<DateTimeUtc>,
    /// The form's disposition path joined by `/`; empty when none.
    pub disposition: String,
    /// When retention deleted its transcript and form answers.
    pub transcript_deleted_at: Option<DateTimeUtc>,
    /// When its customer's data was erased on request.
    pub erased_at: Option<DateTimeUtc>,
    /// When messaging, form and queue purged their copies too.
    pub purged_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
