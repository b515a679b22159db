//! The vocabulary every service shares: who started a conversation, and what
//! is wrong with a field of a request — with their one mapping to the wire.

pub mod demo {
    //! The embedded demo's business numbers, which the queue binds to its demo
    //! campaigns and messaging gives demo templates.

    /// (phone number id, display number, campaign): the WhatsApp fixtures' numbers.
    pub const NUMBERS: [(&str, &str, &str); 2] = [
        ("1122334455667", "972123456789", "ventas"),
        ("277321005464405", "15550953877", "soporte"),
    ];
}

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use atenciones_proto::common::v1 as common;

/// Whether `name` can be a WhatsApp template's name: 1 to 512 lowercase
/// letters, digits and `_`.
pub fn is_template_name(name: &str) -> bool {
    (1..=512).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `code` is a language code as WhatsApp names a template's
/// translations (`es`, `es_MX`).
pub fn is_language_code(code: &str) -> bool {
    !code.is_empty() && code.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
}

/// The digits of an E.164 number (`+` optional, 8 to 15 digits, the first
/// not 0), which WhatsApp uses as a customer's id; spaces, dashes, dots and
/// parentheses are ignored. `None` for anything else.
pub fn e164(number: &str) -> Option<String> {
    let kept: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    ((8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0'))
    .then(|| digits.to_owned())
}

/// Which way a conversation or a message goes: from the customer (inbound)
/// or from the business (outbound). An attention's direction is its first
/// message's, and picks the campaign form it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer; for an attention, the customer wrote first.
    Inbound,
    /// From the business; for an attention, an agent or the dialer started it.
    Outbound,
}

impl Direction {
    /// The stored form: `inbound` / `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "inbound" => Some(Self::Inbound),
            "outbound" => Some(Self::Outbound),
            _ => None,
        }
    }

    /// `None` for DIRECTION_UNSPECIFIED or an unknown number.
    pub fn from_proto(value: i32) -> Option<Self> {
        match common::Direction::try_from(value).ok()? {
            common::Direction::Inbound => Some(Self::Inbound),
            common::Direction::Outbound => Some(Self::Outbound),
            common::Direction::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> common::Direction {
        match self {
            Self::Inbound => common::Direction::Inbound,
            Self::Outbound => common::Direction::Outbound,
        }
    }
}

/// A bad part of a request: which field (a request path such as
/// `fields[2].options`, or a form field key) and what is wrong, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// INVALID_ARGUMENT carrying every violation as a `google.rpc.BadRequest`
/// field violation, so a front-end can show each message under its field.
pub fn invalid_argument(message: impl Into<String>, violations: Vec<Violation>) -> Status {
    let violations = violations
        .into_iter()
        .map(|v| FieldViolation::new(v.field, v.description))
        .collect::<Vec<_>>();
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request(violations),
    )
}

/// `text` with SQL LIKE's wildcards escaped by `\`, to match it literally
/// (use with `ESCAPE '\'`).
pub fn escape_like(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_accepted_with_or_without_punctuation() {
        assert_eq!(e164("+54 9 11 5555-0000").as_deref(), Some("5491155550000"));
        assert_eq!(e164("972987654321").as_deref(), Some("972987654321"));
        for bad in [
            "",
            "+",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+54 11 CALL-ME",
        ] {
            assert_eq!(e164(bad), None, "{bad}");
        }
    }

    #[test]
    fn directions_round_trip_through_storage_and_the_wire() {
        for direction in [Direction::Inbound, Direction::Outbound] {
            assert_eq!(Direction::parse(direction.as_str()), Some(direction));
            assert_eq!(
                Direction::from_proto(direction.to_proto().into()),
                Some(direction)
            );
        }
        assert_eq!(
            Direction::from_proto(common::Direction::Unspecified.into()),
            None
        );
    }

    #[test]
    fn every_violation_reaches_the_status_details() {
        let status = invalid_argument(
            "bad form",
            vec![
                Violation::new("motivo", "required"),
                Violation::new("monto", "too small"),
            ],
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<_> = status
            .get_details_bad_request()
            .expect("bad request")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["motivo", "monto"]);
    }
}
