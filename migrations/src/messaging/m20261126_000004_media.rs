use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per media file, received or sent. The bytes live in the
        // object store under a key made from `id`; this row is the durable
        // state every replica works from.
        manager
            .create_table(
                Table::create()
                    .table(MessagingMedia::Table)
                    .col(uuid(MessagingMedia::Id).primary_key())
                    .col(string(MessagingMedia::Direction))
                    // Inbound: the message it came with. Unique, so a reprocessed
                    // webhook creates its media record once.
                    .col(uuid_null(MessagingMedia::MessageId).unique_key())
                    // Outbound: the attention it was uploaded for.
                    .col(uuid_null(MessagingMedia::AttentionId))
                    .col(string(MessagingMedia::BusinessPhoneNumberId))
                    .col(string(MessagingMedia::Kind))
                    .col(string(MessagingMedia::MimeType))
                    .col(text_null(MessagingMedia::Filename))
                    // inbound: downloading → stored | failed;
                    // outbound: receiving → stored | failed | expired.
                    .col(string(MessagingMedia::State))
                    // Inbound: the id to fetch it with; outbound: the id WhatsApp
                    // gave the upload (what SendMedia sends).
                    .col(string_null(MessagingMedia::WhatsappMediaId))
                    // The checksum announced before the bytes: base64 from the
                    // webhook (inbound), hex from the agent's client (outbound).
                    .col(string_null(MessagingMedia::ExpectedSha256))
                    // Hex SHA-256 of the stored bytes.
                    .col(string_null(MessagingMedia::Sha256))
                    .col(big_integer_null(MessagingMedia::DeclaredSize))
                    .col(big_integer_null(MessagingMedia::SizeBytes))
                    // Outbound: bytes received so far; a chunk applies only at
                    // exactly this offset (a guarded UPDATE).
                    .col(big_integer(MessagingMedia::ReceivedBytes).default(0))
                    .col(integer(MessagingMedia::Attempts).default(0))
                    .col(timestamp_with_time_zone(MessagingMedia::NextAttemptAt))
                    // While in the future, one replica owns the download (or the
                    // upload to WhatsApp) of this file.
                    .col(timestamp_with_time_zone_null(MessagingMedia::LeaseUntil))
                    // Outbound, while receiving: abandoned after this.
                    .col(timestamp_with_time_zone_null(MessagingMedia::ExpiresAt))
                    .col(text_null(MessagingMedia::Failure))
                    .col(timestamp_with_time_zone(MessagingMedia::CreatedAt))
                    .col(timestamp_with_time_zone(MessagingMedia::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The downloader's and the janitor's queries: due work by state.
        manager
            .create_index(
                Index::create()
                    .name("messaging_media_due")
                    .table(MessagingMedia::Table)
                    .col(MessagingMedia::State)
                    .col(MessagingMedia::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("messaging_media_expiry")
                    .table(MessagingMedia::Table)
                    .col(MessagingMedia::State)
                    .col(MessagingMedia::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessagingMedia::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MessagingMedia {
    Table,
    Id,
    Direction,
    MessageId,
    AttentionId,
    BusinessPhoneNumberId,
    Kind,
    MimeType,
    Filename,
    State,
    WhatsappMediaId,
    ExpectedSha256,
    Sha256,
    DeclaredSize,
    SizeBytes,
    ReceivedBytes,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    ExpiresAt,
    Failure,
    CreatedAt,
    UpdatedAt,
}
