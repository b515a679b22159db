//! Reports and privacy: the lifecycle events of every attention and one
//! anonymous activity row per attention that reports count from; retention
//! per campaign; erasure records; on a record, when its transcript was
//! deleted (retention) or its customer erased; and on a transcript message,
//! its structured content (media reference, location, contacts, reply
//! context, reactions).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AttentionEvents::Table)
                    // The id in the queue's outbox: delivery may repeat, this key
                    // makes it count once.
                    .col(big_integer(AttentionEvents::EventId).primary_key())
                    .col(string(AttentionEvents::AttentionId))
                    .col(string(AttentionEvents::Kind))
                    .col(string(AttentionEvents::CampaignId))
                    .col(string(AttentionEvents::Actor))
                    .col(string(AttentionEvents::AgentId))
                    .col(timestamp_with_time_zone(AttentionEvents::OccurredAt))
                    .col(json(AttentionEvents::Payload))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("attention_events_attention")
                    .table(AttentionEvents::Table)
                    .col(AttentionEvents::AttentionId)
                    .col(AttentionEvents::EventId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AttentionActivity::Table)
                    .col(string(AttentionActivity::AttentionId).primary_key())
                    .col(string(AttentionActivity::CampaignId))
                    .col(string(AttentionActivity::Direction))
                    .col(string(AttentionActivity::State))
                    // The agent holding it, or who last did; empty if none ever.
                    .col(string(AttentionActivity::AgentId))
                    .col(timestamp_with_time_zone(AttentionActivity::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        AttentionActivity::FirstOpenedAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        AttentionActivity::FirstResponseAt,
                    ))
                    .col(timestamp_with_time_zone_null(AttentionActivity::FinishedAt))
                    // Seconds, so both databases average them the same way.
                    .col(integer_null(AttentionActivity::FirstResponseSeconds))
                    .col(integer_null(AttentionActivity::HandlingSeconds))
                    .col(integer(AttentionActivity::Reassignments).default(0))
                    .col(boolean(AttentionActivity::Orphaned).default(false))
                    .col(integer(AttentionActivity::MessagesReceived).default(0))
                    .col(integer(AttentionActivity::MessagesSent).default(0))
                    // The newest event applied: state, agent and campaign follow
                    // it, so an old event delivered late changes only counts.
                    .col(big_integer(AttentionActivity::LastEventId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("attention_activity_report")
                    .table(AttentionActivity::Table)
                    .col(AttentionActivity::CampaignId)
                    .col(AttentionActivity::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignRetentions::Table)
                    .col(string(CampaignRetentions::CampaignId).primary_key())
                    .col(integer(CampaignRetentions::Days))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CustomerErasures::Table)
                    .col(string(CustomerErasures::Id).primary_key())
                    // SHA-256 of the customer id: proves whom it was for to
                    // someone who knows the id, tells no one else.
                    .col(string(CustomerErasures::CustomerHash))
                    .col(string(CustomerErasures::Actor))
                    .col(string(CustomerErasures::Reason))
                    .col(integer(CustomerErasures::Records))
                    .col(timestamp_with_time_zone(CustomerErasures::ErasedAt))
                    .to_owned(),
            )
            .await?;
        for mut column in [
            timestamp_with_time_zone_null(AttentionRecords::TranscriptDeletedAt).take(),
            timestamp_with_time_zone_null(AttentionRecords::ErasedAt).take(),
            // When messaging, form and queue all confirmed they purged their
            // copies too; until then every sweep asks them again.
            timestamp_with_time_zone_null(AttentionRecords::PurgedAt).take(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AttentionRecords::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // The message as the messaging service gave it (protobuf bytes).
        manager
            .alter_table(
                Table::alter()
                    .table(TranscriptMessages::Table)
                    .add_column(blob_null(TranscriptMessages::Content))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TranscriptMessages::Table)
                    .drop_column(TranscriptMessages::Content)
                    .to_owned(),
            )
            .await?;
        for column in [
            AttentionRecords::PurgedAt,
            AttentionRecords::ErasedAt,
            AttentionRecords::TranscriptDeletedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AttentionRecords::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            CustomerErasures::Table.into_iden(),
            CampaignRetentions::Table.into_iden(),
            AttentionActivity::Table.into_iden(),
            AttentionEvents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AttentionEvents {
    Table,
    EventId,
    AttentionId,
    Kind,
    CampaignId,
    Actor,
    AgentId,
    OccurredAt,
    Payload,
}

#[derive(DeriveIden)]
enum AttentionActivity {
    Table,
    AttentionId,
    CampaignId,
    Direction,
    State,
    AgentId,
    CreatedAt,
    FirstOpenedAt,
    FirstResponseAt,
    FinishedAt,
    FirstResponseSeconds,
    HandlingSeconds,
    Reassignments,
    Orphaned,
    MessagesReceived,
    MessagesSent,
    LastEventId,
}

#[derive(DeriveIden)]
enum CampaignRetentions {
    Table,
    CampaignId,
    Days,
}

#[derive(DeriveIden)]
enum CustomerErasures {
    Table,
    Id,
    CustomerHash,
    Actor,
    Reason,
    Records,
    ErasedAt,
}

#[derive(DeriveIden)]
enum TranscriptMessages {
    Table,
    Content,
}

#[derive(DeriveIden)]
enum AttentionRecords {
    Table,
    TranscriptDeletedAt,
    ErasedAt,
    PurgedAt,
}
