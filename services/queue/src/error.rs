//! Errors of the queue service and the one place they become gRPC statuses.

use atenciones_domain::Violation;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    /// Another service answered with an error; its status (with details, such
    /// as the form's field violations) is passed on unchanged.
    #[error("{}: {}", .0.code(), .0.message())]
    Upstream(#[from] Status),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl Error {
    pub fn invalid(field: &str, description: &str) -> Self {
        Self::InvalidArgument(vec![Violation::new(field, description)])
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
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::PermissionDenied(why) => Status::permission_denied(why),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::InvalidArgument(violations) => {
                atenciones_domain::invalid_argument("invalid request", violations)
            }
            Error::Upstream(status) => status,
            Error::Database(error) => {
                tracing::error!(%error, "database error");
                Status::internal("internal error")
            }
        }
    }
}

/// Collects every bad field of a request before answering, so the screen can
/// mark them all at once.
#[derive(Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn check(&mut self, ok: bool, field: &str, description: &str) {
        if !ok {
            self.0.push(Violation::new(field, description));
        }
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Error> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|v| v.field.as_str()).collect()
    }
}
