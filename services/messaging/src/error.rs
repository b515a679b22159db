//! The one error type of the messaging service and the one place it becomes a
//! gRPC status.

use std::collections::HashMap;

use sea_orm::DbErr;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::MessageError;

pub use atenciones_domain::Violation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<Violation>),
    /// The Cloud API answered with an error: sending again will not help.
    #[error("WhatsApp refused the message: {0}")]
    Refused(MessageError),
    /// The Cloud API could not be reached or failed on its side.
    #[error("WhatsApp could not be reached: {0}")]
    Unavailable(String),
    /// Another call with the same idempotency key is talking to the Cloud API.
    #[error("a message with this idempotency key is being sent")]
    SendInProgress,
    /// No such thing (or not in the caller's attention).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Not yet: the same request later may succeed (a media file still being
    /// fetched, an upload still being finished).
    #[error("{0}")]
    NotReady(String),
    /// A concurrent request changed what this one was based on.
    #[error("{0}")]
    Aborted(String),
    #[error("queue service: {0}")]
    Queue(#[source] Box<Status>),
    #[error("media storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Internal(String),
}

fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => {
                atenciones_domain::invalid_argument(describe(&violations), violations)
            }
            Error::Refused(refusal) => {
                let message = format!("WhatsApp refused the message: {refusal}");
                let metadata = HashMap::from([
                    ("code".to_owned(), refusal.code.to_string()),
                    ("title".to_owned(), refusal.title),
                    ("detail".to_owned(), refusal.detail),
                ]);
                let details =
                    ErrorDetails::with_error_info("WHATSAPP_REFUSED", "whatsapp", metadata);
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            Error::Unavailable(reason) => {
                tracing::warn!(%reason, "Cloud API unavailable");
                Status::unavailable(
                    "WhatsApp could not be reached; retry with the same idempotency key",
                )
            }
            Error::SendInProgress => Status::unavailable(
                "a message with this idempotency key is being sent; retry with the same key",
            ),
            Error::NotFound(what) => Status::not_found(what),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::NotReady(why) => Status::unavailable(why),
            Error::Aborted(why) => Status::aborted(why),
            error @ (Error::Queue(_)
            | Error::Database(_)
            | Error::Storage(_)
            | Error::Internal(_)) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status: Status =
            Error::InvalidArgument(vec![Violation::new("text", "is empty")]).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "text");
    }

    #[test]
    fn internal_errors_are_not_leaked() {
        let status: Status = Error::Internal("secret path /var/db".into()).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn refusals_say_what_whatsapp_said() {
        let refusal = MessageError {
            code: 131047,
            title: "Re-engagement message".into(),
            detail: String::new(),
        };
        let status: Status = Error::Refused(refusal).into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("131047"), "{}", status.message());
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("error info");
        assert_eq!(
            info.metadata.get("code").map(String::as_str),
            Some("131047")
        );
    }
}
