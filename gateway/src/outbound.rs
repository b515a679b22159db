//! What starting an outbound attention needs before any service is called:
//! the customer's number in E.164 and the business number to write from.

use atenciones_domain::Violation;
use atenciones_proto::queue::v1 as queue_pb;

use crate::error::Error;

/// The digits of an E.164 number (`+` and 8 to 15 digits, the first not 0),
/// which WhatsApp uses as the customer's id; spaces, dashes, dots and
/// parentheses are ignored.
pub fn e164(number: &str) -> Result<String, Violation> {
    let kept: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    let valid = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(digits.to_owned())
    } else {
        Err(Violation::new(
            "customer_number",
            "is not an E.164 number: + and 8 to 15 digits with the country code, such as +5491155550000",
        ))
    }
}

/// The number an agent's outbound attention in `campaign_id` is written
/// from: the one given (the queue checks it is the campaign's) or the
/// campaign's first active one.
pub fn business_number(
    agent: &queue_pb::Agent,
    campaign_id: &str,
    given: &str,
) -> Result<String, Error> {
    if !agent.campaign_ids.iter().any(|c| c == campaign_id) {
        return Err(Error::PermissionDenied(format!(
            "you are not an agent of campaign {campaign_id}"
        )));
    }
    if !given.is_empty() {
        return Ok(given.to_owned());
    }
    agent
        .business_numbers
        .iter()
        .find(|n| n.campaign_id == campaign_id)
        .map(|n| n.phone_number_id.clone())
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "campaign {campaign_id} has no active business number"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_accepted_with_or_without_punctuation() {
        assert_eq!(
            e164("+54 9 11 5555-0000").as_deref().ok(),
            Some("5491155550000")
        );
        assert_eq!(e164("972987654321").as_deref().ok(), Some("972987654321"));
        for bad in [
            "",
            "+",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+54 11 CALL-ME",
        ] {
            assert!(e164(bad).is_err(), "{bad}");
        }
    }
}
