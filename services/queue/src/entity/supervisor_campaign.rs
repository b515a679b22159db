use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "supervisor_campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub supervisor_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub campaign_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
