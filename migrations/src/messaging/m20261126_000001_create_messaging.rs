use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Every signed webhook body, byte for byte, before it is parsed: the
        // webhook answers 200 once a row is here, the processor works from it.
        manager
            .create_table(
                Table::create()
                    .table(MessagingInbox::Table)
                    .col(big_pk_auto(MessagingInbox::Id))
                    .col(blob(MessagingInbox::Body))
                    .col(timestamp_with_time_zone(MessagingInbox::ReceivedAt))
                    .col(timestamp_with_time_zone_null(MessagingInbox::ProcessedAt))
                    .col(integer(MessagingInbox::Attempts))
                    .col(text_null(MessagingInbox::LastError))
                    .col(timestamp_with_time_zone(MessagingInbox::NextAttemptAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("messaging_inbox_pending")
                    .table(MessagingInbox::Table)
                    .col(MessagingInbox::ProcessedAt)
                    .col(MessagingInbox::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MessagingMessages::Table)
                    .col(uuid(MessagingMessages::Id).primary_key())
                    // NULL until WhatsApp accepts an outbound message; unique so a
                    // redelivered webhook stores its message once.
                    .col(string_null(MessagingMessages::Wamid).unique_key())
                    .col(string(MessagingMessages::Direction))
                    .col(uuid_null(MessagingMessages::AttentionId))
                    // inbound: pending → routed | unrouted (number bound to no campaign).
                    .col(string(MessagingMessages::Routing))
                    .col(string(MessagingMessages::BusinessPhoneNumberId))
                    .col(string(MessagingMessages::CustomerId))
                    .col(string(MessagingMessages::CustomerWaId))
                    .col(string(MessagingMessages::CustomerUserId))
                    .col(string(MessagingMessages::CustomerName))
                    .col(string(MessagingMessages::MessageType))
                    .col(text(MessagingMessages::Text))
                    .col(json_null(MessagingMessages::Raw))
                    .col(string(MessagingMessages::Status))
                    .col(big_integer_null(MessagingMessages::ErrorCode))
                    .col(text_null(MessagingMessages::ErrorTitle))
                    .col(text_null(MessagingMessages::ErrorDetail))
                    .col(timestamp_with_time_zone(MessagingMessages::SentAt))
                    .col(string_null(MessagingMessages::AgentId))
                    // Outbound only: the client's key, so a repeated send is a no-op.
                    .col(string_null(MessagingMessages::IdempotencyKey).unique_key())
                    // While set and in the future, one SendText call owns the Graph call.
                    .col(timestamp_with_time_zone_null(
                        MessagingMessages::SendingUntil,
                    ))
                    .col(timestamp_with_time_zone(MessagingMessages::CreatedAt))
                    .col(timestamp_with_time_zone(MessagingMessages::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The conversation of an attention, newest first (keyset on time, id).
        manager
            .create_index(
                Index::create()
                    .name("messaging_messages_attention_time")
                    .table(MessagingMessages::Table)
                    .col(MessagingMessages::AttentionId)
                    .col(MessagingMessages::SentAt)
                    .col(MessagingMessages::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("messaging_messages_routing")
                    .table(MessagingMessages::Table)
                    .col(MessagingMessages::Routing)
                    .to_owned(),
            )
            .await?;
        // Every status WhatsApp reported, once per (wamid, status), whether or
        // not the message is known yet: a send's answer can lose the race with
        // its first status webhook.
        manager
            .create_table(
                Table::create()
                    .table(MessagingStatuses::Table)
                    .col(string(MessagingStatuses::Wamid))
                    .col(string(MessagingStatuses::Status))
                    .col(string(MessagingStatuses::BusinessPhoneNumberId))
                    .col(string(MessagingStatuses::RecipientId))
                    .col(timestamp_with_time_zone(MessagingStatuses::StatusAt))
                    .col(big_integer_null(MessagingStatuses::ErrorCode))
                    .col(text_null(MessagingStatuses::ErrorTitle))
                    .col(text_null(MessagingStatuses::ErrorDetail))
                    .col(json_null(MessagingStatuses::Raw))
                    .col(timestamp_with_time_zone(MessagingStatuses::ReceivedAt))
                    .primary_key(
                        Index::create()
                            .col(MessagingStatuses::Wamid)
                            .col(MessagingStatuses::Status),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MessagingStatuses::Table.into_iden(),
            MessagingMessages::Table.into_iden(),
            MessagingInbox::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum MessagingInbox {
    Table,
    Id,
    Body,
    ReceivedAt,
    ProcessedAt,
    Attempts,
    LastError,
    NextAttemptAt,
}

#[derive(DeriveIden)]
enum MessagingMessages {
    Table,
    Id,
    Wamid,
    Direction,
    AttentionId,
    Routing,
    BusinessPhoneNumberId,
    CustomerId,
    CustomerWaId,
    CustomerUserId,
    CustomerName,
    MessageType,
    Text,
    Raw,
    Status,
    ErrorCode,
    ErrorTitle,
    ErrorDetail,
    SentAt,
    AgentId,
    IdempotencyKey,
    SendingUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MessagingStatuses {
    Table,
    Wamid,
    Status,
    BusinessPhoneNumberId,
    RecipientId,
    StatusAt,
    ErrorCode,
    ErrorTitle,
    ErrorDetail,
    Raw,
    ReceivedAt,
}
