//! Full-text search over finished attentions: one document per record (the
//! customer, campaign, message texts and form values, lowercased and without
//! accents by the service), indexed by each database's own text search —
//! a GIN index over `to_tsvector('simple', …)` on PostgreSQL, an FTS5 table
//! on SQLite — so a search never scans the records.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match manager.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "CREATE TABLE history_search (attention_id TEXT PRIMARY KEY, document TEXT NOT NULL)",
                "CREATE INDEX history_search_document ON history_search USING GIN (to_tsvector('simple', document))",
                // Searches read newest first across customers.
                "CREATE INDEX attention_records_finished ON attention_records (finished_at DESC, attention_id DESC)",
            ],
            // unicode61 folds case and, with remove_diacritics, accents: the
            // same as the service's own normalization, kept as a second guard.
            _ => &[
                "CREATE VIRTUAL TABLE history_search USING fts5(attention_id UNINDEXED, document, tokenize = 'unicode61 remove_diacritics 2')",
                "CREATE INDEX attention_records_finished ON attention_records (finished_at DESC, attention_id DESC)",
            ],
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX attention_records_finished")
            .await?;
        db.execute_unprepared("DROP TABLE history_search").await?;
        Ok(())
    }
}
