//! Reading a whole paged list through a generated client.

use tonic::Status;
use tonic::codegen::{Body, Bytes, StdError};

use crate::messaging::v1::messaging_service_client::MessagingServiceClient;
use crate::messaging::v1::{ListMessagesRequest, Message};

/// Every message of an attention, newest first (ListMessages' order), read a
/// page of 500 at a time.
pub async fn all_messages<T>(
    messaging: &mut MessagingServiceClient<T>,
    attention_id: &str,
) -> Result<Vec<Message>, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let mut messages = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = messaging
            .list_messages(ListMessagesRequest {
                attention_id: attention_id.to_owned(),
                page_size: 500,
                page_token,
            })
            .await?
            .into_inner();
        messages.extend(page.messages);
        if page.next_page_token.is_empty() {
            return Ok(messages);
        }
        page_token = page.next_page_token;
    }
}
