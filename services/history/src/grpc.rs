//! The HistoryService gRPC handlers: parse the request, call [`Records`], map back.

use atenciones_proto::history::v1 as pb;
use pb::history_service_server::HistoryService;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::page::{Cursor, page_size};
use crate::record::{AttentionId, AttentionRecord, CustomerId};
use crate::store::Records;

pub struct HistoryGrpc {
    records: Records,
}

impl HistoryGrpc {
    pub fn new(records: Records) -> Self {
        Self { records }
    }
}

#[tonic::async_trait]
impl HistoryService for HistoryGrpc {
    async fn record_attention(
        &self,
        request: Request<pb::RecordAttentionRequest>,
    ) -> Result<Response<pb::RecordAttentionResponse>, Status> {
        let record = AttentionRecord::try_from(request.into_inner())?;
        let created = self.records.record(record).await?;
        Ok(Response::new(pb::RecordAttentionResponse { created }))
    }

    async fn get_attention_record(
        &self,
        request: Request<pb::GetAttentionRecordRequest>,
    ) -> Result<Response<pb::GetAttentionRecordResponse>, Status> {
        let id = AttentionId::parse(request.into_inner().attention_id, "attention_id")
            .map_err(|v| Error::invalid(vec![v]))?;
        let record = self.records.get(&id).await?;
        Ok(Response::new(pb::GetAttentionRecordResponse {
            record: Some(record.try_into()?),
        }))
    }

    async fn list_customer_attentions(
        &self,
        request: Request<pb::ListCustomerAttentionsRequest>,
    ) -> Result<Response<pb::ListCustomerAttentionsResponse>, Status> {
        let request = request.into_inner();
        let (customer, after) = match (
            CustomerId::parse(request.customer_id, "customer_id"),
            Cursor::decode(&request.page_token),
        ) {
            (Ok(customer), Ok(after)) => (customer, after),
            (customer, after) => {
                let violations = [customer.err(), after.err()]
                    .into_iter()
                    .flatten()
                    .collect();
                return Err(Error::invalid(violations).into());
            }
        };
        let page = self
            .records
            .list_for_customer(
                &customer,
                &request.campaign_ids,
                page_size(request.page_size),
                after,
            )
            .await?;
        let records = page
            .records
            .into_iter()
            .map(pb::AttentionRecord::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListCustomerAttentionsResponse {
            records,
            next_page_token: page.next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }
}
