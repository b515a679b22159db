//! Who published each form version: versions are never changed, so with
//! their time and content they are the form's audit trail.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Forms::Table)
                    .add_column(string(Forms::PublishedBy).default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Forms::Table)
                    .drop_column(Forms::PublishedBy)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Forms {
    Table,
    PublishedBy,
}
