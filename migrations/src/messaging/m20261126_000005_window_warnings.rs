//! Which window closing was already announced: the customer's latest message
//! time the warning was for (a newer message reopens the window and earns a
//! new warning later).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Windows::Table)
                    .add_column(timestamp_with_time_zone_null(Windows::WarnedFor))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Windows::Table)
                    .drop_column(Windows::WarnedFor)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Windows {
    #[sea_orm(iden = "messaging_windows")]
    Table,
    WarnedFor,
}
