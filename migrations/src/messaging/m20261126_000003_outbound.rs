//! Outbound sending (issue 3): retries of the durable send pipeline, read
//! receipts, and the 24-hour customer service window.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite cannot add several in one statement.
        for column in [
            // Failed tries of an outbound message so far; retries stop at the setting.
            integer(MessagingMessages::SendAttempts)
                .default(0)
                .to_owned(),
            // Why the last try of a still-pending message did not go through.
            text_null(MessagingMessages::SendError),
            // Inbound: when WhatsApp was told it was read (blue ticks).
            timestamp_with_time_zone_null(MessagingMessages::MarkedReadAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MessagingMessages::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // The background sender's question: which pending messages are due
        // (`sending_until` is both the lease and the backoff's end).
        manager
            .create_index(
                Index::create()
                    .name("messaging_messages_send_due")
                    .table(MessagingMessages::Table)
                    .col(MessagingMessages::Status)
                    .col(MessagingMessages::SendingUntil)
                    .to_owned(),
            )
            .await?;
        // The 24-hour window per (business number, customer): opened by the
        // customer's last message, closed early when WhatsApp answers 131047.
        manager
            .create_table(
                Table::create()
                    .table(MessagingWindows::Table)
                    .col(string(MessagingWindows::BusinessPhoneNumberId))
                    .col(string(MessagingWindows::CustomerId))
                    .col(timestamp_with_time_zone(MessagingWindows::LastInboundAt))
                    // Set by a 131047; it closes the window only while no later
                    // customer message has reopened it.
                    .col(timestamp_with_time_zone_null(MessagingWindows::ClosedAt))
                    .col(timestamp_with_time_zone(MessagingWindows::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(MessagingWindows::BusinessPhoneNumberId)
                            .col(MessagingWindows::CustomerId),
                    )
                    .to_owned(),
            )
            .await?;
        // Conversations stored before this migration keep their windows.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO messaging_windows \
                 (business_phone_number_id, customer_id, last_inbound_at, closed_at, updated_at) \
                 SELECT business_phone_number_id, customer_id, MAX(sent_at), NULL, MAX(sent_at) \
                 FROM messaging_messages \
                 WHERE direction = 'inbound' AND customer_id <> '' AND message_type <> 'system' \
                 GROUP BY business_phone_number_id, customer_id",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessagingWindows::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("messaging_messages_send_due")
                    .table(MessagingMessages::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            MessagingMessages::MarkedReadAt,
            MessagingMessages::SendError,
            MessagingMessages::SendAttempts,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MessagingMessages::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum MessagingMessages {
    Table,
    Status,
    SendingUntil,
    SendAttempts,
    SendError,
    MarkedReadAt,
}

#[derive(DeriveIden)]
enum MessagingWindows {
    Table,
    BusinessPhoneNumberId,
    CustomerId,
    LastInboundAt,
    ClosedAt,
    UpdatedAt,
}
