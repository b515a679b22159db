//! The HistoryService gRPC handlers: parse the request, call [`Records`], map back.

use atenciones_proto::history::v1 as pb;
use pb::history_service_server::HistoryService;
use tonic::{Request, Response, Status};

use atenciones_runtime::caller::vouched;

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::convert::{events, report_filter, time};
use crate::error::Error;
use crate::page::{Cursor, page_size};
use crate::privacy::Erasure;
use crate::record::{AttentionId, AttentionRecord, CustomerId, Direction, Violation};
use crate::report::{self, csv_lines};
use crate::search::{Search, terms};
use crate::store::Records;

/// Chunks of an export waiting for a slow client; the export reads the
/// database no faster than the client takes them.
const EXPORT_BUFFER: usize = 2;

pub struct HistoryGrpc {
    records: Records,
    /// Wakes the privacy sweep, which has messaging purge an erasure's messages.
    sweep_now: Arc<Notify>,
}

impl HistoryGrpc {
    pub fn new(records: Records, sweep_now: Arc<Notify>) -> Self {
        Self { records, sweep_now }
    }
}

/// Writes the export's CSV into `chunks`, a page at a time; stops quietly
/// when the client has gone.
async fn export(
    records: &Records,
    filter: &report::Filter,
    layout: pb::ReportLayout,
    chunks: &mpsc::Sender<Result<pb::ExportReportResponse, Status>>,
) -> Result<(), Error> {
    let send = |csv: Vec<u8>| chunks.send(Ok(pb::ExportReportResponse { csv }));
    if layout != pb::ReportLayout::Attentions {
        let rows = records.report(filter).await?;
        let _ = send(csv_lines::summary(&rows, &report::total(&rows))).await;
        return Ok(());
    }
    if send(csv_lines::attention_header()).await.is_err() {
        return Ok(());
    }
    let mut after = None;
    loop {
        let page = records.report_attentions(filter, after).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some((last.created_at, last.attention_id.clone()));
        let full = page.len() as u64 == report::EXPORT_PAGE;
        if send(csv_lines::attentions(&page)).await.is_err() || !full {
            return Ok(());
        }
    }
}

#[tonic::async_trait]
impl HistoryService for HistoryGrpc {
    type ExportReportStream = ReceiverStream<Result<pb::ExportReportResponse, Status>>;

    async fn record_attention_events(
        &self,
        request: Request<pb::RecordAttentionEventsRequest>,
    ) -> Result<Response<pb::RecordAttentionEventsResponse>, Status> {
        let recorded = self
            .records
            .record_events(events(request.into_inner())?)
            .await?;
        Ok(Response::new(pb::RecordAttentionEventsResponse {
            recorded,
        }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let request = request.into_inner();
        let filter = report_filter(request.filter, request.scope_campaign_ids)?;
        let rows = self.records.report(&filter).await?;
        Ok(Response::new(pb::GetReportResponse {
            total: Some((&report::total(&rows)).into()),
            rows: rows.iter().map(Into::into).collect(),
        }))
    }

    async fn export_report(
        &self,
        request: Request<pb::ExportReportRequest>,
    ) -> Result<Response<Self::ExportReportStream>, Status> {
        let request = request.into_inner();
        let layout = request.layout();
        let filter = report_filter(request.filter, request.scope_campaign_ids)?;
        let records = self.records.clone();
        let (chunks, stream) = mpsc::channel(EXPORT_BUFFER);
        tokio::spawn(async move {
            if let Err(error) = export(&records, &filter, layout, &chunks).await {
                let _ = chunks.send(Err(error.into())).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn set_retention(
        &self,
        request: Request<pb::SetRetentionRequest>,
    ) -> Result<Response<pb::SetRetentionResponse>, Status> {
        let request = request.into_inner();
        self.records
            .set_retention(&request.campaign_id, request.days)
            .await?;
        Ok(Response::new(pb::SetRetentionResponse {}))
    }

    async fn list_retentions(
        &self,
        request: Request<pb::ListRetentionsRequest>,
    ) -> Result<Response<pb::ListRetentionsResponse>, Status> {
        let retentions = self
            .records
            .retentions(&request.into_inner().campaign_ids)
            .await?
            .into_iter()
            .map(|r| pb::Retention {
                campaign_id: r.campaign_id,
                days: u32::try_from(r.days).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListRetentionsResponse { retentions }))
    }

    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        let r = vouched(request)?;
        let erasure = Erasure::parse(r.customer_id, r.actor, r.reason)?;
        let (erasure_id, erased) = self.records.erase_customer(erasure).await?;
        self.sweep_now.notify_one();
        Ok(Response::new(pb::EraseCustomerResponse {
            erased_records: u32::try_from(erased).unwrap_or(u32::MAX),
            erasure_id,
        }))
    }
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
