//! Database connections and schema readiness, the same for every service.

use std::time::Duration;

use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, IsolationLevel, RuntimeErr, SqlxError, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::settings::DatabaseSettings;

/// UNAVAILABLE when `error` means the database could not be reached (no
/// connection within the pool's wait, or none could be made): callers retry
/// that, where INTERNAL would say something is broken. `None` otherwise.
pub fn unreachable(error: &DbErr) -> Option<tonic::Status> {
    let lost = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        // A connection that broke mid-query, or a server shutting down or
        // starting up (SQLSTATE class 08, 57P01–57P03).
        DbErr::Query(RuntimeErr::SqlxError(sqlx)) | DbErr::Exec(RuntimeErr::SqlxError(sqlx)) => {
            match sqlx.as_ref() {
                SqlxError::Io(_)
                | SqlxError::PoolTimedOut
                | SqlxError::PoolClosed
                | SqlxError::WorkerCrashed => true,
                SqlxError::Database(db) => db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
                _ => false,
            }
        }
        _ => false,
    };
    lost.then(|| {
        tracing::warn!(%error, "the database cannot be reached");
        tonic::Status::unavailable("the database cannot be reached; retry shortly")
    })
}

/// Connects to `url` (SQLite or PostgreSQL). SQLite gets a single connection:
/// it allows one writer at a time, and one connection avoids "database is
/// locked" errors between our own transactions.
pub async fn connect(url: &str, settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        create_sqlite_dir(url)?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(if sqlite {
            1
        } else {
            settings.max_connections.max(1)
        })
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .sqlx_logging(false);
    Database::connect(options).await
}

fn create_sqlite_dir(url: &str) -> Result<(), DbErr> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Brings the schema to `M`'s version when `migrate` is set; otherwise waits
/// until someone else (the Kubernetes migration job) has. Waiting only reads:
/// the service's database user needs no right to create tables.
pub async fn prepare<M: MigratorTrait>(
    db: &DatabaseConnection,
    migrate: bool,
) -> Result<(), DbErr> {
    if migrate {
        return M::up(db, None).await;
    }
    loop {
        match pending::<M>(db).await {
            Ok(0) => return Ok(()),
            Ok(pending) => tracing::warn!(pending, "waiting for migrations"),
            Err(error) => tracing::warn!(%error, "waiting for the migrations table"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How many of `M`'s migrations the database has not recorded as applied (a
/// newer schema, with more applied, is fine).
async fn pending<M: MigratorTrait>(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let table = M::migration_table_name().to_string();
    let applied: std::collections::HashSet<String> = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT version FROM {table}"),
        ))
        .await?
        .iter()
        .filter_map(|row| row.try_get::<String>("", "version").ok())
        .collect();
    Ok(M::migrations()
        .iter()
        .filter(|m| !applied.contains(m.name()))
        .count())
}

/// A read-only transaction in which several reads see one moment of the
/// database (PostgreSQL's REPEATABLE READ; a SQLite transaction already is
/// one), so a reader never sees half of another transaction's writes.
pub async fn snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
        _ => db.begin().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::ConnAcquireErr;

    use super::*;

    #[test]
    fn only_a_database_that_cannot_be_reached_is_unavailable() {
        for error in [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::Conn(RuntimeErr::Internal("connection refused".into())),
            DbErr::Query(RuntimeErr::SqlxError(Arc::new(SqlxError::Io(
                std::io::ErrorKind::ConnectionReset.into(),
            )))),
            DbErr::Exec(RuntimeErr::SqlxError(Arc::new(SqlxError::PoolClosed))),
        ] {
            let status = unreachable(&error).expect("unreachable");
            assert_eq!(status.code(), tonic::Code::Unavailable);
        }
        assert!(unreachable(&DbErr::Custom("duplicate key".into())).is_none());
        assert!(unreachable(&DbErr::RecordNotFound("x".into())).is_none());
        let protocol = SqlxError::Protocol("unexpected message".into());
        assert!(unreachable(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(protocol)))).is_none());
    }
}
