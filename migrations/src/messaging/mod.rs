//! Tables of the messaging service: the webhook inbox, the messages of every
//! conversation, the delivery statuses WhatsApp reports, the reactions on
//! messages, media files, the business numbers' templates and opt-outs.

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_messaging;
mod m20261126_000002_reactions;
mod m20261126_000003_outbound;
mod m20261126_000004_media;
mod m20261126_000005_window_warnings;
mod m20261126_000006_templates;
mod m20261126_000007_opt_outs;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_messaging::Migration),
            Box::new(m20261126_000002_reactions::Migration),
            Box::new(m20261126_000003_outbound::Migration),
            Box::new(m20261126_000004_media::Migration),
            Box::new(m20261126_000005_window_warnings::Migration),
            Box::new(m20261126_000006_templates::Migration),
            Box::new(m20261126_000007_opt_outs::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "messaging_migrations".into_iden()
    }
}
