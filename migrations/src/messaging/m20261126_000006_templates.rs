//! The templates WhatsApp approved for each business number (issue 7): sends
//! check a template's status and parameters here before calling WhatsApp.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MessagingTemplates::Table)
                    .col(string(MessagingTemplates::BusinessPhoneNumberId))
                    .col(string(MessagingTemplates::Name))
                    .col(string(MessagingTemplates::Language))
                    .col(string(MessagingTemplates::Category))
                    .col(string(MessagingTemplates::Status))
                    .col(text(MessagingTemplates::Body))
                    .col(integer(MessagingTemplates::BodyParameterCount))
                    .col(string(MessagingTemplates::HeaderText))
                    // [{"kind", "text", "value"}]
                    .col(json(MessagingTemplates::Buttons))
                    .col(timestamp_with_time_zone(MessagingTemplates::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(MessagingTemplates::BusinessPhoneNumberId)
                            .col(MessagingTemplates::Name)
                            .col(MessagingTemplates::Language),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessagingTemplates::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MessagingTemplates {
    Table,
    BusinessPhoneNumberId,
    Name,
    Language,
    Category,
    Status,
    Body,
    BodyParameterCount,
    HeaderText,
    Buttons,
    UpdatedAt,
}
