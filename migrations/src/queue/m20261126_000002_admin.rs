//! Administration, presence and capacity: campaign routing settings, active
//! flags, agent presence, per-campaign capacity overrides, supervisors, VIP
//! customers and the audit trail of supervisors' changes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite adds only one at a time.
        let columns: Vec<(DynIden, ColumnDef)> = vec![
            (
                Campaigns::Table.into_iden(),
                string(Campaigns::AssignmentMode).default("manual").take(),
            ),
            (
                Campaigns::Table.into_iden(),
                integer(Campaigns::AcceptTimeoutSeconds).default(30).take(),
            ),
            (
                Campaigns::Table.into_iden(),
                integer(Campaigns::MaxQueueSeconds).default(0).take(),
            ),
            (
                Campaigns::Table.into_iden(),
                string_null(Campaigns::OverflowCampaignId).take(),
            ),
            // Generous for campaigns made before capacity existed, so their
            // agents keep working as they did.
            (
                Campaigns::Table.into_iden(),
                integer(Campaigns::DefaultAgentCapacity).default(10).take(),
            ),
            (
                Campaigns::Table.into_iden(),
                boolean(Campaigns::Active).default(true).take(),
            ),
            (
                BusinessNumbers::Table.into_iden(),
                boolean(BusinessNumbers::Active).default(true).take(),
            ),
            // Agents made before presence existed were taking attentions.
            (
                Agents::Table.into_iden(),
                string(Agents::Presence).default("available").take(),
            ),
            (
                Agents::Table.into_iden(),
                string_null(Agents::PauseReason).take(),
            ),
            (
                Agents::Table.into_iden(),
                timestamp_with_time_zone_null(Agents::PresenceChangedAt).take(),
            ),
            (
                CampaignAgents::Table.into_iden(),
                integer_null(CampaignAgents::Capacity).take(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Supervisors::Table)
                    .col(string(Supervisors::Id).primary_key())
                    .col(string(Supervisors::Name))
                    .col(boolean(Supervisors::Active).default(true))
                    .col(timestamp_with_time_zone(Supervisors::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SupervisorCampaigns::Table)
                    .col(string(SupervisorCampaigns::SupervisorId))
                    .col(string(SupervisorCampaigns::CampaignId))
                    .primary_key(
                        Index::create()
                            .col(SupervisorCampaigns::SupervisorId)
                            .col(SupervisorCampaigns::CampaignId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                SupervisorCampaigns::Table,
                                SupervisorCampaigns::SupervisorId,
                            )
                            .to(Supervisors::Table, Supervisors::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SupervisorCampaigns::Table, SupervisorCampaigns::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // `campaign_id` is empty for a customer who is VIP in every campaign.
        manager
            .create_table(
                Table::create()
                    .table(VipCustomers::Table)
                    .col(string(VipCustomers::CampaignId))
                    .col(string(VipCustomers::CustomerId))
                    .primary_key(
                        Index::create()
                            .col(VipCustomers::CampaignId)
                            .col(VipCustomers::CustomerId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AdminAudit::Table)
                    .col(big_pk_auto(AdminAudit::Id))
                    .col(string(AdminAudit::Actor))
                    .col(string(AdminAudit::Action))
                    .col(string(AdminAudit::Target))
                    .col(json_null(AdminAudit::Before))
                    .col(json_null(AdminAudit::After))
                    .col(timestamp_with_time_zone(AdminAudit::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AdminAudit::Table.into_iden(),
            VipCustomers::Table.into_iden(),
            SupervisorCampaigns::Table.into_iden(),
            Supervisors::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        let columns: Vec<(DynIden, DynIden)> = vec![
            (
                Campaigns::Table.into_iden(),
                Campaigns::AssignmentMode.into_iden(),
            ),
            (
                Campaigns::Table.into_iden(),
                Campaigns::AcceptTimeoutSeconds.into_iden(),
            ),
            (
                Campaigns::Table.into_iden(),
                Campaigns::MaxQueueSeconds.into_iden(),
            ),
            (
                Campaigns::Table.into_iden(),
                Campaigns::OverflowCampaignId.into_iden(),
            ),
            (
                Campaigns::Table.into_iden(),
                Campaigns::DefaultAgentCapacity.into_iden(),
            ),
            (Campaigns::Table.into_iden(), Campaigns::Active.into_iden()),
            (
                BusinessNumbers::Table.into_iden(),
                BusinessNumbers::Active.into_iden(),
            ),
            (Agents::Table.into_iden(), Agents::Presence.into_iden()),
            (Agents::Table.into_iden(), Agents::PauseReason.into_iden()),
            (
                Agents::Table.into_iden(),
                Agents::PresenceChangedAt.into_iden(),
            ),
            (
                CampaignAgents::Table.into_iden(),
                CampaignAgents::Capacity.into_iden(),
            ),
        ];
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    AssignmentMode,
    AcceptTimeoutSeconds,
    MaxQueueSeconds,
    OverflowCampaignId,
    DefaultAgentCapacity,
    Active,
    Id,
}

#[derive(DeriveIden)]
enum BusinessNumbers {
    Table,
    Active,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Presence,
    PauseReason,
    PresenceChangedAt,
}

#[derive(DeriveIden)]
enum CampaignAgents {
    Table,
    Capacity,
}

#[derive(DeriveIden)]
enum Supervisors {
    Table,
    Id,
    Name,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SupervisorCampaigns {
    Table,
    SupervisorId,
    CampaignId,
}

#[derive(DeriveIden)]
enum VipCustomers {
    Table,
    CampaignId,
    CustomerId,
}

#[derive(DeriveIden)]
enum AdminAudit {
    #[sea_orm(iden = "queue_admin_audit")]
    Table,
    Id,
    Actor,
    Action,
    Target,
    Before,
    After,
    CreatedAt,
}
