//! AgentDeskService: each call checks the caller, then fans out to the services.
//! The gateway keeps no state of its own.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use atenciones_runtime::grpc::Channel;
use futures::StreamExt;
use tonic::{Request, Response, Status};

use atenciones_proto::common::v1 as common;
use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::gateway::v1::agent_desk_service_server::AgentDeskService;
use atenciones_proto::history::v1 as history_pb;
use atenciones_proto::history::v1::history_service_client::HistoryServiceClient;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::paging::all_messages;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::{ServiceName, Settings};

use crate::auth::Identity;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::live;
use crate::membership::Memberships;

#[derive(Clone)]
pub struct AgentDesk {
    queue: QueueServiceClient<Channel>,
    messaging: MessagingServiceClient<Channel>,
    form: FormServiceClient<Channel>,
    history: HistoryServiceClient<Channel>,
    memberships: Memberships,
    feed: live::Feed,
    /// A call's deadline when the caller sets none.
    request_timeout: Duration,
}

/// The attention id of a template checked before its attention exists.
const NO_ATTENTION_YET: &str = "00000000-0000-0000-0000-000000000000";

/// The most an optional part of a composite call may take: the screen is
/// better served without it than late.
const OPTIONAL_PART: Duration = Duration::from_secs(2);

impl AgentDesk {
    pub fn new(
        settings: &Settings,
        memberships: Memberships,
        feed: live::Feed,
    ) -> Result<Self, tonic::transport::Error> {
        let channel =
            |service| atenciones_runtime::grpc::service_channel(settings, "gateway", service);
        Ok(Self {
            queue: QueueServiceClient::new(channel(ServiceName::Queue)?),
            messaging: MessagingServiceClient::new(channel(ServiceName::Messaging)?),
            form: FormServiceClient::new(channel(ServiceName::Form)?),
            history: HistoryServiceClient::new(channel(ServiceName::History)?),
            memberships,
            feed,
            request_timeout: settings.gateway.request_timeout(),
        })
    }

    async fn agent(&self, caller: &Identity) -> Result<queue_pb::Agent, Error> {
        let request = queue_pb::GetAgentRequest {
            agent_id: caller.subject.clone(),
        };
        let agent = self
            .queue
            .clone()
            .get_agent(request)
            .await?
            .into_inner()
            .agent;
        agent.ok_or_else(|| Error::Upstream(Status::internal("queue returned no agent")))
    }

    /// The attention, after the queue (which owns campaign membership and who
    /// holds what) agreed the caller may access it this way.
    async fn attention(
        &self,
        caller: &Identity,
        attention_id: &str,
        access: queue_pb::Access,
    ) -> Result<queue_pb::Attention, Error> {
        let request = queue_pb::GetAttentionRequest {
            attention_id: attention_id.to_owned(),
            agent_id: caller.subject.clone(),
            access: access.into(),
        };
        let attention = self
            .queue
            .clone()
            .get_attention(request)
            .await?
            .into_inner()
            .attention;
        attention.ok_or_else(|| Error::Upstream(Status::internal("queue returned no attention")))
    }

    /// Sends a message in an attention the caller holds: `send` makes the
    /// messaging call for the recipient the queue agreed to; the message
    /// (sent, or pending a retry) then becomes the attention's list preview.
    async fn send_in<F, Fut>(
        &self,
        caller: &Identity,
        attention_id: &str,
        send: F,
    ) -> Result<messaging_pb::Message, Error>
    where
        F: FnOnce(MessagingServiceClient<Channel>, messaging_pb::Recipient) -> Fut,
        Fut: Future<Output = Result<Option<messaging_pb::Message>, Status>>,
    {
        let attention = self
            .attention(caller, attention_id, queue_pb::Access::Hold)
            .await?;
        let recipient = messaging_pb::Recipient {
            attention_id: attention.id.clone(),
            business_phone_number_id: attention.business_phone_number_id,
            customer: attention.customer,
            agent_id: caller.subject.clone(),
        };
        let message = send(self.messaging.clone(), recipient)
            .await?
            .ok_or_else(|| Status::internal("messaging returned no message"))?;
        // Idempotent on the message id: a client retry after a failure here
        // re-sends nothing and completes this step.
        self.queue
            .clone()
            .record_outbound_message(queue_pb::RecordOutboundMessageRequest {
                attention_id: attention.id,
                message_id: message.id.clone(),
                preview: message.text.chars().take(100).collect(),
                time: message.time,
            })
            .await?;
        Ok(message)
    }

    /// History keeps each message's delivery status as it was at finish; a
    /// receipt can arrive later, and messaging, which owns delivery, has the
    /// current one. Without messaging the record is shown as history has it.
    async fn with_current_statuses(
        &self,
        mut record: history_pb::AttentionRecord,
    ) -> history_pb::AttentionRecord {
        let current: HashMap<_, _> = match all_messages(
            &mut self.messaging.clone(),
            &record.attention_id,
        )
        .await
        {
            Ok(messages) => messages
                .into_iter()
                .map(|m| (m.id, (m.status, m.error)))
                .collect(),
            Err(status) => {
                tracing::warn!(%status, "history record shown with the statuses it had at finish");
                return record;
            }
        };
        for message in &mut record.transcript {
            if let Some((status, error)) = current.get(&message.id).cloned() {
                message.status = status;
                message.error = error;
            }
        }
        record
    }

    /// Blue ticks for the customer, in the background: opening an attention
    /// never waits for WhatsApp, nor fails because of it.
    fn mark_read_later(&self, attention_id: String) {
        let mut messaging = self.messaging.clone();
        tokio::spawn(async move {
            let request = messaging_pb::MarkAttentionReadRequest {
                attention_id: attention_id.clone(),
            };
            if let Err(status) = messaging.mark_attention_read(request).await {
                tracing::warn!(%attention_id, %status, "could not mark the customer's messages read");
            }
        });
    }
}

fn caller<T>(request: &Request<T>) -> Result<Identity, Error> {
    request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or(Error::Unauthenticated)
}

#[tonic::async_trait]
impl AgentDeskService for AgentDesk {
    type DownloadMediaStream = tonic::codegen::BoxStream<pb::DownloadMediaResponse>;

    async fn send_media(
        &self,
        request: Request<pb::SendMediaRequest>,
    ) -> Result<Response<pb::SendMediaResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let message = self
            .send_in(
                &caller,
                &r.attention_id,
                |mut messaging, recipient| async move {
                    let request = messaging_pb::SendMediaRequest {
                        recipient: Some(recipient),
                        media_id: r.media_id,
                        caption: r.caption,
                        reply_to_message_id: r.reply_to_message_id,
                        idempotency_key: r.idempotency_key,
                    };
                    Ok(messaging.send_media(request).await?.into_inner().message)
                },
            )
            .await?;
        Ok(Response::new(pb::SendMediaResponse {
            message: Some(message),
        }))
    }

    async fn send_template(
        &self,
        request: Request<pb::SendTemplateRequest>,
    ) -> Result<Response<pb::SendTemplateResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let message = self
            .send_in(
                &caller,
                &r.attention_id,
                |mut messaging, recipient| async move {
                    let request = messaging_pb::SendTemplateRequest {
                        recipient: Some(recipient),
                        name: r.name,
                        language: r.language,
                        body_parameters: r.body_parameters,
                        reply_to_message_id: r.reply_to_message_id,
                        idempotency_key: r.idempotency_key,
                        validate_only: false,
                    };
                    Ok(messaging.send_template(request).await?.into_inner().message)
                },
            )
            .await?;
        Ok(Response::new(pb::SendTemplateResponse {
            message: Some(message),
        }))
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        let caller = caller(&request)?;
        let campaign_id = request.into_inner().campaign_id;
        let numbers: Vec<String> = self
            .agent(&caller)
            .await?
            .business_numbers
            .into_iter()
            .filter(|n| campaign_id.is_empty() || n.campaign_id == campaign_id)
            .map(|n| n.phone_number_id)
            .collect();
        let templates = crate::outbound::templates(&self.messaging, numbers, true).await?;
        Ok(Response::new(pb::ListTemplatesResponse { templates }))
    }

    async fn start_outbound_attention(
        &self,
        request: Request<pb::StartOutboundAttentionRequest>,
    ) -> Result<Response<pb::StartOutboundAttentionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let number = crate::outbound::e164(&r.customer_number)?;
        let customer = common::Customer {
            id: number.clone(),
            wa_id: number,
            user_id: String::new(),
            name: r.customer_name,
        };
        let agent = self.agent(&caller).await?;
        let business_number =
            crate::outbound::business_number(&agent, &r.campaign_id, &r.business_phone_number_id)?;
        let template = |attention_id: String, validate_only| messaging_pb::SendTemplateRequest {
            recipient: Some(messaging_pb::Recipient {
                attention_id,
                business_phone_number_id: business_number.clone(),
                customer: Some(customer.clone()),
                agent_id: caller.subject.clone(),
            }),
            name: r.template_name.clone(),
            language: r.template_language.clone(),
            body_parameters: r.body_parameters.clone(),
            reply_to_message_id: String::new(),
            idempotency_key: r.idempotency_key.clone(),
            validate_only,
        };
        let mut messaging = self.messaging.clone();
        // Nothing is started with a template WhatsApp would refuse.
        messaging
            .send_template(template(NO_ATTENTION_YET.to_owned(), true))
            .await?;
        let started = self
            .queue
            .clone()
            .start_outbound_attention(queue_pb::StartOutboundAttentionRequest {
                agent_id: caller.subject.clone(),
                campaign_id: r.campaign_id.clone(),
                business_phone_number_id: business_number.clone(),
                customer: Some(customer.clone()),
                idempotency_key: r.idempotency_key.clone(),
            })
            .await?
            .into_inner();
        let attention = started
            .attention
            .ok_or_else(|| Status::internal("queue returned no attention"))?;
        if !started.created {
            return Ok(Response::new(pb::StartOutboundAttentionResponse {
                attention: Some(attention),
                message: None,
                started: false,
            }));
        }
        // Idempotent on the key: a retry sends the template once, and
        // completes a start whose send was cut short.
        let message = messaging
            .send_template(template(attention.id.clone(), false))
            .await?
            .into_inner()
            .message
            .ok_or_else(|| Status::internal("messaging returned no message"))?;
        self.queue
            .clone()
            .record_outbound_message(queue_pb::RecordOutboundMessageRequest {
                attention_id: attention.id.clone(),
                message_id: message.id.clone(),
                preview: message.text.chars().take(100).collect(),
                time: message.time,
            })
            .await?;
        Ok(Response::new(pb::StartOutboundAttentionResponse {
            attention: Some(attention),
            message: Some(message),
            started: true,
        }))
    }

    async fn send_reaction(
        &self,
        request: Request<pb::SendReactionRequest>,
    ) -> Result<Response<pb::SendReactionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let message = self
            .send_in(
                &caller,
                &r.attention_id,
                |mut messaging, recipient| async move {
                    let request = messaging_pb::SendReactionRequest {
                        recipient: Some(recipient),
                        message_id: r.message_id,
                        emoji: r.emoji,
                        idempotency_key: r.idempotency_key,
                    };
                    Ok(messaging.send_reaction(request).await?.into_inner().message)
                },
            )
            .await?;
        Ok(Response::new(pb::SendReactionResponse {
            message: Some(message),
        }))
    }

    async fn start_media_upload(
        &self,
        request: Request<pb::StartMediaUploadRequest>,
    ) -> Result<Response<pb::StartMediaUploadResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let attention = self
            .attention(&caller, &r.attention_id, queue_pb::Access::Hold)
            .await?;
        let ticket = self
            .messaging
            .clone()
            .start_media_upload(messaging_pb::StartMediaUploadRequest {
                attention_id: attention.id,
                business_phone_number_id: attention.business_phone_number_id,
                mime_type: r.mime_type,
                filename: r.filename,
                size_bytes: r.size_bytes,
                sha256: r.sha256,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::StartMediaUploadResponse {
            upload_id: ticket.upload_id,
            max_chunk_bytes: ticket.max_chunk_bytes,
        }))
    }

    async fn upload_media_chunk(
        &self,
        request: Request<pb::UploadMediaChunkRequest>,
    ) -> Result<Response<pb::UploadMediaChunkResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        // Every chunk: the attention may have been finished or taken over
        // since the upload began.
        let attention = self
            .attention(&caller, &r.attention_id, queue_pb::Access::Hold)
            .await?;
        let received = self
            .messaging
            .clone()
            .upload_media_chunk(messaging_pb::UploadMediaChunkRequest {
                upload_id: r.upload_id,
                offset: r.offset,
                data: r.data,
                attention_id: attention.id,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::UploadMediaChunkResponse {
            received_bytes: received.received_bytes,
        }))
    }

    async fn finish_media_upload(
        &self,
        request: Request<pb::FinishMediaUploadRequest>,
    ) -> Result<Response<pb::FinishMediaUploadResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let attention = self
            .attention(&caller, &r.attention_id, queue_pb::Access::Hold)
            .await?;
        let finished = self
            .messaging
            .clone()
            .finish_media_upload(messaging_pb::FinishMediaUploadRequest {
                upload_id: r.upload_id,
                attention_id: attention.id,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::FinishMediaUploadResponse {
            media: finished.media,
        }))
    }

    async fn download_media(
        &self,
        request: Request<pb::DownloadMediaRequest>,
    ) -> Result<Response<Self::DownloadMediaStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let attention = self
            .attention(&caller, &r.attention_id, queue_pb::Access::View)
            .await?;
        // Messaging checks the file belongs to the attention; the bytes are
        // relayed as they come, never gathered here.
        let parts = self
            .messaging
            .clone()
            .download_media(messaging_pb::DownloadMediaRequest {
                media_id: r.media_id,
                attention_id: attention.id,
            })
            .await?
            .into_inner();
        let relayed = parts.map(|part| {
            use messaging_pb::download_media_response::Part as From;
            use pb::download_media_response::Part as To;
            let part = part?.part.map(|part| match part {
                From::Info(info) => To::Info(info),
                From::Chunk(bytes) => To::Chunk(bytes),
            });
            Ok(pb::DownloadMediaResponse { part })
        });
        Ok(Response::new(relayed.boxed()))
    }

    async fn get_me(
        &self,
        request: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let agent = self.agent(&caller(&request)?).await?;
        Ok(Response::new(pb::GetMeResponse { agent: Some(agent) }))
    }

    async fn list_attentions(
        &self,
        request: Request<pb::ListAttentionsRequest>,
    ) -> Result<Response<pb::ListAttentionsResponse>, Status> {
        let caller = caller(&request)?;
        let list = self
            .queue
            .clone()
            .list_attentions(queue_pb::ListAttentionsRequest {
                agent_id: caller.subject,
                query: request.into_inner().query,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::ListAttentionsResponse {
            attentions: list.attentions,
            open_count: list.open_count,
            queued_count: list.queued_count,
        }))
    }

    async fn open_attention(
        &self,
        request: Request<pb::OpenAttentionRequest>,
    ) -> Result<Response<pb::OpenAttentionResponse>, Status> {
        let caller = caller(&request)?;
        let deadline = Deadline::of(&request, self.request_timeout);
        let r = request.into_inner();
        let (mut queue, mut messaging, mut history) = (
            self.queue.clone(),
            self.messaging.clone(),
            self.history.clone(),
        );
        let (mut form_client, mut draft_client) = (self.form.clone(), self.form.clone());
        let open = queue.open_attention(deadline.request(queue_pb::OpenAttentionRequest {
            attention_id: r.attention_id.clone(),
            agent_id: caller.subject.clone(),
        }));
        let (opened, agent) = tokio::try_join!(
            async { open.await.map_err(Error::from) },
            self.agent(&caller)
        )?;
        let attention = opened
            .into_inner()
            .attention
            .ok_or_else(|| Status::internal("queue returned no attention"))?;
        let customer_id = attention
            .customer
            .as_ref()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        self.mark_read_later(attention.id.clone());

        // Everything the screen needs, fetched at once, each call within
        // what is left of the caller's deadline.
        let messages =
            messaging.list_messages(deadline.request(messaging_pb::ListMessagesRequest {
                attention_id: attention.id.clone(),
                page_size: r.message_page_size,
                page_token: String::new(),
            }));
        let mut window_client = self.messaging.clone();
        let window = window_client.get_window(deadline.request(messaging_pb::GetWindowRequest {
            business_phone_number_id: attention.business_phone_number_id.clone(),
            customer_id: customer_id.clone(),
        }));
        // Optional: without history the attention still opens.
        let earlier = async {
            let mut request = deadline.request(history_pb::ListCustomerAttentionsRequest {
                customer_id,
                campaign_ids: agent.campaign_ids,
                page_size: 0,
                page_token: String::new(),
            });
            request.set_timeout(deadline.remaining().min(OPTIONAL_PART));
            Ok::<_, Status>(match history.list_customer_attentions(request).await {
                Ok(page) => Some(page.into_inner().records),
                Err(status) => {
                    tracing::warn!(%status, "earlier attentions unavailable");
                    None
                }
            })
        };
        let form = async {
            if attention.form_id.is_empty() {
                return Ok((None, None));
            }
            let form = form_client.get_form(deadline.request(form_pb::GetFormRequest {
                form_id: attention.form_id.clone(),
            }));
            let draft = draft_client.get_draft(deadline.request(form_pb::GetDraftRequest {
                attention_id: attention.id.clone(),
                form_id: attention.form_id.clone(),
            }));
            let (form, draft) = tokio::try_join!(form, draft)?;
            Ok::<_, Status>((form.into_inner().form, draft.into_inner().draft))
        };
        let (messages, earlier, (form, draft), window) =
            tokio::try_join!(messages, earlier, form, window)?;
        let messages = messages.into_inner();
        let unavailable = if earlier.is_none() {
            vec!["earlier_attentions".to_owned()]
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::OpenAttentionResponse {
            attention: Some(attention),
            messages: messages.messages,
            next_message_page_token: messages.next_page_token,
            form,
            draft,
            earlier_attentions: earlier.unwrap_or_default(),
            window: window.into_inner().window,
            unavailable,
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let attention = self
            .attention(&caller, &r.attention_id, queue_pb::Access::View)
            .await?;
        let page = self
            .messaging
            .clone()
            .list_messages(messaging_pb::ListMessagesRequest {
                attention_id: attention.id,
                page_size: r.page_size,
                page_token: r.page_token,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::ListMessagesResponse {
            messages: page.messages,
            next_page_token: page.next_page_token,
        }))
    }

    async fn send_text(
        &self,
        request: Request<pb::SendTextRequest>,
    ) -> Result<Response<pb::SendTextResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let message = self
            .send_in(
                &caller,
                &r.attention_id,
                |mut messaging, recipient| async move {
                    let request = messaging_pb::SendTextRequest {
                        recipient: Some(recipient),
                        text: r.text,
                        preview_url: r.preview_url,
                        reply_to_message_id: r.reply_to_message_id,
                        idempotency_key: r.idempotency_key,
                    };
                    Ok(messaging.send_text(request).await?.into_inner().message)
                },
            )
            .await?;
        Ok(Response::new(pb::SendTextResponse {
            message: Some(message),
        }))
    }

    async fn save_form_draft(
        &self,
        request: Request<pb::SaveFormDraftRequest>,
    ) -> Result<Response<pb::SaveFormDraftResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let attention = self
            .attention(&caller, &r.attention_id, queue_pb::Access::Hold)
            .await?;
        if attention.form_id.is_empty() {
            return Err(Error::FailedPrecondition(
                "the campaign has no form for this attention".into(),
            )
            .into());
        }
        let draft = self
            .form
            .clone()
            .save_draft(form_pb::SaveDraftRequest {
                attention_id: attention.id,
                form_id: attention.form_id,
                values: r.values,
            })
            .await?
            .into_inner()
            .draft;
        Ok(Response::new(pb::SaveFormDraftResponse { draft }))
    }

    async fn finish_attention(
        &self,
        request: Request<pb::FinishAttentionRequest>,
    ) -> Result<Response<pb::FinishAttentionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let attention = self
            .queue
            .clone()
            .finish_attention(queue_pb::FinishAttentionRequest {
                attention_id: r.attention_id,
                agent_id: caller.subject,
            })
            .await?
            .into_inner()
            .attention;
        Ok(Response::new(pb::FinishAttentionResponse { attention }))
    }

    async fn list_customer_history(
        &self,
        request: Request<pb::ListCustomerHistoryRequest>,
    ) -> Result<Response<pb::ListCustomerHistoryResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let campaigns = self.memberships.of_agent(&caller.subject).await?;
        // An empty filter means "every campaign" to history: never send one.
        if campaigns.is_empty() {
            return Ok(Response::new(pb::ListCustomerHistoryResponse::default()));
        }
        let page = self
            .history
            .clone()
            .list_customer_attentions(history_pb::ListCustomerAttentionsRequest {
                customer_id: r.customer_id,
                campaign_ids: campaigns.to_vec(),
                page_size: r.page_size,
                page_token: r.page_token,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::ListCustomerHistoryResponse {
            records: page.records,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_attention_record(
        &self,
        request: Request<pb::GetAttentionRecordRequest>,
    ) -> Result<Response<pb::GetAttentionRecordResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let campaigns = self.memberships.of_agent(&caller.subject).await?;
        let record = self
            .history
            .clone()
            .get_attention_record(history_pb::GetAttentionRecordRequest {
                attention_id: r.attention_id,
            })
            .await?
            .into_inner()
            .record
            .ok_or_else(|| Status::internal("history returned no record"))?;
        if !campaigns.contains(&record.campaign_id) {
            return Err(Error::PermissionDenied(
                "the attention belongs to a campaign you are not in".into(),
            )
            .into());
        }
        Ok(Response::new(pb::GetAttentionRecordResponse {
            record: Some(self.with_current_statuses(record).await),
        }))
    }

    async fn set_presence(
        &self,
        request: Request<pb::SetPresenceRequest>,
    ) -> Result<Response<pb::SetPresenceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let presence = self
            .queue
            .clone()
            .set_agent_presence(queue_pb::SetAgentPresenceRequest {
                agent_id: caller.subject,
                state: r.state,
                pause_reason: r.pause_reason,
            })
            .await?
            .into_inner()
            .presence;
        Ok(Response::new(pb::SetPresenceResponse { presence }))
    }

    async fn get_presence(
        &self,
        request: Request<pb::GetPresenceRequest>,
    ) -> Result<Response<pb::GetPresenceResponse>, Status> {
        let caller = caller(&request)?;
        let presence = self
            .queue
            .clone()
            .get_agent_presence(queue_pb::GetAgentPresenceRequest {
                agent_id: caller.subject,
            })
            .await?
            .into_inner()
            .presence;
        Ok(Response::new(pb::GetPresenceResponse { presence }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let caller = caller(&request)?;
        let presence = self
            .queue
            .clone()
            .heartbeat(queue_pb::HeartbeatRequest {
                agent_id: caller.subject,
            })
            .await?
            .into_inner()
            .presence;
        Ok(Response::new(pb::HeartbeatResponse { presence }))
    }

    async fn decline_offer(
        &self,
        request: Request<pb::DeclineOfferRequest>,
    ) -> Result<Response<pb::DeclineOfferResponse>, Status> {
        let caller = caller(&request)?;
        self.queue
            .clone()
            .decline_offer(queue_pb::DeclineOfferRequest {
                attention_id: request.into_inner().attention_id,
                agent_id: caller.subject,
            })
            .await?;
        Ok(Response::new(pb::DeclineOfferResponse {}))
    }

    async fn transfer_attention(
        &self,
        request: Request<pb::TransferAttentionRequest>,
    ) -> Result<Response<pb::TransferAttentionResponse>, Status> {
        use pb::transfer_attention_request::Target;
        use queue_pb::transfer_attention_request::Target as QueueTarget;
        let caller = caller(&request)?;
        let r = request.into_inner();
        let target = r.target.map(|target| match target {
            Target::ToAgentId(id) => QueueTarget::ToAgentId(id),
            Target::ToCampaignId(id) => QueueTarget::ToCampaignId(id),
        });
        let attention = self
            .queue
            .clone()
            .transfer_attention(queue_pb::TransferAttentionRequest {
                attention_id: r.attention_id,
                agent_id: caller.subject,
                target,
                note: r.note,
            })
            .await?
            .into_inner()
            .attention;
        Ok(Response::new(pb::TransferAttentionResponse { attention }))
    }

    async fn set_attention_tag(
        &self,
        request: Request<pb::SetAttentionTagRequest>,
    ) -> Result<Response<pb::SetAttentionTagResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let attention = self
            .queue
            .clone()
            .set_attention_tag(queue_pb::SetAttentionTagRequest {
                attention_id: r.attention_id,
                agent_id: caller.subject,
                tag: r.tag,
            })
            .await?
            .into_inner()
            .attention;
        Ok(Response::new(pb::SetAttentionTagResponse { attention }))
    }

    async fn search_history(
        &self,
        request: Request<pb::SearchHistoryRequest>,
    ) -> Result<Response<pb::SearchHistoryResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let campaigns = self.memberships.of_agent(&caller.subject).await?;
        if campaigns.is_empty() {
            return Ok(Response::new(pb::SearchHistoryResponse::default()));
        }
        let page = self
            .history
            .clone()
            .search_attentions(history_pb::SearchAttentionsRequest {
                filter: r.filter,
                scope_campaign_ids: campaigns.to_vec(),
                page_size: r.page_size,
                page_token: r.page_token,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::SearchHistoryResponse {
            records: page.records,
            next_page_token: page.next_page_token,
        }))
    }

    type StreamEventsStream = tonic::codegen::BoxStream<pb::StreamEventsResponse>;

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        use pb::stream_events_response::Item;
        let caller = caller(&request)?;
        let cursor = live::decode(&request.into_inner().cursor)?;
        let desk = self.clone();
        let audience = move || {
            let (desk, caller) = (desk.clone(), caller.clone());
            async move {
                let campaigns = desk.memberships.of_agent(&caller.subject).await?;
                Ok(live::Audience {
                    campaigns: campaigns.iter().cloned().collect(),
                    agents: HashSet::new(),
                    agent: Some(caller.subject.clone()),
                })
            }
        };
        let stream = live::stream(&self.feed, cursor, audience, |item| {
            pb::StreamEventsResponse {
                item: Some(match item {
                    live::Item::Event(event) => Item::Event(event),
                    live::Item::Heartbeat(beat) => Item::Heartbeat(beat),
                }),
            }
        })
        .await?;
        Ok(Response::new(stream))
    }
}
