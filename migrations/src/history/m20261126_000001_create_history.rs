use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AttentionRecords::Table)
                    .col(string(AttentionRecords::AttentionId).primary_key())
                    .col(string(AttentionRecords::CampaignId))
                    .col(string(AttentionRecords::CampaignName))
                    .col(string(AttentionRecords::BusinessPhoneNumberId))
                    .col(string(AttentionRecords::CustomerId))
                    .col(string(AttentionRecords::CustomerWaId))
                    .col(string(AttentionRecords::CustomerUserId))
                    .col(string(AttentionRecords::CustomerName))
                    .col(string(AttentionRecords::Direction))
                    .col(string(AttentionRecords::AgentId))
                    .col(timestamp_with_time_zone(AttentionRecords::CreatedAt))
                    .col(timestamp_with_time_zone_null(AttentionRecords::OpenedAt))
                    .col(timestamp_with_time_zone(AttentionRecords::FinishedAt))
                    .col(integer(AttentionRecords::MessageCount))
                    // The submitted form as the form service sent it (protobuf
                    // bytes): history shows it, it does not interpret it.
                    .col(blob_null(AttentionRecords::Form))
                    .col(timestamp_with_time_zone(AttentionRecords::RecordedAt))
                    .to_owned(),
            )
            .await?;
        // A customer's attentions, newest finished first, paged by keyset.
        manager
            .create_index(
                Index::create()
                    .name("attention_records_customer_finished")
                    .table(AttentionRecords::Table)
                    .col(AttentionRecords::CustomerId)
                    .col(AttentionRecords::FinishedAt)
                    .col(AttentionRecords::AttentionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TranscriptMessages::Table)
                    .col(string(TranscriptMessages::AttentionId))
                    .col(integer(TranscriptMessages::Position))
                    .col(string(TranscriptMessages::MessageId))
                    .col(string(TranscriptMessages::Wamid))
                    .col(string(TranscriptMessages::Direction))
                    .col(string(TranscriptMessages::MessageType))
                    .col(text(TranscriptMessages::Text))
                    .col(string(TranscriptMessages::Status))
                    .col(big_integer_null(TranscriptMessages::ErrorCode))
                    .col(string_null(TranscriptMessages::ErrorTitle))
                    .col(text_null(TranscriptMessages::ErrorDetail))
                    .col(string(TranscriptMessages::AgentId))
                    .col(timestamp_with_time_zone_null(TranscriptMessages::SentAt))
                    .primary_key(
                        Index::create()
                            .col(TranscriptMessages::AttentionId)
                            .col(TranscriptMessages::Position),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TranscriptMessages::Table, TranscriptMessages::AttentionId)
                            .to(AttentionRecords::Table, AttentionRecords::AttentionId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TranscriptMessages::Table.into_iden(),
            AttentionRecords::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AttentionRecords {
    Table,
    AttentionId,
    CampaignId,
    CampaignName,
    BusinessPhoneNumberId,
    CustomerId,
    CustomerWaId,
    CustomerUserId,
    CustomerName,
    Direction,
    AgentId,
    CreatedAt,
    OpenedAt,
    FinishedAt,
    MessageCount,
    Form,
    RecordedAt,
}

#[derive(DeriveIden)]
enum TranscriptMessages {
    Table,
    AttentionId,
    Position,
    MessageId,
    Wamid,
    Direction,
    MessageType,
    Text,
    Status,
    ErrorCode,
    ErrorTitle,
    ErrorDetail,
    AgentId,
    SentAt,
}
