//! The MessagingService handlers: request → domain → response, nothing else.

use std::sync::Arc;

use atenciones_proto::common::v1 as common;
use atenciones_proto::messaging::v1 as pb;
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

use atenciones_runtime::caller::vouched;
use uuid::Uuid;

use crate::domain::{self, Customer};
use crate::error::{Error, Violation};
use crate::media::{Chunk, Media, StartUpload, wire};
use crate::messaging::{Messaging, PageToken, SendReaction};
use crate::outbound::{Outbound, OutboundBody, Recipient, Template};
use crate::proto;

/// WhatsApp's limit on a text message, in characters.
const MAX_TEXT_CHARS: usize = 4096;
/// Longest value of a template placeholder WhatsApp takes.
const MAX_PARAMETER_CHARS: usize = 1024;
/// Longest emoji sequence (flags, skin tones and families are several chars).
const MAX_EMOJI_CHARS: usize = 16;
/// WhatsApp's longest media caption.
const MAX_CAPTION_CHARS: usize = 1024;
/// Longest idempotency key; clients send a UUID.
const MAX_KEY_CHARS: usize = 200;

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

    async fn send_text(
        &self,
        request: Request<SendTextRequest>,
    ) -> Result<Response<SendTextResponse>, Status> {
        let outbound = Outbound::try_from(vouched(request)?)?;
        let message = self.messaging.send(outbound).await?;
        Ok(Response::new(SendTextResponse {
            message: Some(proto::message(&message)),
        }))
    }

    async fn send_media(
        &self,
        request: Request<SendMediaRequest>,
    ) -> Result<Response<SendMediaResponse>, Status> {
        let request = vouched(request)?;
        // The file is looked up first (its kind decides the body); bad ids
        // are reported with every other bad field below.
        let ids = request
            .recipient
            .as_ref()
            .and_then(|r| Uuid::parse_str(&r.attention_id).ok())
            .zip(Uuid::parse_str(&request.media_id).ok());
        let file = match ids {
            Some((attention_id, media_id)) => Some(
                self.media
                    .for_sending(attention_id, media_id)
                    .await
                    .map(|file| (media_id, file))?,
            ),
            None => None,
        };
        let body = |check: &mut Check| {
            check.uuid("media_id", &request.media_id);
            check.caption(&request.caption);
            match &file {
                Some((_, file)) => OutboundBody::Media(crate::outbound::Media {
                    kind: file.kind,
                    whatsapp_media_id: file.whatsapp_media_id.clone(),
                    caption: request.caption.trim().to_owned(),
                    filename: file.filename.clone().unwrap_or_default(),
                }),
                // Never sent: `media_id` or the recipient was refused above.
                None => OutboundBody::Text {
                    body: String::new(),
                    preview_url: false,
                },
            }
        };
        let outbound = outbound(
            request.recipient.clone(),
            body,
            &request.reply_to_message_id,
            &request.idempotency_key,
        )?;
        let message = self.messaging.send(outbound).await?;
        if let Some((media_id, _)) = file {
            self.media.sent_in(media_id, message.id).await?;
        }
        let files = self.media.of_messages(&[message.id]).await?;
        let mut wire = proto::message(&message);
        if let Some(file) = files.get(&message.id) {
            wire::attach(&mut wire, file);
        }
        Ok(Response::new(SendMediaResponse {
            message: Some(wire),
        }))
    }

    async fn send_template(
        &self,
        request: Request<SendTemplateRequest>,
    ) -> Result<Response<SendTemplateResponse>, Status> {
        let request = vouched(request)?;
        let validate_only = request.validate_only;
        let outbound = Outbound::try_from(request)?;
        if validate_only {
            self.messaging.check_template(&outbound).await?;
            return Ok(Response::new(SendTemplateResponse { message: None }));
        }
        let message = self.messaging.send(outbound).await?;
        Ok(Response::new(SendTemplateResponse {
            message: Some(proto::message(&message)),
        }))
    }

    async fn save_template(
        &self,
        request: Request<pb::SaveTemplateRequest>,
    ) -> Result<Response<pb::SaveTemplateResponse>, Status> {
        let template = request
            .into_inner()
            .template
            .ok_or_else(|| Error::InvalidArgument(vec![Violation::new("template", "required")]))?;
        let saved = self.messaging.templates().save(template).await?;
        Ok(Response::new(pb::SaveTemplateResponse {
            template: Some(saved),
        }))
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        let r = request.into_inner();
        let templates = self
            .messaging
            .templates()
            .list(r.business_phone_number_ids, r.approved_only)
            .await?;
        Ok(Response::new(pb::ListTemplatesResponse { templates }))
    }

    async fn opt_out_customer(
        &self,
        request: Request<pb::OptOutCustomerRequest>,
    ) -> Result<Response<pb::OptOutCustomerResponse>, Status> {
        let r = vouched(request)?;
        self.messaging
            .opt_out(
                &r.business_phone_number_id,
                &r.customer_id,
                &r.actor,
                &r.reason,
            )
            .await?;
        Ok(Response::new(pb::OptOutCustomerResponse {}))
    }

    async fn list_opt_outs(
        &self,
        request: Request<pb::ListOptOutsRequest>,
    ) -> Result<Response<pb::ListOptOutsResponse>, Status> {
        let numbers = request.into_inner().business_phone_number_ids;
        let opt_outs = self
            .messaging
            .opt_outs(numbers)
            .await?
            .into_iter()
            .map(|o| pb::OptOut {
                business_phone_number_id: o.business_phone_number_id,
                customer_id: o.customer_id,
                source: o.source,
                actor: o.actor,
                reason: o.reason,
                create_time: Some(atenciones_proto::time::timestamp(o.created_at)),
            })
            .collect();
        Ok(Response::new(pb::ListOptOutsResponse { opt_outs }))
    }

    async fn send_reaction(
        &self,
        request: Request<SendReactionRequest>,
    ) -> Result<Response<SendReactionResponse>, Status> {
        let reaction = SendReaction::try_from(vouched(request)?)?;
        let message = self.messaging.send_reaction(reaction).await?;
        Ok(Response::new(SendReactionResponse {
            message: Some(proto::message(&message)),
        }))
    }

    async fn mark_attention_read(
        &self,
        request: Request<MarkAttentionReadRequest>,
    ) -> Result<Response<MarkAttentionReadResponse>, Status> {
        let mut check = Check::default();
        let attention_id = check.uuid("attention_id", &request.into_inner().attention_id);
        check.finish()?;
        let marked = self.messaging.mark_attention_read(attention_id).await?;
        Ok(Response::new(MarkAttentionReadResponse {
            marked: u32::try_from(marked).unwrap_or(u32::MAX),
        }))
    }

    async fn get_window(
        &self,
        request: Request<GetWindowRequest>,
    ) -> Result<Response<GetWindowResponse>, Status> {
        let request = request.into_inner();
        let mut check = Check::default();
        let number = check.phone_number_id(
            "business_phone_number_id",
            &request.business_phone_number_id,
        );
        let customer_id = check.required("customer_id", &request.customer_id);
        check.finish()?;
        let window = self.messaging.window(&number, &customer_id).await?;
        Ok(Response::new(GetWindowResponse {
            window: Some(proto::window(&window, domain::now())),
        }))
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

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let request = request.into_inner();
        let mut check = Check::default();
        let attention_id = check.uuid("attention_id", &request.attention_id);
        check.finish()?;
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

    async fn purge_attentions(
        &self,
        request: Request<pb::PurgeAttentionsRequest>,
    ) -> Result<Response<pb::PurgeAttentionsResponse>, Status> {
        let request = request.into_inner();
        let mut check = Check::default();
        let ids: Vec<Uuid> = request
            .attention_ids
            .iter()
            .enumerate()
            .map(|(i, id)| check.uuid(&format!("attention_ids[{i}]"), id))
            .collect();
        check.finish()?;
        let purged = self
            .messaging
            .purge(&self.media, &ids, request.erase_customer)
            .await?;
        Ok(Response::new(pb::PurgeAttentionsResponse {
            messages: purged.messages,
            files: purged.files,
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

/// Checks the fields of a request one by one and reports every bad one at
/// once. A bad field reads as a placeholder value, never used: `finish` fails.
#[derive(Default)]
struct Check(Vec<Violation>);

impl Check {
    fn bad(&mut self, field: &str, why: impl Into<String>) {
        self.0.push(Violation::new(field, why));
    }

    fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    /// A text that must be there, trimmed.
    fn required(&mut self, field: &str, value: &str) -> String {
        let value = value.trim();
        if value.is_empty() {
            self.bad(field, "is required");
        }
        value.to_owned()
    }

    fn uuid(&mut self, field: &str, value: &str) -> Uuid {
        if value.is_empty() {
            self.bad(field, "is required");
            return Uuid::nil();
        }
        Uuid::parse_str(value).unwrap_or_else(|_| {
            self.bad(field, "is not a UUID");
            Uuid::nil()
        })
    }

    fn optional_uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        (!value.is_empty()).then(|| self.uuid(field, value))
    }

    fn phone_number_id(&mut self, field: &str, value: &str) -> String {
        let value = self.required(field, value);
        // It becomes a path segment of the Graph API URL.
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.bad(field, "has characters a phone number id never has");
        }
        value
    }

    fn recipient(&mut self, recipient: Option<pb::Recipient>) -> Recipient {
        let recipient = recipient.unwrap_or_default();
        let attention_id = self.uuid("recipient.attention_id", &recipient.attention_id);
        let number = self.phone_number_id(
            "recipient.business_phone_number_id",
            &recipient.business_phone_number_id,
        );
        let common::Customer {
            id,
            wa_id,
            user_id,
            name,
        } = recipient.customer.unwrap_or_default();
        let wa_id = self.required("recipient.customer.wa_id", &wa_id);
        let mut customer = Customer::new(wa_id, user_id, name);
        if !id.is_empty() {
            customer.id = id;
        }
        Recipient {
            attention_id,
            business_phone_number_id: number,
            customer,
            agent_id: Some(recipient.agent_id).filter(|a| !a.is_empty()),
        }
    }

    fn idempotency_key(&mut self, value: &str) -> String {
        let key = self.required("idempotency_key", value);
        if key.chars().count() > MAX_KEY_CHARS {
            self.bad(
                "idempotency_key",
                format!("is longer than {MAX_KEY_CHARS} characters"),
            );
        }
        key
    }

    fn text(&mut self, value: &str) {
        let characters = value.chars().count();
        if characters == 0 {
            self.bad("text", "is empty");
        } else if characters > MAX_TEXT_CHARS {
            self.bad(
                "text",
                format!("has {characters} characters; WhatsApp allows at most {MAX_TEXT_CHARS}"),
            );
        }
    }

    fn template(&mut self, request: &SendTemplateRequest) -> Template {
        let name = self.required("name", &request.name);
        if !name.is_empty() && !atenciones_domain::is_template_name(&name) {
            self.bad(
                "name",
                "is not a template name (lowercase letters, digits and _)",
            );
        }
        let language = self.required("language", &request.language);
        if !language.is_empty() && !atenciones_domain::is_language_code(&language) {
            self.bad("language", "is not a language code such as es or es_MX");
        }
        for (i, parameter) in request.body_parameters.iter().enumerate() {
            let field = format!("body_parameters[{i}]");
            // WhatsApp refuses these (error 132018) only after the message
            // was stored; refusing them here tells the agent at once.
            if parameter.trim().is_empty() {
                self.bad(&field, "is empty");
            } else if parameter.chars().count() > MAX_PARAMETER_CHARS {
                self.bad(
                    &field,
                    format!("is longer than {MAX_PARAMETER_CHARS} characters"),
                );
            } else if parameter.contains(['\n', '\t']) || parameter.contains("     ") {
                self.bad(
                    &field,
                    "has a new line, a tab or more than four spaces in a row",
                );
            }
        }
        Template {
            name,
            language,
            body_parameters: request.body_parameters.clone(),
        }
    }

    /// WhatsApp's limit on a media caption.
    fn caption(&mut self, value: &str) {
        let characters = value.trim().chars().count();
        if characters > MAX_CAPTION_CHARS {
            self.bad(
                "caption",
                format!("has {characters} characters; WhatsApp allows at most {MAX_CAPTION_CHARS}"),
            );
        }
    }

    fn emoji(&mut self, value: &str) {
        if value.chars().count() > MAX_EMOJI_CHARS || value.chars().any(char::is_whitespace) {
            self.bad("emoji", "is not one emoji");
        }
    }
}

/// A send: where to, the fields every kind shares around its body, and the
/// body `body` checks and builds. Violations come in the request's order.
fn outbound(
    recipient: Option<pb::Recipient>,
    body: impl FnOnce(&mut Check) -> OutboundBody,
    reply_to_message_id: &str,
    idempotency_key: &str,
) -> Result<Outbound, Error> {
    let mut check = Check::default();
    let recipient = check.recipient(recipient);
    let body = body(&mut check);
    let reply_to = check.optional_uuid("reply_to_message_id", reply_to_message_id);
    let idempotency_key = check.idempotency_key(idempotency_key);
    check.finish()?;
    Ok(Outbound {
        recipient,
        body,
        reply_to,
        idempotency_key,
    })
}

impl TryFrom<SendTextRequest> for Outbound {
    type Error = Error;

    fn try_from(request: SendTextRequest) -> Result<Self, Error> {
        let body = |check: &mut Check| {
            check.text(&request.text);
            OutboundBody::Text {
                body: request.text.clone(),
                preview_url: request.preview_url,
            }
        };
        outbound(
            request.recipient.clone(),
            body,
            &request.reply_to_message_id,
            &request.idempotency_key,
        )
    }
}

impl TryFrom<SendTemplateRequest> for Outbound {
    type Error = Error;

    fn try_from(request: SendTemplateRequest) -> Result<Self, Error> {
        let body = |check: &mut Check| OutboundBody::Template(check.template(&request));
        outbound(
            request.recipient.clone(),
            body,
            &request.reply_to_message_id,
            &request.idempotency_key,
        )
    }
}

impl TryFrom<SendReactionRequest> for SendReaction {
    type Error = Error;

    fn try_from(request: SendReactionRequest) -> Result<Self, Error> {
        let mut check = Check::default();
        let recipient = check.recipient(request.recipient);
        let message_id = check.uuid("message_id", &request.message_id);
        check.emoji(&request.emoji);
        let idempotency_key = check.idempotency_key(&request.idempotency_key);
        check.finish()?;
        Ok(SendReaction {
            recipient,
            message_id,
            emoji: request.emoji,
            idempotency_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient() -> pb::Recipient {
        pb::Recipient {
            attention_id: Uuid::new_v4().to_string(),
            business_phone_number_id: "1122334455667".into(),
            customer: Some(common::Customer {
                wa_id: "5491100000000".into(),
                ..Default::default()
            }),
            agent_id: "agent-1".into(),
        }
    }

    fn valid() -> SendTextRequest {
        SendTextRequest {
            recipient: Some(recipient()),
            text: "hola".into(),
            preview_url: false,
            reply_to_message_id: String::new(),
            idempotency_key: "k-1".into(),
        }
    }

    fn template() -> SendTemplateRequest {
        SendTemplateRequest {
            recipient: Some(recipient()),
            name: "seguimiento_2".into(),
            language: "es_MX".into(),
            body_parameters: vec!["Ana".into()],
            reply_to_message_id: String::new(),
            idempotency_key: "k-1".into(),
            validate_only: false,
        }
    }

    fn fields<R>(request: R) -> Vec<String>
    where
        Outbound: TryFrom<R, Error = Error>,
    {
        match Outbound::try_from(request) {
            Err(Error::InvalidArgument(violations)) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_becomes_a_command() {
        let command = Outbound::try_from(valid()).expect("valid");
        assert_eq!(
            command.recipient.customer.id, "5491100000000",
            "customer id defaults to wa_id"
        );
        assert_eq!(command.recipient.agent_id.as_deref(), Some("agent-1"));
        assert_eq!(command.reply_to, None);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let request = SendTextRequest {
            recipient: None,
            text: String::new(),
            reply_to_message_id: "not-a-uuid".into(),
            idempotency_key: String::new(),
            ..valid()
        };
        assert_eq!(
            fields(request),
            vec![
                "recipient.attention_id",
                "recipient.business_phone_number_id",
                "recipient.customer.wa_id",
                "text",
                "reply_to_message_id",
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
        assert!(Outbound::try_from(ok).is_ok());
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
        let mut request = valid();
        if let Some(r) = request.recipient.as_mut() {
            r.business_phone_number_id = "../me".into();
        }
        assert_eq!(fields(request), vec!["recipient.business_phone_number_id"]);
        let mut request = valid();
        if let Some(r) = request.recipient.as_mut() {
            r.attention_id = "nope".into();
        }
        assert_eq!(fields(request), vec!["recipient.attention_id"]);
    }

    #[test]
    fn templates_need_a_name_a_language_and_parameters_whatsapp_takes() {
        let command = Outbound::try_from(template()).expect("valid");
        assert!(!command.body.needs_window());
        let request = SendTemplateRequest {
            name: "Seguimiento Mayo".into(),
            language: String::new(),
            body_parameters: vec!["".into(), "dos\nlíneas".into(), "ok".into()],
            ..template()
        };
        assert_eq!(
            fields(request),
            vec![
                "name",
                "language",
                "body_parameters[0]",
                "body_parameters[1]"
            ]
        );
    }

    #[test]
    fn a_reaction_names_its_message_and_at_most_one_emoji() {
        let request = SendReactionRequest {
            recipient: Some(recipient()),
            message_id: Uuid::new_v4().to_string(),
            emoji: "👍🏽".into(),
            idempotency_key: "k".into(),
        };
        assert!(SendReaction::try_from(request.clone()).is_ok());
        let removal = SendReactionRequest {
            emoji: String::new(),
            ..request.clone()
        };
        assert!(SendReaction::try_from(removal).is_ok(), "empty removes");
        let bad = SendReactionRequest {
            message_id: String::new(),
            emoji: "me gusta".into(),
            ..request
        };
        let Err(Error::InvalidArgument(violations)) = SendReaction::try_from(bad) else {
            panic!("expected invalid argument");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["message_id", "emoji"]);
    }
}
