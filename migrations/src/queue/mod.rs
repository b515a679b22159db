//! Tables of the queue service: campaigns, business numbers, agents,
//! attentions and their outbox.

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_queue;
mod m20261126_000002_admin;
mod m20261126_000003_routing;
mod m20261126_000004_event_positions;
mod m20261126_000005_outbound_starts;
mod m20261126_000006_out_of_hours_template;
mod m20261126_000007_dialers;
mod m20261126_000008_dialer_sending;
mod m20261207_000009_event_holder;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_queue::Migration),
            Box::new(m20261126_000002_admin::Migration),
            Box::new(m20261126_000003_routing::Migration),
            Box::new(m20261126_000004_event_positions::Migration),
            Box::new(m20261126_000005_outbound_starts::Migration),
            Box::new(m20261126_000006_out_of_hours_template::Migration),
            Box::new(m20261126_000007_dialers::Migration),
            Box::new(m20261126_000008_dialer_sending::Migration),
            Box::new(m20261207_000009_event_holder::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "queue_migrations".into_iden()
    }
}
