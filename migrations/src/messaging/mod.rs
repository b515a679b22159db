//! Tables of the messaging service.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![]
    }

    fn migration_table_name() -> DynIden {
        "messaging_migrations".into_iden()
    }
}
