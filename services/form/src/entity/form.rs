//! One published form version.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "forms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub campaign_id: String,
    pub direction: String,
    pub version: i32,
    pub title: String,
    /// The serialized [`crate::definition::FormDefinition`].
    pub definition: Json,
    pub created_at: DateTimeUtc,
    /// Supervisor who published it; empty for the demo forms.
    pub published_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
