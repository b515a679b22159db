//! An attention's draft and, once submitted, its submission.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "drafts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub attention_id: String,
    pub form_id: Uuid,
    /// The serialized [`crate::draft::Values`].
    pub values: Json,
    /// Compared and bumped by every write, so concurrent saves never lose fields.
    pub revision: i32,
    pub updated_at: DateTimeUtc,
    pub submitted_at: Option<DateTimeUtc>,
    /// The serialized [`crate::draft::Submission`].
    pub submission: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
