//! The MessagingService handlers: request → domain → response, nothing else.

use std::sync::Arc;

use atenciones_proto::messaging::v1::download_media_response::Part;
use atenciones_proto::messaging::v1::messaging_service_server::MessagingService;
use atenciones_proto::messaging::v1::{
    DownloadMediaRequest, DownloadMediaResponse, FinishMediaUploadRequest,
    FinishMediaUploadResponse, GetWindowRequest, GetWindowResponse, ListMessagesRequest,
    ListMessagesResponse, MarkAttentionReadRequest, MarkAttentionReadResponse, SendMediaRequest,
    SendMediaResponse, SendReactionRequest, SendReactionResponse, SendTemplateRequest,
    SendTemplateResponse, SendTextRequest, SendTextResponse, StartMediaUploadRequest,
    StartMediaUploadResponse, UploadMediaChunkRequest, UploadMediaChunkResponse,
};
use futures::StreamExt;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::Customer;
use crate::error::{Error, Violation};
use crate::media::{Chunk, Media, StartUpload, wire};
use crate::messaging::{Messaging, PageToken, SendText};
use crate::proto;

/// WhatsApp's limit on a text message, in characters.
const MAX_TEXT_CHARS: usize = 4096;

pub struct MessagingGrpc {
    messaging: Arc<Messaging>,
    media: Media,
}

impl MessagingGrpc {
    pub fn new(messaging: Arc<Messaging>, media: Media) -> Self {
        Self { messaging, media }
    }
}

#[tonic::async_trait]
impl MessagingService for MessagingGrpc {
    type DownloadMediaStream = tonic::codegen::BoxStream<DownloadMediaResponse>;

    async fn send_media(
        &self,
        _: Request<SendMediaRequest>,
    ) -> Result<Response<SendMediaResponse>, Status> {
        Err(Status::unimplemented("SendMedia is not implemented yet"))
    }

    async fn send_template(
        &self,
        _: Request<SendTemplateRequest>,
    ) -> Result<Response<SendTemplateResponse>, Status> {
        Err(Status::unimplemented("SendTemplate is not implemented yet"))
    }

    async fn send_reaction(
        &self,
        _: Request<SendReactionRequest>,
    ) -> Result<Response<SendReactionResponse>, Status> {
        Err(Status::unimplemented("SendReaction is not implemented yet"))
    }

    async fn mark_attention_read(
        &self,
        _: Request<MarkAttentionReadRequest>,
    ) -> Result<Response<MarkAttentionReadResponse>, Status> {
        Err(Status::unimplemented(
            "MarkAttentionRead is not implemented yet",
        ))
    }

    async fn get_window(
        &self,
        _: Request<GetWindowRequest>,
    ) -> Result<Response<GetWindowResponse>, Status> {
        Err(Status::unimplemented("GetWindow is not implemented yet"))
    }

    async fn start_media_upload(
        &self,
        request: Request<StartMediaUploadRequest>,
    ) -> Result<Response<StartMediaUploadResponse>, Status> {
        let command = StartUpload::try_from(request.into_inner())?;
        let ticket = self.media.start_upload(command).await?;
        Ok(Response::new(StartMediaUploadResponse {
            upload_id: ticket.upload_id.to_string(),
            max_chunk_bytes: ticket.max_chunk_bytes,
        }))
    }

    async fn upload_media_chunk(
        &self,
        request: Request<UploadMediaChunkRequest>,
    ) -> Result<Response<UploadMediaChunkResponse>, Status> {
        let chunk = Chunk::try_from(request.into_inner())?;
        let received_bytes = self.media.upload_chunk(chunk).await?;
        Ok(Response::new(UploadMediaChunkResponse { received_bytes }))
    }

    async fn finish_media_upload(
        &self,
        request: Request<FinishMediaUploadRequest>,
    ) -> Result<Response<FinishMediaUploadResponse>, Status> {
        let (attention_id, upload_id) = wire::finish(request.get_ref())?;
        let file = self.media.finish_upload(attention_id, upload_id).await?;
        Ok(Response::new(FinishMediaUploadResponse {
            media: Some(wire::content(&file)),
        }))
    }

    async fn download_media(
        &self,
        request: Request<DownloadMediaRequest>,
    ) -> Result<Response<Self::DownloadMediaStream>, Status> {
        let (attention_id, media_id) = wire::download(request.get_ref())?;
        let (file, chunks) = self.media.open(attention_id, media_id).await?;
        let part = |part| DownloadMediaResponse { part: Some(part) };
        let info = part(Part::Info(wire::download_info(&file)));
        let chunks = chunks.map(move |chunk| {
            chunk
                .map(|bytes| part(Part::Chunk(bytes.to_vec())))
                .map_err(Status::from)
        });
        Ok(Response::new(
            futures::stream::once(async { Ok(info) })
                .chain(chunks)
                .boxed(),
        ))
    }

    async fn send_text(
        &self,
        request: Request<SendTextRequest>,
    ) -> Result<Response<SendTextResponse>, Status> {
        let command = SendText::try_from(request.into_inner())?;
        let message = self.messaging.send_text(command).await?;
        Ok(Response::new(SendTextResponse {
            message: Some(proto::message(&message)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let request = request.into_inner();
        let attention_id =
            attention_id(&request.attention_id).map_err(|v| Error::InvalidArgument(vec![v]))?;
        let token = match request.page_token.as_str() {
            "" => None,
            token => Some(PageToken::decode(token)?),
        };
        let (messages, next) = self
            .messaging
            .list_messages(attention_id, request.page_size, token)
            .await?;
        let ids: Vec<Uuid> = messages.iter().map(|m| m.row.id).collect();
        let files = self.media.of_messages(&ids).await?;
        let with_files = |view: &crate::messaging::MessageView| {
            let mut message = proto::view(view);
            if let Some(file) = files.get(&view.row.id) {
                wire::attach(&mut message, file);
            }
            message
        };
        Ok(Response::new(ListMessagesResponse {
            messages: messages.iter().map(with_files).collect(),
            next_page_token: next.map(|t| t.encode()).unwrap_or_default(),
        }))
    }
}

pub(crate) fn attention_id(value: &str) -> Result<Uuid, Violation> {
    uuid_field("attention_id", value)
}

/// A required UUID field of a request.
pub(crate) fn uuid_field(field: &str, value: &str) -> Result<Uuid, Violation> {
    if value.is_empty() {
        return Err(Violation::new(field, "is required"));
    }
    Uuid::parse_str(value).map_err(|_| Violation::new(field, "is not a UUID"))
}

/// A business number's WhatsApp phone number id.
pub(crate) fn phone_number_id(value: &str) -> Result<String, Violation> {
    let number = value.trim();
    if number.is_empty() {
        return Err(Violation::new("business_phone_number_id", "is required"));
    }
    if !number
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        // It becomes a path segment of the Graph API URL.
        return Err(Violation::new(
            "business_phone_number_id",
            "has characters a phone number id never has",
        ));
    }
    Ok(number.to_owned())
}

impl TryFrom<SendTextRequest> for SendText {
    type Error = Error;

    /// Checks every field and reports all bad ones at once.
    fn try_from(request: SendTextRequest) -> Result<Self, Error> {
        let mut violations = Vec::new();
        let attention_id = attention_id(&request.attention_id)
            .map_err(|v| violations.push(v))
            .ok();
        let number = phone_number_id(&request.business_phone_number_id)
            .map_err(|v| violations.push(v))
            .unwrap_or_default();
        let customer = request.customer.unwrap_or_default();
        let wa_id = customer.wa_id.trim().to_owned();
        if wa_id.is_empty() {
            violations.push(Violation::new("customer.wa_id", "is required"));
        }
        let characters = request.text.chars().count();
        if characters == 0 {
            violations.push(Violation::new("text", "is empty"));
        } else if characters > MAX_TEXT_CHARS {
            violations.push(Violation::new(
                "text",
                format!("has {characters} characters; WhatsApp allows at most {MAX_TEXT_CHARS}"),
            ));
        }
        let idempotency_key = request.idempotency_key.trim().to_owned();
        if idempotency_key.is_empty() {
            violations.push(Violation::new("idempotency_key", "is required"));
        }
        let Some(attention_id) = attention_id.filter(|_| violations.is_empty()) else {
            return Err(Error::InvalidArgument(violations));
        };
        let mut stored_customer = Customer::new(wa_id, customer.user_id, customer.name);
        if !customer.id.is_empty() {
            stored_customer.id = customer.id;
        }
        Ok(SendText {
            attention_id,
            business_phone_number_id: number,
            customer: stored_customer,
            text: request.text,
            preview_url: request.preview_url,
            idempotency_key,
            agent_id: Some(request.agent_id).filter(|a| !a.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use atenciones_proto::common::v1 as common;

    use super::*;

    fn valid() -> SendTextRequest {
        SendTextRequest {
            attention_id: Uuid::new_v4().to_string(),
            business_phone_number_id: "1122334455667".into(),
            customer: Some(common::Customer {
                wa_id: "5491100000000".into(),
                ..Default::default()
            }),
            text: "hola".into(),
            preview_url: false,
            idempotency_key: "k-1".into(),
            agent_id: "agent-1".into(),
            reply_to_message_id: String::new(),
        }
    }

    fn fields(request: SendTextRequest) -> Vec<String> {
        crate::testkit::violated(SendText::try_from(request))
    }

    #[test]
    fn a_valid_request_becomes_a_command() {
        let command = SendText::try_from(valid()).expect("valid");
        assert_eq!(
            command.customer.id, "5491100000000",
            "customer id defaults to wa_id"
        );
        assert_eq!(command.agent_id.as_deref(), Some("agent-1"));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let request = SendTextRequest {
            attention_id: String::new(),
            business_phone_number_id: String::new(),
            customer: None,
            text: String::new(),
            idempotency_key: String::new(),
            ..valid()
        };
        assert_eq!(
            fields(request),
            vec![
                "attention_id",
                "business_phone_number_id",
                "customer.wa_id",
                "text",
                "idempotency_key"
            ]
        );
    }

    #[test]
    fn text_is_limited_to_4096_characters_not_bytes() {
        let ok = SendTextRequest {
            text: "ñ".repeat(4096),
            ..valid()
        };
        assert!(SendText::try_from(ok).is_ok());
        assert_eq!(
            fields(SendTextRequest {
                text: "a".repeat(4097),
                ..valid()
            }),
            vec!["text"]
        );
    }

    #[test]
    fn a_number_id_cannot_escape_the_url_path() {
        let request = SendTextRequest {
            business_phone_number_id: "../me".into(),
            ..valid()
        };
        assert_eq!(fields(request), vec!["business_phone_number_id"]);
        assert_eq!(
            fields(SendTextRequest {
                attention_id: "nope".into(),
                ..valid()
            }),
            vec!["attention_id"]
        );
    }
}
