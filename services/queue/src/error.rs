//! Errors of the queue service and the one place they become gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    /// Another service answered with an error; its status (with details, such
    /// as the form's field violations) is passed on unchanged.
    #[error("{}: {}", .0.code(), .0.message())]
    Upstream(#[from] Status),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl Error {
    pub fn invalid(field: &str, description: &str) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::PermissionDenied(why) => Status::permission_denied(why),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::InvalidArgument(violations) => Status::with_error_details(
                Code::InvalidArgument,
                "invalid request",
                ErrorDetails::with_bad_request(violations),
            ),
            Error::Upstream(status) => status,
            Error::Database(error) => {
                tracing::error!(%error, "database error");
                Status::internal("internal error")
            }
        }
    }
}
