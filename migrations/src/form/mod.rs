//! Tables of the form service: published form versions and the agents' drafts
//! and submissions.

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_form;
mod m20261126_000002_publisher;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_form::Migration),
            Box::new(m20261126_000002_publisher::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "form_migrations".into_iden()
    }
}
