//! What outbound messages need: the customer's number in E.164, the
//! business number to write from, and the numbers' templates.

use atenciones_domain::Violation;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_runtime::grpc::Channel;
use tonic::Status;

use crate::error::Error;

/// The digits of the customer's E.164 number, which WhatsApp uses as their id.
pub fn e164(number: &str) -> Result<String, Error> {
    atenciones_domain::e164(number).ok_or_else(|| {
        Error::InvalidArgument(vec![Violation::new(
            "customer_number",
            "is not an E.164 number: + and 8 to 15 digits with the country code, such as +5491155550000",
        )])
    })
}

/// The templates registered for `numbers` (none for no number).
pub async fn templates(
    messaging: &MessagingServiceClient<Channel>,
    numbers: Vec<String>,
    approved_only: bool,
) -> Result<Vec<messaging_pb::Template>, Status> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let request = messaging_pb::ListTemplatesRequest {
        business_phone_number_ids: numbers,
        approved_only,
    };
    Ok(messaging
        .clone()
        .list_templates(request)
        .await?
        .into_inner()
        .templates)
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
    number_for(&agent.business_numbers, campaign_id, given).ok_or_else(|| {
        Error::FailedPrecondition(format!(
            "campaign {campaign_id} has no active business number"
        ))
    })
}

/// The number to write from for `campaign_id`: `given` (the queue checks it
/// is the campaign's), or the first by id of the campaign's active numbers
/// in `numbers`.
pub fn number_for(
    numbers: &[queue_pb::BusinessNumber],
    campaign_id: &str,
    given: &str,
) -> Option<String> {
    if !given.is_empty() {
        return Some(given.to_owned());
    }
    numbers
        .iter()
        .filter(|n| n.active && n.campaign_id == campaign_id)
        .map(|n| n.phone_number_id.clone())
        .min()
}
