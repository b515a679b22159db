//! Tables of the history service: finished attentions and their transcripts,
//! lifecycle events for reports, retention and erasures.

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_history;
mod m20261126_000002_search;
mod m20261126_000003_record_details;
mod m20261126_000004_reports;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_history::Migration),
            Box::new(m20261126_000002_search::Migration),
            Box::new(m20261126_000003_record_details::Migration),
            Box::new(m20261126_000004_reports::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "history_migrations".into_iden()
    }
}
