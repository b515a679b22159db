//! Tables of the messaging service: the webhook inbox, the messages of every
//! conversation and the delivery statuses WhatsApp reports.

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_messaging;
mod m20261126_000003_outbound;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_messaging::Migration),
            Box::new(m20261126_000003_outbound::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "messaging_migrations".into_iden()
    }
}
