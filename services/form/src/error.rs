//! The errors of the form service and the one place they become gRPC statuses.

use tonic::Status;

use crate::definition::Violation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; each violation names the field (a request path or a form field key).
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<Violation>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Lost a race too many times; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A stored row that does not parse: a bug or a hand edit, never the caller's fault.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl Error {
    pub fn invalid(message: impl Into<String>, violations: Vec<Violation>) -> Self {
        Self::InvalidArgument {
            message: message.into(),
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
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Aborted(message) => Status::aborted(message),
            Error::Database(_) | Error::Corrupt(_) => {
                tracing::error!(%error, "request failed");
                Status::internal("Error interno del servicio de formularios.")
            }
        }
    }
}
