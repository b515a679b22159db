use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Forms::Table)
                    .col(uuid(Forms::Id).primary_key())
                    .col(string(Forms::CampaignId))
                    .col(string(Forms::Direction))
                    .col(integer(Forms::Version))
                    .col(string(Forms::Title))
                    .col(json(Forms::Definition))
                    .col(timestamp_with_time_zone(Forms::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Two supervisors publishing at once both compute version n+1; the key
        // lets exactly one of them win.
        manager
            .create_index(
                Index::create()
                    .name("forms_campaign_direction_version")
                    .table(Forms::Table)
                    .col(Forms::CampaignId)
                    .col(Forms::Direction)
                    .col(Forms::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Drafts::Table)
                    .col(string(Drafts::AttentionId).primary_key())
                    .col(uuid(Drafts::FormId))
                    .col(json(Drafts::Values))
                    // Bumped on every save: concurrent saves compare and swap it so
                    // that none of them loses another's fields.
                    .col(integer(Drafts::Revision))
                    .col(timestamp_with_time_zone(Drafts::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Drafts::SubmittedAt))
                    .col(json_null(Drafts::Submission))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Drafts::Table, Drafts::FormId)
                            .to(Forms::Table, Forms::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Drafts::Table.into_iden(), Forms::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Forms {
    Table,
    Id,
    CampaignId,
    Direction,
    Version,
    Title,
    Definition,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Drafts {
    Table,
    AttentionId,
    FormId,
    Values,
    Revision,
    UpdatedAt,
    SubmittedAt,
    Submission,
}
