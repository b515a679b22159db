//! The errors of the history service and the one place they become gRPC statuses.

use tonic::Status;

use crate::record::Violation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<Violation>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A stored row that does not parse: a bug or a hand edit, never the caller's fault.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Another service failed a purge (background work only).
    #[error("purge elsewhere: {0}")]
    Purge(#[from] tonic::Status),
}

impl Error {
    pub fn invalid(violations: Vec<Violation>) -> Self {
        Self::InvalidArgument {
            message: "La solicitud tiene campos inválidos.".into(),
            violations,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        if let Error::Database(db) = &error
            && let Some(unavailable) = atenciones_runtime::database::unreachable(db)
        {
            return unavailable;
        }
        match error {
            Error::InvalidArgument {
                message,
                violations,
            } => atenciones_domain::invalid_argument(message, violations),
            Error::NotFound(message) => Status::not_found(message),
            Error::Database(_) | Error::Corrupt(_) | Error::Purge(_) => {
                tracing::error!(%error, "request failed");
                Status::internal("Error interno del servicio de historial.")
            }
        }
    }
}
