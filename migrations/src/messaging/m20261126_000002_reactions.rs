use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per reaction message (either side), never updated: what a
        // message shows is folded from its rows when it is listed, so replays
        // and out-of-order webhooks cannot leave a wrong "current" reaction.
        // Keyed by the reacted-to wamid, which may not be known yet.
        manager
            .create_table(
                Table::create()
                    .table(MessagingReactions::Table)
                    // Arrival order: breaks ties between reactions made in the
                    // same second (WhatsApp's timestamps have whole seconds).
                    .col(big_pk_auto(MessagingReactions::Id))
                    // The reaction message itself; unique, so a redelivered
                    // webhook adds nothing.
                    .col(uuid(MessagingReactions::MessageId).unique_key())
                    .col(string(MessagingReactions::TargetWamid))
                    .col(string(MessagingReactions::Direction))
                    // Empty: the reaction was removed.
                    .col(string(MessagingReactions::Emoji))
                    .col(timestamp_with_time_zone(MessagingReactions::ReactedAt))
                    .col(timestamp_with_time_zone(MessagingReactions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("messaging_reactions_target")
                    .table(MessagingReactions::Table)
                    .col(MessagingReactions::TargetWamid)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessagingReactions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MessagingReactions {
    Table,
    Id,
    MessageId,
    TargetWamid,
    Direction,
    Emoji,
    ReactedAt,
    CreatedAt,
}
