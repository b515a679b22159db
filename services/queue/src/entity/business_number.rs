use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "business_numbers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub campaign_id: String,
    pub active: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
