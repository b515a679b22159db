//! A commit-ordered position on every outbox event, the cursor of the live
//! event feed; and the delivery statuses and window closings already
//! announced in it, so each is announced once. Ids are handed out when a row is inserted, so a reader that
//! remembers the last id it saw can miss a smaller id committed later;
//! positions are handed out after commit, one sequencing transaction at a
//! time, so they only ever grow in the order readers can see them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(big_integer_null(Outbox::Position))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("queue_outbox_position")
                    .table(Outbox::Table)
                    .col(Outbox::Position)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MessageStatuses::Table)
                    .col(string(MessageStatuses::MessageId))
                    .col(string(MessageStatuses::Status))
                    .primary_key(
                        Index::create()
                            .col(MessageStatuses::MessageId)
                            .col(MessageStatuses::Status),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WindowWarnings::Table)
                    .col(string(WindowWarnings::AttentionId))
                    .col(timestamp_with_time_zone(WindowWarnings::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(WindowWarnings::AttentionId)
                            .col(WindowWarnings::ExpiresAt),
                    )
                    .to_owned(),
            )
            .await?;
        // The highest position pruned from the feed: older cursors cannot resume.
        manager
            .create_table(
                Table::create()
                    .table(FeedHorizon::Table)
                    .col(integer(FeedHorizon::Id).primary_key())
                    .col(big_integer(FeedHorizon::PrunedPosition))
                    .to_owned(),
            )
            .await?;
        // What the sequencer looks for: the few events without a position.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX queue_outbox_unsequenced ON queue_outbox (id) WHERE position IS NULL",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FeedHorizon::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WindowWarnings::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MessageStatuses::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("queue_outbox_unsequenced")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("queue_outbox_position")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::Position)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    #[sea_orm(iden = "queue_outbox")]
    Table,
    Position,
}

#[derive(DeriveIden)]
enum MessageStatuses {
    #[sea_orm(iden = "queue_message_statuses")]
    Table,
    MessageId,
    Status,
}

#[derive(DeriveIden)]
enum WindowWarnings {
    #[sea_orm(iden = "queue_window_warnings")]
    Table,
    AttentionId,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum FeedHorizon {
    #[sea_orm(iden = "queue_feed_horizon")]
    Table,
    Id,
    PrunedPosition,
}
