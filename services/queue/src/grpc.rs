//! The gRPC face of the queue: requests in, domain calls, responses out.

use tonic::{Request, Response, Status};

use atenciones_runtime::caller::vouched;

use atenciones_proto::queue::v1 as pb;
use atenciones_proto::queue::v1::queue_service_server::QueueService;

use crate::admin::{AgentSettings, CampaignSettings, NumberSettings, SupervisorSettings, VipMark};
use crate::attention::Access;
use crate::error::Error;
use crate::presence::Presence;
use crate::queue::{NewMessage, Queue};
use crate::transfer::Target;

pub struct QueueApi {
    queue: Queue,
}

impl QueueApi {
    pub fn new(queue: Queue) -> Self {
        Self { queue }
    }
}

fn message_time(
    time: Option<prost_types::Timestamp>,
) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    match time {
        None => Ok(chrono::Utc::now()),
        Some(t) => atenciones_proto::time::from_timestamp(&t)
            .ok_or_else(|| Error::invalid("time", "out of range")),
    }
}

#[tonic::async_trait]
impl QueueService for QueueApi {
    async fn record_inbound_message(
        &self,
        request: Request<pb::RecordInboundMessageRequest>,
    ) -> Result<Response<pb::RecordInboundMessageResponse>, Status> {
        let r = request.into_inner();
        let customer = r
            .customer
            .ok_or_else(|| Error::invalid("customer", "required"))?;
        let message = NewMessage {
            id: r.message_id,
            preview: r.preview,
            time: message_time(r.time)?,
        };
        let (attention, created) = self
            .queue
            .record_inbound(&r.business_phone_number_id, customer, message)
            .await?;
        let out_of_hours_template = self.queue.out_of_hours_template(&attention).await?;
        Ok(Response::new(pb::RecordInboundMessageResponse {
            attention: Some(attention),
            created,
            out_of_hours_template,
        }))
    }

    async fn record_outbound_message(
        &self,
        request: Request<pb::RecordOutboundMessageRequest>,
    ) -> Result<Response<pb::RecordOutboundMessageResponse>, Status> {
        let r = request.into_inner();
        let message = NewMessage {
            id: r.message_id,
            preview: r.preview,
            time: message_time(r.time)?,
        };
        let attention = self.queue.record_outbound(&r.attention_id, message).await?;
        Ok(Response::new(pb::RecordOutboundMessageResponse {
            attention: Some(attention),
        }))
    }

    async fn record_message_status(
        &self,
        request: Request<pb::RecordMessageStatusRequest>,
    ) -> Result<Response<pb::RecordMessageStatusResponse>, Status> {
        let r = request.into_inner();
        let recorded = self
            .queue
            .record_status(
                &r.attention_id,
                &r.message_id,
                &r.status,
                message_time(r.time)?,
                (r.error_code, &r.error_title),
            )
            .await?;
        Ok(Response::new(pb::RecordMessageStatusResponse { recorded }))
    }

    async fn record_window_closing(
        &self,
        request: Request<pb::RecordWindowClosingRequest>,
    ) -> Result<Response<pb::RecordWindowClosingResponse>, Status> {
        let r = request.into_inner();
        if r.business_phone_number_id.is_empty() {
            return Err(Error::invalid("business_phone_number_id", "required").into());
        }
        if r.customer_id.is_empty() {
            return Err(Error::invalid("customer_id", "required").into());
        }
        let recorded = self
            .queue
            .record_window_closing(
                &r.business_phone_number_id,
                &r.customer_id,
                message_time(r.expire_time)?,
            )
            .await?;
        Ok(Response::new(pb::RecordWindowClosingResponse { recorded }))
    }

    async fn list_attentions(
        &self,
        request: Request<pb::ListAttentionsRequest>,
    ) -> Result<Response<pb::ListAttentionsResponse>, Status> {
        let r = vouched(request)?;
        let attentions = self.queue.list(&r.agent_id, &r.query).await?;
        let count = |state: pb::AttentionState| {
            u32::try_from(attentions.iter().filter(|a| a.state() == state).count())
                .unwrap_or(u32::MAX)
        };
        Ok(Response::new(pb::ListAttentionsResponse {
            open_count: count(pb::AttentionState::Open),
            queued_count: count(pb::AttentionState::Queued) + count(pb::AttentionState::Offered),
            attentions,
        }))
    }

    async fn get_attention(
        &self,
        request: Request<pb::GetAttentionRequest>,
    ) -> Result<Response<pb::GetAttentionResponse>, Status> {
        let r = vouched(request)?;
        let access = Access::try_from(r.access)?;
        let attention = self.queue.get(&r.attention_id, &r.agent_id, access).await?;
        Ok(Response::new(pb::GetAttentionResponse {
            attention: Some(attention),
        }))
    }

    async fn open_attention(
        &self,
        request: Request<pb::OpenAttentionRequest>,
    ) -> Result<Response<pb::OpenAttentionResponse>, Status> {
        let r = vouched(request)?;
        let attention = self.queue.open(&r.attention_id, &r.agent_id).await?;
        Ok(Response::new(pb::OpenAttentionResponse {
            attention: Some(attention),
        }))
    }

    async fn finish_attention(
        &self,
        request: Request<pb::FinishAttentionRequest>,
    ) -> Result<Response<pb::FinishAttentionResponse>, Status> {
        let r = vouched(request)?;
        let attention = self.queue.finish(&r.attention_id, &r.agent_id).await?;
        Ok(Response::new(pb::FinishAttentionResponse {
            attention: Some(attention),
        }))
    }

    async fn start_outbound_attention(
        &self,
        request: Request<pb::StartOutboundAttentionRequest>,
    ) -> Result<Response<pb::StartOutboundAttentionResponse>, Status> {
        let r = vouched(request)?;
        let customer = r
            .customer
            .ok_or_else(|| Error::invalid("customer", "required"))?;
        let (attention, created) = self
            .queue
            .start_outbound(
                &r.agent_id,
                &r.campaign_id,
                &r.business_phone_number_id,
                customer,
                &r.idempotency_key,
            )
            .await?;
        Ok(Response::new(pb::StartOutboundAttentionResponse {
            attention: Some(attention),
            created,
        }))
    }

    async fn create_dialer(
        &self,
        request: Request<pb::CreateDialerRequest>,
    ) -> Result<Response<pb::CreateDialerResponse>, Status> {
        let r = vouched(request)?;
        let dialer = self.queue.create_dialer(&r.actor_id, r.dialer).await?;
        Ok(Response::new(pb::CreateDialerResponse {
            dialer: Some(dialer),
        }))
    }

    async fn add_dialer_contacts(
        &self,
        request: Request<pb::AddDialerContactsRequest>,
    ) -> Result<Response<pb::AddDialerContactsResponse>, Status> {
        let r = vouched(request)?;
        let added = self
            .queue
            .add_dialer_contacts(&r.actor_id, &r.dialer_id, r.first_line, &r.csv)
            .await?;
        Ok(Response::new(added))
    }

    async fn get_dialer(
        &self,
        request: Request<pb::GetDialerRequest>,
    ) -> Result<Response<pb::GetDialerResponse>, Status> {
        let r = vouched(request)?;
        let dialer = self.queue.dialer(&r.actor_id, &r.dialer_id).await?;
        Ok(Response::new(pb::GetDialerResponse {
            dialer: Some(dialer),
        }))
    }

    async fn set_dialer_state(
        &self,
        request: Request<pb::SetDialerStateRequest>,
    ) -> Result<Response<pb::SetDialerStateResponse>, Status> {
        let r = vouched(request)?;
        let dialer = self
            .queue
            .set_dialer_state(&r.actor_id, &r.dialer_id, r.state())
            .await?;
        Ok(Response::new(pb::SetDialerStateResponse {
            dialer: Some(dialer),
        }))
    }

    async fn list_dialers(
        &self,
        request: Request<pb::ListDialersRequest>,
    ) -> Result<Response<pb::ListDialersResponse>, Status> {
        let r = vouched(request)?;
        let dialers = self.queue.dialers(&r.actor_id, &r.campaign_id).await?;
        Ok(Response::new(pb::ListDialersResponse { dialers }))
    }

    async fn list_dialer_contacts(
        &self,
        request: Request<pb::ListDialerContactsRequest>,
    ) -> Result<Response<pb::ListDialerContactsResponse>, Status> {
        let r = vouched(request)?;
        let actor = r.actor_id.clone();
        let (contacts, next_page_token) = self.queue.dialer_contacts(&actor, r).await?;
        Ok(Response::new(pb::ListDialerContactsResponse {
            contacts,
            next_page_token,
        }))
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::GetAgentResponse>, Status> {
        let agent = self.queue.agent(&vouched(request)?.agent_id).await?;
        Ok(Response::new(pb::GetAgentResponse { agent: Some(agent) }))
    }

    async fn save_campaign(
        &self,
        request: Request<pb::SaveCampaignRequest>,
    ) -> Result<Response<pb::SaveCampaignResponse>, Status> {
        let r = vouched(request)?;
        let settings = CampaignSettings::try_from(r.campaign)?;
        let campaign = self.queue.save_campaign(&r.actor_id, settings).await?;
        Ok(Response::new(pb::SaveCampaignResponse {
            campaign: Some(campaign.to_proto()),
        }))
    }

    async fn deactivate_campaign(
        &self,
        request: Request<pb::DeactivateCampaignRequest>,
    ) -> Result<Response<pb::DeactivateCampaignResponse>, Status> {
        let r = vouched(request)?;
        let campaign = self
            .queue
            .deactivate_campaign(&r.actor_id, &r.campaign_id)
            .await?;
        Ok(Response::new(pb::DeactivateCampaignResponse {
            campaign: Some(campaign.to_proto()),
        }))
    }

    async fn save_business_number(
        &self,
        request: Request<pb::SaveBusinessNumberRequest>,
    ) -> Result<Response<pb::SaveBusinessNumberResponse>, Status> {
        let r = vouched(request)?;
        let settings = NumberSettings::try_from(r.business_number)?;
        let number = self
            .queue
            .save_business_number(&r.actor_id, settings)
            .await?;
        Ok(Response::new(pb::SaveBusinessNumberResponse {
            business_number: Some(number.to_proto()),
        }))
    }

    async fn deactivate_business_number(
        &self,
        request: Request<pb::DeactivateBusinessNumberRequest>,
    ) -> Result<Response<pb::DeactivateBusinessNumberResponse>, Status> {
        let r = vouched(request)?;
        let number = self
            .queue
            .deactivate_business_number(&r.actor_id, &r.phone_number_id)
            .await?;
        Ok(Response::new(pb::DeactivateBusinessNumberResponse {
            business_number: Some(number.to_proto()),
        }))
    }

    async fn save_agent(
        &self,
        request: Request<pb::SaveAgentRequest>,
    ) -> Result<Response<pb::SaveAgentResponse>, Status> {
        let r = vouched(request)?;
        let settings = AgentSettings::try_from(r.agent)?;
        let agent = self.queue.save_agent(&r.actor_id, settings).await?;
        Ok(Response::new(pb::SaveAgentResponse {
            agent: Some(agent.to_proto()),
        }))
    }

    async fn save_supervisor(
        &self,
        request: Request<pb::SaveSupervisorRequest>,
    ) -> Result<Response<pb::SaveSupervisorResponse>, Status> {
        let r = vouched(request)?;
        let settings = SupervisorSettings::try_from(r.supervisor)?;
        let supervisor = self.queue.save_supervisor(&r.actor_id, settings).await?;
        Ok(Response::new(pb::SaveSupervisorResponse {
            supervisor: Some(supervisor.to_proto()),
        }))
    }

    async fn deactivate_agent(
        &self,
        request: Request<pb::DeactivateAgentRequest>,
    ) -> Result<Response<pb::DeactivateAgentResponse>, Status> {
        let r = vouched(request)?;
        let agent = self
            .queue
            .deactivate_agent(&r.actor_id, &r.agent_id)
            .await?;
        Ok(Response::new(pb::DeactivateAgentResponse {
            agent: Some(agent.to_proto()),
        }))
    }

    async fn deactivate_supervisor(
        &self,
        request: Request<pb::DeactivateSupervisorRequest>,
    ) -> Result<Response<pb::DeactivateSupervisorResponse>, Status> {
        let r = vouched(request)?;
        self.queue
            .deactivate_supervisor(&r.actor_id, &r.supervisor_id)
            .await?;
        Ok(Response::new(pb::DeactivateSupervisorResponse {}))
    }

    async fn set_vip_customer(
        &self,
        request: Request<pb::SetVipCustomerRequest>,
    ) -> Result<Response<pb::SetVipCustomerResponse>, Status> {
        let r = vouched(request)?;
        let mark = VipMark::new(r.campaign_id, r.customer_id, r.vip)?;
        self.queue.set_vip(&r.actor_id, mark).await?;
        Ok(Response::new(pb::SetVipCustomerResponse {}))
    }

    async fn set_agent_presence(
        &self,
        request: Request<pb::SetAgentPresenceRequest>,
    ) -> Result<Response<pb::SetAgentPresenceResponse>, Status> {
        let r = vouched(request)?;
        let presence = Presence::from_proto(r.state, r.pause_reason)?;
        let presence = self.queue.set_presence(&r.agent_id, presence).await?;
        Ok(Response::new(pb::SetAgentPresenceResponse {
            presence: Some(presence),
        }))
    }

    async fn get_agent_presence(
        &self,
        request: Request<pb::GetAgentPresenceRequest>,
    ) -> Result<Response<pb::GetAgentPresenceResponse>, Status> {
        let presence = self.queue.presence(&vouched(request)?.agent_id).await?;
        Ok(Response::new(pb::GetAgentPresenceResponse {
            presence: Some(presence),
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let r = request.into_inner();
        let (events, head_position) = self.queue.events(r.after_position, r.limit).await?;
        Ok(Response::new(pb::ListEventsResponse {
            events,
            head_position,
        }))
    }

    async fn purge_attentions(
        &self,
        request: Request<pb::PurgeAttentionsRequest>,
    ) -> Result<Response<pb::PurgeAttentionsResponse>, Status> {
        let r = request.into_inner();
        let purged = self.queue.purge(&r.attention_ids, r.erase_customer).await?;
        Ok(Response::new(pb::PurgeAttentionsResponse {
            attentions: u32::try_from(purged).unwrap_or(u32::MAX),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let presence = self.queue.heartbeat(&vouched(request)?.agent_id).await?;
        Ok(Response::new(pb::HeartbeatResponse {
            presence: Some(presence),
        }))
    }

    async fn decline_offer(
        &self,
        request: Request<pb::DeclineOfferRequest>,
    ) -> Result<Response<pb::DeclineOfferResponse>, Status> {
        let r = vouched(request)?;
        self.queue.decline(&r.attention_id, &r.agent_id).await?;
        Ok(Response::new(pb::DeclineOfferResponse {}))
    }

    async fn transfer_attention(
        &self,
        request: Request<pb::TransferAttentionRequest>,
    ) -> Result<Response<pb::TransferAttentionResponse>, Status> {
        let r = vouched(request)?;
        let target = Target::from_proto(r.target)?;
        let attention = self
            .queue
            .transfer(&r.attention_id, &r.agent_id, target, &r.note)
            .await?;
        Ok(Response::new(pb::TransferAttentionResponse {
            attention: Some(attention),
        }))
    }

    async fn set_attention_tag(
        &self,
        request: Request<pb::SetAttentionTagRequest>,
    ) -> Result<Response<pb::SetAttentionTagResponse>, Status> {
        let r = vouched(request)?;
        let attention = self
            .queue
            .set_tag(&r.attention_id, &r.agent_id, &r.tag)
            .await?;
        Ok(Response::new(pb::SetAttentionTagResponse {
            attention: Some(attention),
        }))
    }

    async fn get_campaign_snapshot(
        &self,
        request: Request<pb::GetCampaignSnapshotRequest>,
    ) -> Result<Response<pb::GetCampaignSnapshotResponse>, Status> {
        let r = vouched(request)?;
        let snapshot = self.queue.snapshot(&r.actor_id, &r.campaign_id).await?;
        Ok(Response::new(pb::GetCampaignSnapshotResponse {
            snapshot: Some(snapshot),
        }))
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let actor = vouched(request)?.actor_id;
        let (campaigns, business_numbers) = self.queue.list_campaigns(&actor).await?;
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns,
            business_numbers,
        }))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let agents = self.queue.list_agents(&vouched(request)?.actor_id).await?;
        Ok(Response::new(pb::ListAgentsResponse { agents }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let r = vouched(request)?;
        let (entries, next_page_token) = self
            .queue
            .audit_entries(&r.actor_id, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries,
            next_page_token,
        }))
    }
}
