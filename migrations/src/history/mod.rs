//! Tables of the history service.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![]
    }

    fn migration_table_name() -> DynIden {
        "history_migrations".into_iden()
    }
}
