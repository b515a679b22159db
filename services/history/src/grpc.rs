//! The HistoryService gRPC handlers: parse the request, call [`Records`], map back.

use atenciones_proto::history::v1 as pb;
use pb::history_service_server::HistoryService;
use tonic::{Request, Response, Status};

use crate::convert::time;
use crate::error::Error;
use crate::page::{Cursor, page_size};
use crate::record::{AttentionId, AttentionRecord, CustomerId, Direction, Violation};
use crate::search::{Search, terms};
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

    async fn search_attentions(
        &self,
        request: Request<pb::SearchAttentionsRequest>,
    ) -> Result<Response<pb::SearchAttentionsResponse>, Status> {
        let request = request.into_inner();
        let filter = request.filter.unwrap_or_default();
        let mut violations = Vec::new();
        if request.scope_campaign_ids.is_empty() {
            violations.push(Violation::new(
                "scope_campaign_ids",
                "Indique las campañas que puede ver quien busca.",
            ));
        }
        let mut date = |value, field| {
            time(value, field).unwrap_or_else(|violation| {
                violations.push(violation);
                None
            })
        };
        let finished_from = date(filter.finished_from, "filter.finished_from");
        let finished_to = date(filter.finished_to, "filter.finished_to");
        let after = Cursor::decode(&request.page_token).unwrap_or_else(|violation| {
            violations.push(violation);
            None
        });
        if !violations.is_empty() {
            return Err(Error::invalid(violations).into());
        }
        // Asked-for campaigns only within what the caller may see.
        let campaign_ids = if filter.campaign_ids.is_empty() {
            request.scope_campaign_ids
        } else {
            filter
                .campaign_ids
                .into_iter()
                .filter(|c| request.scope_campaign_ids.contains(c))
                .collect()
        };
        let search = Search {
            terms: terms(&filter.query),
            campaign_ids,
            agent_id: Some(filter.agent_id).filter(|a| !a.is_empty()),
            direction: Direction::from_proto(filter.direction),
            tag: Some(filter.tag).filter(|t| !t.is_empty()),
            disposition: Some(filter.disposition).filter(|d| !d.is_empty()),
            finished_from,
            finished_to,
        };
        let page = self
            .records
            .search(&search, page_size(request.page_size), after)
            .await?;
        let records = page
            .records
            .into_iter()
            .map(pb::AttentionRecord::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::SearchAttentionsResponse {
            records,
            next_page_token: page.next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }
}
