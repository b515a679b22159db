use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attentions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub campaign_id: String,
    pub business_phone_number_id: String,
    pub customer_id: String,
    pub customer_wa_id: String,
    pub customer_user_id: String,
    pub customer_name: String,
    /// `inbound` or `outbound` (see `crate::attention::Direction`).
    pub direction: String,
    /// `queued`, `offered`, `open` or `finished` (see `crate::attention::State`).
    pub state: String,
    pub agent_id: Option<String>,
    pub form_id: Option<String>,
    pub last_message_preview: String,
    pub last_message_at: DateTimeUtc,
    pub unread_count: i32,
    pub created_at: DateTimeUtc,
    pub opened_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// When it last entered its queue; with `priority`, the serving order.
    pub queued_at: Option<DateTimeUtc>,
    /// 1 for a VIP customer, 0 otherwise; higher is served first.
    pub priority: i32,
    /// The one agent an `offered` attention waits for; none: offered to all.
    pub offered_to: Option<String>,
    pub offer_expires_at: Option<DateTimeUtc>,
    pub out_of_hours: bool,
    pub orphaned: bool,
    pub overflowed: bool,
    pub tag: Option<String>,
    pub transfer_note: Option<String>,
    /// The client's key of the start that made an outbound attention.
    pub start_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
