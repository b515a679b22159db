//! The one error type of the messaging service and the one place it becomes a
//! gRPC status.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
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
    /// Temporary trouble outlasted every try; the message is failed.
    #[error("WhatsApp did not take the message: {0}")]
    GaveUp(MessageError),
    /// A free-form message outside the customer's 24-hour window (closed
    /// since the time given, or never opened).
    #[error("the customer's 24-hour window is closed")]
    WindowClosed(Option<DateTime<Utc>>),
    /// A template WhatsApp would refuse: not registered for the number, or
    /// not approved.
    #[error("{0}")]
    TemplateUnavailable(String),
    /// The customer asked the number not to write to them.
    #[error("{0}")]
    OptedOut(String),
    /// The request is fine but the state it needs is not there.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The Cloud API could not be reached or failed on its side, for a call
    /// that keeps no retry of its own (a read receipt).
    #[error("WhatsApp could not be reached: {0}")]
    Unavailable(String),
    /// No such thing (or not in the caller's attention).
    #[error("{0}")]
    NotFound(String),
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

/// FAILED_PRECONDITION with WhatsApp's words as `ErrorInfo` metadata, for
/// the agent to see why.
fn whatsapp_error(reason: &str, what: &str, error: MessageError) -> Status {
    let message = format!("WhatsApp {what} the message: {error}");
    let metadata = HashMap::from([
        ("code".to_owned(), error.code.to_string()),
        ("title".to_owned(), error.title),
        ("detail".to_owned(), error.detail),
    ]);
    let details = ErrorDetails::with_error_info(reason, "whatsapp", metadata);
    Status::with_error_details(Code::FailedPrecondition, message, details)
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
        if let Error::Database(db) = &error
            && let Some(unavailable) = atenciones_runtime::database::unreachable(db)
        {
            return unavailable;
        }
        match error {
            Error::InvalidArgument(violations) => {
                atenciones_domain::invalid_argument(describe(&violations), violations)
            }
            Error::Refused(refusal) => whatsapp_error("WHATSAPP_REFUSED", "refused", refusal),
            Error::GaveUp(error) => whatsapp_error("WHATSAPP_UNREACHABLE", "gave up on", error),
            Error::WindowClosed(expired) => {
                let metadata: HashMap<String, String> = expired
                    .map(|at| ("expire_time".to_owned(), at.to_rfc3339()))
                    .into_iter()
                    .collect();
                let details = ErrorDetails::with_error_info("WINDOW_CLOSED", "whatsapp", metadata);
                Status::with_error_details(
                    Code::FailedPrecondition,
                    "the customer's 24-hour window is closed: only a template can be sent \
                     until the customer writes again",
                    details,
                )
            }
            Error::TemplateUnavailable(why) => {
                let details = ErrorDetails::with_error_info(
                    "TEMPLATE_UNAVAILABLE",
                    "whatsapp",
                    HashMap::new(),
                );
                Status::with_error_details(Code::FailedPrecondition, why, details)
            }
            Error::OptedOut(why) => {
                let details =
                    ErrorDetails::with_error_info("OPTED_OUT", "atenciones", HashMap::new());
                Status::with_error_details(Code::FailedPrecondition, why, details)
            }
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::Unavailable(reason) => {
                tracing::warn!(%reason, "Cloud API unavailable");
                Status::unavailable(format!("WhatsApp could not be reached: {reason}"))
            }
            Error::NotFound(what) => Status::not_found(what),
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
    fn a_closed_window_says_until_when_it_was_open() {
        let expired = DateTime::from_timestamp(1_800_000_000, 0);
        let status: Status = Error::WindowClosed(expired).into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("error info");
        assert_eq!(info.reason, "WINDOW_CLOSED");
        assert_eq!(
            info.metadata.get("expire_time").map(String::as_str),
            Some("2027-01-15T08:00:00+00:00")
        );
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
