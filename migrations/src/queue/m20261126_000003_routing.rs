//! Routing: offers with deadlines, the queue's order (VIP first, then time
//! waiting), flags (out of hours, orphaned, overflowed), tags, transfers,
//! business hours, orphan grace and agents' heartbeats.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, mut column) in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Attentions queued before routing existed wait since they started.
        manager
            .exec_stmt(
                Query::update()
                    .table(Attentions::Table)
                    .value(Attentions::QueuedAt, Expr::col(Attentions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // The router reads a campaign's queue in serving order.
        manager
            .create_index(
                Index::create()
                    .name("attentions_queue_order")
                    .table(Attentions::Table)
                    .col(Attentions::CampaignId)
                    .col(Attentions::State)
                    .col((Attentions::Priority, IndexOrder::Desc))
                    .col(Attentions::QueuedAt)
                    .col(Attentions::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("attentions_agent_state")
                    .table(Attentions::Table)
                    .col(Attentions::AgentId)
                    .col(Attentions::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("attentions_offered_to")
                    .table(Attentions::Table)
                    .col(Attentions::OfferedTo)
                    .to_owned(),
            )
            .await?;
        // Agents who declined or let an offer lapse are skipped for that
        // attention while anyone else can take it.
        manager
            .create_table(
                Table::create()
                    .table(OfferRefusals::Table)
                    .col(uuid(OfferRefusals::AttentionId))
                    .col(string(OfferRefusals::AgentId))
                    .col(timestamp_with_time_zone(OfferRefusals::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(OfferRefusals::AttentionId)
                            .col(OfferRefusals::AgentId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OfferRefusals::Table).to_owned())
            .await?;
        for index in [
            "attentions_queue_order",
            "attentions_agent_state",
            "attentions_offered_to",
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(Attentions::Table)
                        .to_owned(),
                )
                .await?;
        }
        for (table, column) in columns() {
            let name = Alias::new(column.get_column_name());
            manager
                .alter_table(Table::alter().table(table).drop_column(name).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Added one per ALTER: SQLite adds only one at a time.
fn columns() -> Vec<(DynIden, ColumnDef)> {
    let attentions = || Attentions::Table.into_iden();
    let campaigns = || Campaigns::Table.into_iden();
    let agents = || Agents::Table.into_iden();
    vec![
        (
            attentions(),
            timestamp_with_time_zone_null(Attentions::QueuedAt).take(),
        ),
        (
            attentions(),
            integer(Attentions::Priority).default(0).take(),
        ),
        (attentions(), string_null(Attentions::OfferedTo).take()),
        (
            attentions(),
            timestamp_with_time_zone_null(Attentions::OfferExpiresAt).take(),
        ),
        (
            attentions(),
            boolean(Attentions::OutOfHours).default(false).take(),
        ),
        (
            attentions(),
            boolean(Attentions::Orphaned).default(false).take(),
        ),
        (
            attentions(),
            boolean(Attentions::Overflowed).default(false).take(),
        ),
        (attentions(), string_null(Attentions::Tag).take()),
        (attentions(), string_null(Attentions::TransferNote).take()),
        (campaigns(), json_null(Campaigns::BusinessHours).take()),
        (
            campaigns(),
            integer(Campaigns::OrphanGraceSeconds).default(120).take(),
        ),
        (campaigns(), json_null(Campaigns::Tags).take()),
        (
            agents(),
            timestamp_with_time_zone_null(Agents::LastSeenAt).take(),
        ),
        (
            agents(),
            timestamp_with_time_zone_null(Agents::LastOfferedAt).take(),
        ),
    ]
}

#[derive(DeriveIden)]
enum Attentions {
    Table,
    Id,
    CampaignId,
    State,
    AgentId,
    CreatedAt,
    QueuedAt,
    Priority,
    OfferedTo,
    OfferExpiresAt,
    OutOfHours,
    Orphaned,
    Overflowed,
    Tag,
    TransferNote,
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    BusinessHours,
    OrphanGraceSeconds,
    Tags,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    LastSeenAt,
    LastOfferedAt,
}

#[derive(DeriveIden)]
enum OfferRefusals {
    #[sea_orm(iden = "queue_offer_refusals")]
    Table,
    AttentionId,
    AgentId,
    CreatedAt,
}
