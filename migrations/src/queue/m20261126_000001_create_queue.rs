use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .col(string(Campaigns::Id).primary_key())
                    .col(string(Campaigns::Name))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BusinessNumbers::Table)
                    .col(string(BusinessNumbers::PhoneNumberId).primary_key())
                    .col(string(BusinessNumbers::DisplayPhoneNumber))
                    .col(string(BusinessNumbers::CampaignId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(BusinessNumbers::Table, BusinessNumbers::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(string(Agents::Id).primary_key())
                    .col(string(Agents::Name))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignAgents::Table)
                    .col(string(CampaignAgents::CampaignId))
                    .col(string(CampaignAgents::AgentId))
                    .primary_key(
                        Index::create()
                            .col(CampaignAgents::CampaignId)
                            .col(CampaignAgents::AgentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CampaignAgents::Table, CampaignAgents::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CampaignAgents::Table, CampaignAgents::AgentId)
                            .to(Agents::Table, Agents::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Attentions::Table)
                    .col(uuid(Attentions::Id).primary_key())
                    .col(string(Attentions::CampaignId))
                    .col(string(Attentions::BusinessPhoneNumberId))
                    .col(string(Attentions::CustomerId))
                    .col(string(Attentions::CustomerWaId))
                    .col(string(Attentions::CustomerUserId))
                    .col(string(Attentions::CustomerName))
                    .col(string(Attentions::Direction))
                    .col(string(Attentions::State))
                    .col(string_null(Attentions::AgentId))
                    .col(string_null(Attentions::FormId))
                    .col(string(Attentions::LastMessagePreview))
                    .col(timestamp_with_time_zone(Attentions::LastMessageAt))
                    .col(integer(Attentions::UnreadCount))
                    .col(timestamp_with_time_zone(Attentions::CreatedAt))
                    .col(timestamp_with_time_zone_null(Attentions::OpenedAt))
                    .col(timestamp_with_time_zone_null(Attentions::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attentions::Table, Attentions::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("attentions_campaign_state")
                    .table(Attentions::Table)
                    .col(Attentions::CampaignId)
                    .col(Attentions::State)
                    .to_owned(),
            )
            .await?;
        // The attention key: at most one unfinished attention per customer and
        // business number. A partial unique index makes concurrent inbound
        // messages of a new customer converge on one attention.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX attentions_active_key ON attentions \
                 (business_phone_number_id, customer_id) WHERE state <> 'finished'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AttentionMessages::Table)
                    .col(string(AttentionMessages::MessageId).primary_key())
                    .col(uuid(AttentionMessages::AttentionId))
                    .col(string(AttentionMessages::Direction))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AttentionMessages::Table, AttentionMessages::AttentionId)
                            .to(Attentions::Table, Attentions::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(uuid(Outbox::AttentionId))
                    .col(string(Outbox::Kind))
                    .col(json(Outbox::Payload))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboxOffsets::Table)
                    .col(string(OutboxOffsets::Consumer).primary_key())
                    .col(big_integer(OutboxOffsets::LastEventId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OutboxOffsets::Table.into_iden(),
            Outbox::Table.into_iden(),
            AttentionMessages::Table.into_iden(),
            Attentions::Table.into_iden(),
            CampaignAgents::Table.into_iden(),
            Agents::Table.into_iden(),
            BusinessNumbers::Table.into_iden(),
            Campaigns::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum BusinessNumbers {
    Table,
    PhoneNumberId,
    DisplayPhoneNumber,
    CampaignId,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CampaignAgents {
    Table,
    CampaignId,
    AgentId,
}

#[derive(DeriveIden)]
enum Attentions {
    Table,
    Id,
    CampaignId,
    BusinessPhoneNumberId,
    CustomerId,
    CustomerWaId,
    CustomerUserId,
    CustomerName,
    Direction,
    State,
    AgentId,
    FormId,
    LastMessagePreview,
    LastMessageAt,
    UnreadCount,
    CreatedAt,
    OpenedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum AttentionMessages {
    Table,
    MessageId,
    AttentionId,
    Direction,
}

#[derive(DeriveIden)]
enum Outbox {
    #[sea_orm(iden = "queue_outbox")]
    Table,
    Id,
    AttentionId,
    Kind,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OutboxOffsets {
    #[sea_orm(iden = "queue_outbox_offsets")]
    Table,
    Consumer,
    LastEventId,
}
