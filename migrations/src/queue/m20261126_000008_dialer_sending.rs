//! What a dialer needs to send (issue 7): when its next message is due, which
//! replica holds it, what stops or slows it, the agent replies go to; for
//! each contact, the attention its template went out in, the message, and
//! why it failed.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        for column in [
            // Not before this time (the pace, a schedule, WhatsApp's limits).
            timestamp_with_time_zone_null(Dialers::NextSendAt),
            // The replica sending for it, until `lease_until`.
            string_null(Dialers::LeaseOwner),
            timestamp_with_time_zone_null(Dialers::LeaseUntil),
            // Why it is not sending now, or what WhatsApp said last.
            string_null(Dialers::Notice),
            // The agent replies go to; none: the campaign's queue.
            string_null(Dialers::AgentId),
        ] {
            add(manager, Dialers::Table, column).await?;
        }
        for column in [
            // The attention its template went out in: a reply starts it.
            uuid_null(DialerContacts::AttentionId),
            // Messaging's id of the last try.
            string_null(DialerContacts::MessageId),
            // A failed try is tried again from this time.
            timestamp_with_time_zone_null(DialerContacts::NextTryAt),
            timestamp_with_time_zone_null(DialerContacts::SentAt),
            // Why it failed or was not contacted.
            string_null(DialerContacts::Reason),
        ] {
            add(manager, DialerContacts::Table, column).await?;
        }
        // Statuses find the contact by attention; replies by customer.
        manager
            .create_index(
                Index::create()
                    .name("dialer_contacts_attention")
                    .table(DialerContacts::Table)
                    .col(DialerContacts::AttentionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("dialer_contacts_reply")
                    .table(DialerContacts::Table)
                    .col(DialerContacts::CustomerId)
                    .col(DialerContacts::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["dialer_contacts_reply", "dialer_contacts_attention"] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(DialerContacts::Table)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            DialerContacts::AttentionId,
            DialerContacts::MessageId,
            DialerContacts::NextTryAt,
            DialerContacts::SentAt,
            DialerContacts::Reason,
        ] {
            drop(manager, DialerContacts::Table, column).await?;
        }
        for column in [
            Dialers::NextSendAt,
            Dialers::LeaseOwner,
            Dialers::LeaseUntil,
            Dialers::Notice,
            Dialers::AgentId,
        ] {
            drop(manager, Dialers::Table, column).await?;
        }
        Ok(())
    }
}

async fn add(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    mut column: ColumnDef,
) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

async fn drop(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: impl IntoIden,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

#[derive(DeriveIden)]
enum Dialers {
    Table,
    NextSendAt,
    LeaseOwner,
    LeaseUntil,
    Notice,
    AgentId,
}

#[derive(DeriveIden)]
enum DialerContacts {
    Table,
    AttentionId,
    MessageId,
    NextTryAt,
    SentAt,
    Reason,
    CustomerId,
    State,
}
