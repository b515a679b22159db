//! AdminService: supervisors configure campaigns, numbers and agents. The
//! gateway checks the role; the queue, which owns supervisor records, checks
//! which campaigns the caller supervises, validates and audits.

use atenciones_runtime::grpc::Channel;
use tonic::{Request, Response, Status};

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::gateway::v1::admin_service_server::AdminService;
use atenciones_proto::history::v1 as history_pb;
use atenciones_proto::history::v1::history_service_client::HistoryServiceClient;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::{ServiceName, Settings};

use crate::auth::Identity;
use crate::error::Error;
use crate::live;
use crate::membership::Memberships;

#[derive(Clone)]
pub struct Admin {
    queue: QueueServiceClient<Channel>,
    form: FormServiceClient<Channel>,
    history: HistoryServiceClient<Channel>,
    messaging: MessagingServiceClient<Channel>,
    memberships: Memberships,
    feed: live::Feed,
}

impl Admin {
    pub fn new(
        settings: &Settings,
        memberships: Memberships,
        feed: live::Feed,
    ) -> Result<Self, tonic::transport::Error> {
        let channel =
            |service| atenciones_runtime::grpc::service_channel(settings, "gateway", service);
        Ok(Self {
            queue: QueueServiceClient::new(channel(ServiceName::Queue)?),
            form: FormServiceClient::new(channel(ServiceName::Form)?),
            history: HistoryServiceClient::new(channel(ServiceName::History)?),
            messaging: MessagingServiceClient::new(channel(ServiceName::Messaging)?),
            memberships,
            feed,
        })
    }
}

impl Admin {
    /// Ids of the campaigns the supervisor supervises; the queue owns who
    /// supervises what.
    async fn supervised(&self, actor_id: String) -> Result<Vec<String>, Status> {
        Ok(self.memberships.supervised(&actor_id).await?.to_vec())
    }

    /// The business numbers bound to the campaigns the supervisor supervises.
    async fn supervised_numbers(&self, actor_id: String) -> Result<Vec<String>, Status> {
        let numbers = self
            .queue
            .clone()
            .list_campaigns(queue_pb::ListCampaignsRequest { actor_id })
            .await?
            .into_inner()
            .business_numbers;
        Ok(numbers.into_iter().map(|n| n.phone_number_id).collect())
    }

    /// PERMISSION_DENIED unless `number` is bound to a supervised campaign.
    /// (An empty one is the service's to report with the other bad fields.)
    async fn check_number(&self, actor_id: String, number: &str) -> Result<(), Status> {
        if number.is_empty()
            || self
                .supervised_numbers(actor_id)
                .await?
                .iter()
                .any(|n| n == number)
        {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "business number {number} is not one of your campaigns'"
            ))
            .into())
        }
    }

    /// The supervised numbers, or only `only` when it is one of them.
    async fn numbers_in_scope(&self, actor_id: String, only: &str) -> Result<Vec<String>, Status> {
        let mut numbers = self.supervised_numbers(actor_id).await?;
        numbers.retain(|n| only.is_empty() || n == only);
        Ok(numbers)
    }

    /// PERMISSION_DENIED unless the supervisor supervises `campaign_id`.
    async fn check_supervises(&self, actor_id: &str, campaign_id: &str) -> Result<(), Status> {
        if self
            .supervised(actor_id.to_owned())
            .await?
            .iter()
            .any(|c| c == campaign_id)
        {
            Ok(())
        } else {
            Err(
                Error::PermissionDenied(format!("you do not supervise campaign {campaign_id}"))
                    .into(),
            )
        }
    }
}

/// The caller's id. Which roles may call each RPC is checked before the
/// handler runs ([`crate::authorize::TABLE`]); handlers scope by campaign.
fn actor<T>(request: &Request<T>) -> Result<String, Error> {
    request
        .extensions()
        .get::<Identity>()
        .map(|identity| identity.subject.clone())
        .ok_or(Error::Unauthenticated)
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn save_campaign(
        &self,
        request: Request<pb::SaveCampaignRequest>,
    ) -> Result<Response<pb::SaveCampaignResponse>, Status> {
        let actor_id = actor(&request)?;
        let campaign = request.into_inner().campaign;
        let saved = self
            .queue
            .clone()
            .save_campaign(queue_pb::SaveCampaignRequest { actor_id, campaign })
            .await?
            .into_inner();
        Ok(Response::new(pb::SaveCampaignResponse {
            campaign: saved.campaign,
        }))
    }

    async fn deactivate_campaign(
        &self,
        request: Request<pb::DeactivateCampaignRequest>,
    ) -> Result<Response<pb::DeactivateCampaignResponse>, Status> {
        let actor_id = actor(&request)?;
        let campaign_id = request.into_inner().campaign_id;
        let saved = self
            .queue
            .clone()
            .deactivate_campaign(queue_pb::DeactivateCampaignRequest {
                actor_id,
                campaign_id,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::DeactivateCampaignResponse {
            campaign: saved.campaign,
        }))
    }

    async fn save_business_number(
        &self,
        request: Request<pb::SaveBusinessNumberRequest>,
    ) -> Result<Response<pb::SaveBusinessNumberResponse>, Status> {
        let actor_id = actor(&request)?;
        let business_number = request.into_inner().business_number;
        let saved = self
            .queue
            .clone()
            .save_business_number(queue_pb::SaveBusinessNumberRequest {
                actor_id,
                business_number,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::SaveBusinessNumberResponse {
            business_number: saved.business_number,
        }))
    }

    async fn deactivate_business_number(
        &self,
        request: Request<pb::DeactivateBusinessNumberRequest>,
    ) -> Result<Response<pb::DeactivateBusinessNumberResponse>, Status> {
        let actor_id = actor(&request)?;
        let phone_number_id = request.into_inner().phone_number_id;
        let saved = self
            .queue
            .clone()
            .deactivate_business_number(queue_pb::DeactivateBusinessNumberRequest {
                actor_id,
                phone_number_id,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::DeactivateBusinessNumberResponse {
            business_number: saved.business_number,
        }))
    }

    async fn save_agent(
        &self,
        request: Request<pb::SaveAgentRequest>,
    ) -> Result<Response<pb::SaveAgentResponse>, Status> {
        let actor_id = actor(&request)?;
        let agent = request.into_inner().agent;
        let saved = self
            .queue
            .clone()
            .save_agent(queue_pb::SaveAgentRequest { actor_id, agent })
            .await?
            .into_inner();
        Ok(Response::new(pb::SaveAgentResponse { agent: saved.agent }))
    }

    async fn save_supervisor(
        &self,
        request: Request<pb::SaveSupervisorRequest>,
    ) -> Result<Response<pb::SaveSupervisorResponse>, Status> {
        let actor_id = actor(&request)?;
        let supervisor = request.into_inner().supervisor;
        let saved = self
            .queue
            .clone()
            .save_supervisor(queue_pb::SaveSupervisorRequest {
                actor_id,
                supervisor,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::SaveSupervisorResponse {
            supervisor: saved.supervisor,
        }))
    }

    async fn deactivate_agent(
        &self,
        request: Request<pb::DeactivateAgentRequest>,
    ) -> Result<Response<pb::DeactivateAgentResponse>, Status> {
        let actor_id = actor(&request)?;
        let agent_id = request.into_inner().agent_id;
        let saved = self
            .queue
            .clone()
            .deactivate_agent(queue_pb::DeactivateAgentRequest { actor_id, agent_id })
            .await?
            .into_inner();
        Ok(Response::new(pb::DeactivateAgentResponse {
            agent: saved.agent,
        }))
    }

    async fn deactivate_supervisor(
        &self,
        request: Request<pb::DeactivateSupervisorRequest>,
    ) -> Result<Response<pb::DeactivateSupervisorResponse>, Status> {
        let actor_id = actor(&request)?;
        let supervisor_id = request.into_inner().supervisor_id;
        self.queue
            .clone()
            .deactivate_supervisor(queue_pb::DeactivateSupervisorRequest {
                actor_id,
                supervisor_id,
            })
            .await?;
        Ok(Response::new(pb::DeactivateSupervisorResponse {}))
    }

    async fn set_vip_customer(
        &self,
        request: Request<pb::SetVipCustomerRequest>,
    ) -> Result<Response<pb::SetVipCustomerResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        self.queue
            .clone()
            .set_vip_customer(queue_pb::SetVipCustomerRequest {
                actor_id,
                campaign_id: r.campaign_id,
                customer_id: r.customer_id,
                vip: r.vip,
            })
            .await?;
        Ok(Response::new(pb::SetVipCustomerResponse {}))
    }

    async fn save_template(
        &self,
        request: Request<pb::SaveTemplateRequest>,
    ) -> Result<Response<pb::SaveTemplateResponse>, Status> {
        let actor_id = actor(&request)?;
        let template = request.into_inner().template.unwrap_or_default();
        self.check_number(actor_id, &template.business_phone_number_id)
            .await?;
        let saved = self
            .messaging
            .clone()
            .save_template(messaging_pb::SaveTemplateRequest {
                template: Some(template),
            })
            .await?
            .into_inner()
            .template;
        Ok(Response::new(pb::SaveTemplateResponse { template: saved }))
    }

    async fn list_number_templates(
        &self,
        request: Request<pb::ListNumberTemplatesRequest>,
    ) -> Result<Response<pb::ListNumberTemplatesResponse>, Status> {
        let actor_id = actor(&request)?;
        let only = request.into_inner().business_phone_number_id;
        let numbers = self.numbers_in_scope(actor_id, &only).await?;
        let templates = crate::outbound::templates(&self.messaging, numbers, false).await?;
        Ok(Response::new(pb::ListNumberTemplatesResponse { templates }))
    }

    async fn mark_opt_out(
        &self,
        request: Request<pb::MarkOptOutRequest>,
    ) -> Result<Response<pb::MarkOptOutResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let customer_id = crate::outbound::e164(&r.customer_number)?;
        self.check_number(actor_id.clone(), &r.business_phone_number_id)
            .await?;
        self.messaging
            .clone()
            .opt_out_customer(messaging_pb::OptOutCustomerRequest {
                business_phone_number_id: r.business_phone_number_id,
                customer_id,
                actor: actor_id,
                reason: r.reason,
            })
            .await?;
        Ok(Response::new(pb::MarkOptOutResponse {}))
    }

    async fn list_opt_outs(
        &self,
        request: Request<pb::ListOptOutsRequest>,
    ) -> Result<Response<pb::ListOptOutsResponse>, Status> {
        let actor_id = actor(&request)?;
        let only = request.into_inner().business_phone_number_id;
        let numbers = self.numbers_in_scope(actor_id, &only).await?;
        if numbers.is_empty() {
            return Ok(Response::new(pb::ListOptOutsResponse::default()));
        }
        let opt_outs = self
            .messaging
            .clone()
            .list_opt_outs(messaging_pb::ListOptOutsRequest {
                business_phone_number_ids: numbers,
            })
            .await?
            .into_inner()
            .opt_outs;
        Ok(Response::new(pb::ListOptOutsResponse { opt_outs }))
    }

    async fn create_dialer(
        &self,
        request: Request<pb::CreateDialerRequest>,
    ) -> Result<Response<pb::CreateDialerResponse>, Status> {
        let actor_id = actor(&request)?;
        let mut dialer = request.into_inner().dialer.unwrap_or_default();
        // The number's approved template says how many parameters each
        // contact line gives; the queue checks the rest.
        let numbers = self
            .queue
            .clone()
            .list_campaigns(queue_pb::ListCampaignsRequest {
                actor_id: actor_id.clone(),
            })
            .await?
            .into_inner()
            .business_numbers;
        let number = crate::outbound::number_for(
            &numbers,
            &dialer.campaign_id,
            &dialer.business_phone_number_id,
        )
        .unwrap_or_default();
        let template = dialer.template.clone().unwrap_or_default();
        if !number.is_empty() && !template.name.is_empty() {
            let approved =
                crate::outbound::templates(&self.messaging, vec![number.clone()], true).await?;
            let found = approved
                .iter()
                .find(|t| t.name == template.name && t.language == template.language)
                .ok_or_else(|| {
                    Error::FailedPrecondition(format!(
                        "template {} ({}) is not approved for business number {number}",
                        template.name, template.language
                    ))
                })?;
            dialer.template_parameter_count = found.body_parameter_count;
        }
        dialer.business_phone_number_id = number;
        let created = self
            .queue
            .clone()
            .create_dialer(queue_pb::CreateDialerRequest {
                actor_id,
                dialer: Some(dialer),
            })
            .await?
            .into_inner()
            .dialer;
        Ok(Response::new(pb::CreateDialerResponse { dialer: created }))
    }

    async fn upload_dialer_contacts(
        &self,
        request: Request<pb::UploadDialerContactsRequest>,
    ) -> Result<Response<pb::UploadDialerContactsResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let added = self
            .queue
            .clone()
            .add_dialer_contacts(queue_pb::AddDialerContactsRequest {
                actor_id,
                dialer_id: r.dialer_id,
                first_line: r.first_line,
                csv: r.csv,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::UploadDialerContactsResponse {
            added: added.added,
            rejected: added.rejected,
        }))
    }

    async fn get_dialer(
        &self,
        request: Request<pb::GetDialerRequest>,
    ) -> Result<Response<pb::GetDialerResponse>, Status> {
        let actor_id = actor(&request)?;
        let dialer = self
            .queue
            .clone()
            .get_dialer(queue_pb::GetDialerRequest {
                actor_id,
                dialer_id: request.into_inner().dialer_id,
            })
            .await?
            .into_inner()
            .dialer;
        Ok(Response::new(pb::GetDialerResponse { dialer }))
    }

    async fn set_dialer_state(
        &self,
        request: Request<pb::SetDialerStateRequest>,
    ) -> Result<Response<pb::SetDialerStateResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let dialer = self
            .queue
            .clone()
            .set_dialer_state(queue_pb::SetDialerStateRequest {
                actor_id,
                dialer_id: r.dialer_id,
                state: r.state,
            })
            .await?
            .into_inner()
            .dialer;
        Ok(Response::new(pb::SetDialerStateResponse { dialer }))
    }

    async fn list_dialers(
        &self,
        request: Request<pb::ListDialersRequest>,
    ) -> Result<Response<pb::ListDialersResponse>, Status> {
        let actor_id = actor(&request)?;
        let dialers = self
            .queue
            .clone()
            .list_dialers(queue_pb::ListDialersRequest {
                actor_id,
                campaign_id: request.into_inner().campaign_id,
            })
            .await?
            .into_inner()
            .dialers;
        Ok(Response::new(pb::ListDialersResponse { dialers }))
    }

    async fn list_dialer_contacts(
        &self,
        request: Request<pb::ListDialerContactsRequest>,
    ) -> Result<Response<pb::ListDialerContactsResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let page = self
            .queue
            .clone()
            .list_dialer_contacts(queue_pb::ListDialerContactsRequest {
                actor_id,
                dialer_id: r.dialer_id,
                state: r.state,
                page_size: r.page_size,
                page_token: r.page_token,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::ListDialerContactsResponse {
            contacts: page.contacts,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_campaign_snapshot(
        &self,
        request: Request<pb::GetCampaignSnapshotRequest>,
    ) -> Result<Response<pb::GetCampaignSnapshotResponse>, Status> {
        let actor_id = actor(&request)?;
        let snapshot = self
            .queue
            .clone()
            .get_campaign_snapshot(queue_pb::GetCampaignSnapshotRequest {
                actor_id,
                campaign_id: request.into_inner().campaign_id,
            })
            .await?
            .into_inner()
            .snapshot;
        Ok(Response::new(pb::GetCampaignSnapshotResponse { snapshot }))
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let actor_id = actor(&request)?;
        let list = self
            .queue
            .clone()
            .list_campaigns(queue_pb::ListCampaignsRequest { actor_id })
            .await?
            .into_inner();
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: list.campaigns,
            business_numbers: list.business_numbers,
        }))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let actor_id = actor(&request)?;
        let agents = self
            .queue
            .clone()
            .list_agents(queue_pb::ListAgentsRequest { actor_id })
            .await?
            .into_inner()
            .agents;
        Ok(Response::new(pb::ListAgentsResponse { agents }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let page = self
            .queue
            .clone()
            .list_audit_entries(queue_pb::ListAuditEntriesRequest {
                actor_id,
                page_size: r.page_size,
                page_token: r.page_token,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: page.entries,
            next_page_token: page.next_page_token,
        }))
    }

    async fn publish_form(
        &self,
        request: Request<pb::PublishFormRequest>,
    ) -> Result<Response<pb::PublishFormResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        self.check_supervises(&actor_id, &r.campaign_id).await?;
        let form = self
            .form
            .clone()
            .publish_form(form_pb::PublishFormRequest {
                campaign_id: r.campaign_id,
                direction: r.direction,
                title: r.title,
                fields: r.fields,
                actor: actor_id,
            })
            .await?
            .into_inner()
            .form;
        Ok(Response::new(pb::PublishFormResponse { form }))
    }

    async fn search_campaign_history(
        &self,
        request: Request<pb::SearchCampaignHistoryRequest>,
    ) -> Result<Response<pb::SearchCampaignHistoryResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let supervised = self.supervised(actor_id).await?;
        if supervised.is_empty() {
            return Ok(Response::new(pb::SearchCampaignHistoryResponse::default()));
        }
        let page = self
            .history
            .clone()
            .search_attentions(history_pb::SearchAttentionsRequest {
                filter: r.filter,
                scope_campaign_ids: supervised,
                page_size: r.page_size,
                page_token: r.page_token,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::SearchCampaignHistoryResponse {
            records: page.records,
            next_page_token: page.next_page_token,
        }))
    }

    type ExportCampaignReportStream = tonic::codegen::BoxStream<pb::ExportCampaignReportResponse>;

    async fn get_campaign_report(
        &self,
        request: Request<pb::GetCampaignReportRequest>,
    ) -> Result<Response<pb::GetCampaignReportResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let supervised = self.supervised(actor_id).await?;
        if supervised.is_empty() {
            return Ok(Response::new(pb::GetCampaignReportResponse::default()));
        }
        let report = self
            .history
            .clone()
            .get_report(history_pb::GetReportRequest {
                filter: r.filter,
                scope_campaign_ids: supervised,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::GetCampaignReportResponse {
            rows: report.rows,
            total: report.total,
        }))
    }

    async fn export_campaign_report(
        &self,
        request: Request<pb::ExportCampaignReportRequest>,
    ) -> Result<Response<Self::ExportCampaignReportStream>, Status> {
        use futures::StreamExt;
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        let supervised = self.supervised(actor_id).await?;
        if supervised.is_empty() {
            // As GetCampaignReport: nothing to report, not a bad request.
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        }
        // Passed through chunk by chunk: the gateway holds no more than one.
        let chunks = self
            .history
            .clone()
            .export_report(history_pb::ExportReportRequest {
                filter: r.filter,
                scope_campaign_ids: supervised,
                layout: r.layout,
            })
            .await?
            .into_inner()
            .map(|chunk| chunk.map(|c| pb::ExportCampaignReportResponse { csv: c.csv }));
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn set_history_retention(
        &self,
        request: Request<pb::SetHistoryRetentionRequest>,
    ) -> Result<Response<pb::SetHistoryRetentionResponse>, Status> {
        let actor_id = actor(&request)?;
        let r = request.into_inner();
        self.check_supervises(&actor_id, &r.campaign_id).await?;
        self.history
            .clone()
            .set_retention(history_pb::SetRetentionRequest {
                campaign_id: r.campaign_id,
                days: r.days,
            })
            .await?;
        Ok(Response::new(pb::SetHistoryRetentionResponse {}))
    }

    async fn list_history_retentions(
        &self,
        request: Request<pb::ListHistoryRetentionsRequest>,
    ) -> Result<Response<pb::ListHistoryRetentionsResponse>, Status> {
        let actor_id = actor(&request)?;
        let supervised = self.supervised(actor_id).await?;
        if supervised.is_empty() {
            return Ok(Response::new(pb::ListHistoryRetentionsResponse::default()));
        }
        let retentions = self
            .history
            .clone()
            .list_retentions(history_pb::ListRetentionsRequest {
                campaign_ids: supervised,
            })
            .await?
            .into_inner()
            .retentions;
        Ok(Response::new(pb::ListHistoryRetentionsResponse {
            retentions,
        }))
    }

    async fn erase_customer_data(
        &self,
        request: Request<pb::EraseCustomerDataRequest>,
    ) -> Result<Response<pb::EraseCustomerDataResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        let erased = self
            .history
            .clone()
            .erase_customer(history_pb::EraseCustomerRequest {
                customer_id: r.customer_id,
                actor,
                reason: r.reason,
            })
            .await?
            .into_inner();
        Ok(Response::new(pb::EraseCustomerDataResponse {
            erased_records: erased.erased_records,
            erasure_id: erased.erasure_id,
        }))
    }

    type StreamCampaignEventsStream = tonic::codegen::BoxStream<pb::StreamCampaignEventsResponse>;

    async fn stream_campaign_events(
        &self,
        request: Request<pb::StreamCampaignEventsRequest>,
    ) -> Result<Response<Self::StreamCampaignEventsStream>, Status> {
        use pb::stream_campaign_events_response::Item;
        let actor_id = actor(&request)?;
        let cursor = live::decode(&request.into_inner().cursor)?;
        let admin = self.clone();
        let audience = move || {
            let (admin, actor_id) = (admin.clone(), actor_id.clone());
            async move {
                let campaigns = admin.supervised(actor_id.clone()).await?;
                let agents = admin
                    .queue
                    .clone()
                    .list_agents(queue_pb::ListAgentsRequest { actor_id })
                    .await?
                    .into_inner()
                    .agents;
                Ok(live::Audience {
                    campaigns: campaigns.into_iter().collect(),
                    agents: agents
                        .into_iter()
                        .filter_map(|a| a.settings.map(|s| s.id))
                        .collect(),
                    agent: None,
                })
            }
        };
        let stream = live::stream(&self.feed, cursor, audience, |item| {
            pb::StreamCampaignEventsResponse {
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
