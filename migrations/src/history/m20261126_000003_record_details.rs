//! What a record tells beyond its transcript: the tag, every agent who held
//! the attention, its transfers, when the business first answered and the
//! form's disposition.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(AttentionRecords::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in columns() {
            let name = Alias::new(column.get_column_name());
            manager
                .alter_table(
                    Table::alter()
                        .table(AttentionRecords::Table)
                        .drop_column(name)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Added one per ALTER: SQLite adds only one at a time.
fn columns() -> Vec<ColumnDef> {
    vec![
        string(AttentionRecords::Tag).default("").take(),
        json_null(AttentionRecords::AgentIds).take(),
        json_null(AttentionRecords::Transfers).take(),
        timestamp_with_time_zone_null(AttentionRecords::FirstResponseAt).take(),
        // The form's disposition path joined by `/`; empty when none.
        string(AttentionRecords::Disposition).default("").take(),
    ]
}

#[derive(DeriveIden)]
enum AttentionRecords {
    Table,
    Tag,
    AgentIds,
    Transfers,
    FirstResponseAt,
    Disposition,
}
