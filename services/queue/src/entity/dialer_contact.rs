//! One line of a dialer's contact list and how far it got.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dialer_contacts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dialer_id: Uuid,
    /// Line in the uploaded list.
    #[sea_orm(primary_key, auto_increment = false)]
    pub line: i32,
    /// The number's digits (WhatsApp id).
    pub customer_id: String,
    /// The template's body parameters, a JSON list.
    pub parameters: Json,
    /// pending, sent, delivered, read, replied, failed or not_contacted.
    pub state: String,
    pub attempts: i32,
    pub updated_at: DateTimeUtc,
    /// The attention its template went out in: a reply starts it.
    pub attention_id: Option<Uuid>,
    /// Messaging's id of the last try.
    pub message_id: Option<String>,
    /// A failed try is tried again from this time.
    pub next_try_at: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    /// Why it failed or was not contacted.
    pub reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
