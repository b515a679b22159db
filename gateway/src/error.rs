//! Errors of the gateway and the one place they become gRPC statuses.

use atenciones_domain::{Violation, invalid_argument};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no verified caller on the request")]
    Unauthenticated,
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    /// A service's answer, passed on unchanged: services already speak the
    /// API's codes and details (field violations included).
    #[error("{}: {}", .0.code(), .0.message())]
    Upstream(#[from] Status),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Unauthenticated => Status::unauthenticated("missing credential"),
            Error::PermissionDenied(why) => Status::permission_denied(why),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::InvalidArgument(violations) => {
                invalid_argument("The request has invalid fields.", violations)
            }
            Error::Upstream(status) => status,
        }
    }
}
