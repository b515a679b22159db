//! Supervisors' dialers (issue 7): a campaign's contact list written to with
//! a template at a pace, within a schedule; each contact's progress.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Dialers::Table)
                    .col(uuid(Dialers::Id).primary_key())
                    .col(string(Dialers::CampaignId))
                    .col(string(Dialers::BusinessPhoneNumberId))
                    .col(string(Dialers::TemplateName))
                    .col(string(Dialers::TemplateLanguage))
                    .col(integer(Dialers::TemplateParameterCount))
                    .col(integer(Dialers::MessagesPerMinute))
                    // See `BusinessHours`; none: any time.
                    .col(json_null(Dialers::Schedule))
                    .col(integer(Dialers::MaxAttempts))
                    .col(integer(Dialers::RetryAfterMinutes))
                    .col(string(Dialers::State))
                    .col(string(Dialers::CreatedBy))
                    .col(timestamp_with_time_zone(Dialers::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DialerContacts::Table)
                    .col(uuid(DialerContacts::DialerId))
                    // Line in the uploaded list: a repeated chunk adds nothing.
                    .col(integer(DialerContacts::Line))
                    .col(string(DialerContacts::CustomerId))
                    .col(json(DialerContacts::Parameters))
                    .col(string(DialerContacts::State))
                    .col(integer(DialerContacts::Attempts).default(0))
                    .col(timestamp_with_time_zone(DialerContacts::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(DialerContacts::DialerId)
                            .col(DialerContacts::Line),
                    )
                    .to_owned(),
            )
            .await?;
        // A customer is written to once per dialer.
        manager
            .create_index(
                Index::create()
                    .name("dialer_contacts_customer")
                    .table(DialerContacts::Table)
                    .col(DialerContacts::DialerId)
                    .col(DialerContacts::CustomerId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DialerContacts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Dialers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Dialers {
    Table,
    Id,
    CampaignId,
    BusinessPhoneNumberId,
    TemplateName,
    TemplateLanguage,
    TemplateParameterCount,
    MessagesPerMinute,
    Schedule,
    MaxAttempts,
    RetryAfterMinutes,
    State,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DialerContacts {
    Table,
    DialerId,
    Line,
    CustomerId,
    Parameters,
    State,
    Attempts,
    UpdatedAt,
}
