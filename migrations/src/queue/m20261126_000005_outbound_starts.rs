//! Outbound attentions started by agents (issue 7): the key of the start that
//! made one, so a repeated start (a client retry) finds it again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Attentions::Table)
                    .add_column(string_null(Attentions::StartKey))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("attentions_start_key")
                    .table(Attentions::Table)
                    .col(Attentions::StartKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("attentions_start_key").to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Attentions::Table)
                    .drop_column(Attentions::StartKey)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Attentions {
    Table,
    StartKey,
}
