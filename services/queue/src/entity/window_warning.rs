//! Window closings already announced in the outbox, once per attention and
//! closing time.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_window_warnings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub attention_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
