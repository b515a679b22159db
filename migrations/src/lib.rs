//! Database migrations: one migrator per service, each over its own tables and
//! its own migration-record table, so services can share one server (or one
//! database) without touching each other's schema.
//!
//! One file per migration; a migration is never edited after it lands.

pub mod form;
pub mod history;
pub mod messaging;
pub mod queue;
