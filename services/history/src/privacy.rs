//! Privacy: transcripts kept only for their campaign's retention, and one
//! customer's data erased on request. Both leave the record itself (campaign,
//! agents, times, counts, disposition) and the activity rows reports count
//! from, so reports keep their numbers. History strips its own copy in one
//! transaction, then has messaging, form and queue purge their copies
//! (messages and media files, drafts and submissions, list previews and the
//! customer on the attention), retrying on every sweep until all confirm.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, TransactionTrait,
};
use sha2::{Digest, Sha256};

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::grpc::Channel;

use crate::entity::{attention_record, campaign_retention, customer_erasure, transcript_message};
use crate::error::Error;
use crate::record::{Customer, CustomerId, Violation};
use crate::search;
use crate::store::{Records, record_from_row};

/// The services that hold the rest of an attention's data: messaging (the
/// messages and files), form (drafts and submissions) and queue (the list
/// preview, transfer notes and the customer on the attention).
#[derive(Clone)]
pub struct Holders {
    pub messaging: MessagingServiceClient<Channel>,
    pub form: FormServiceClient<Channel>,
    pub queue: QueueServiceClient<Channel>,
}

impl Holders {
    /// Each holder purges these attentions; each purge is idempotent, so a
    /// failure halfway is simply repeated.
    async fn purge(&mut self, ids: &[String], erase_customer: bool) -> Result<(), Error> {
        self.messaging
            .purge_attentions(messaging_pb::PurgeAttentionsRequest {
                attention_ids: ids.to_vec(),
                erase_customer,
            })
            .await?;
        self.form
            .purge_attentions(form_pb::PurgeAttentionsRequest {
                attention_ids: ids.to_vec(),
            })
            .await?;
        self.queue
            .purge_attentions(queue_pb::PurgeAttentionsRequest {
                attention_ids: ids.to_vec(),
                erase_customer,
            })
            .await?;
        Ok(())
    }
}

/// Longest retention accepted: a hundred years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Records stripped per transaction by the retention sweep.
const SWEEP_BATCH: u64 = 200;
/// What an erased record says its customer is.
const ERASED: &str = "erased";

/// What leaving a record without its personal content also removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strip {
    /// Transcript and form answers.
    Retention,
    /// Those and the customer's name and numbers.
    Erasure,
}

/// An erasure request: whose data, who asked and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub customer: CustomerId,
    pub actor: String,
    pub reason: String,
}

impl Erasure {
    pub fn parse(customer_id: String, actor: String, reason: String) -> Result<Self, Error> {
        let customer = CustomerId::parse(customer_id, "customer_id");
        let mut violations: Vec<Violation> = customer.clone().err().into_iter().collect();
        if actor.trim().is_empty() {
            violations.push(Violation::new("actor", "Indique quién pide el borrado."));
        }
        if reason.trim().is_empty() {
            violations.push(Violation::new(
                "reason",
                "Indique el motivo o la referencia de la solicitud.",
            ));
        }
        match customer {
            Ok(customer) if violations.is_empty() => Ok(Self {
                customer,
                actor,
                reason,
            }),
            _ => Err(Error::invalid(violations)),
        }
    }
}

/// SHA-256 of a customer id, hex: what an erasure record keeps of it.
pub fn customer_hash(customer: &CustomerId) -> String {
    hex::encode(Sha256::digest(customer.as_str().as_bytes()))
}

impl Records {
    /// Sets a campaign's retention in days; 0 removes it (keep forever).
    pub async fn set_retention(&self, campaign_id: &str, days: u32) -> Result<(), Error> {
        let mut violations = Vec::new();
        if campaign_id.trim().is_empty() {
            violations.push(Violation::new("campaign_id", "Indique la campaña."));
        }
        if days > MAX_RETENTION_DAYS {
            violations.push(Violation::new(
                "days",
                format!("La retención es de {MAX_RETENTION_DAYS} días como máximo."),
            ));
        }
        if !violations.is_empty() {
            return Err(Error::invalid(violations));
        }
        let db = self.connection();
        if days == 0 {
            campaign_retention::Entity::delete_by_id(campaign_id)
                .exec(db)
                .await?;
            return Ok(());
        }
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        campaign_retention::Entity::insert(campaign_retention::ActiveModel {
            campaign_id: Set(campaign_id.to_owned()),
            days: Set(days),
        })
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(campaign_retention::Column::CampaignId)
                .update_column(campaign_retention::Column::Days)
                .to_owned(),
        )
        .exec(db)
        .await?;
        Ok(())
    }

    /// Campaigns with a retention, of `campaign_ids` (all when empty).
    pub async fn retentions(
        &self,
        campaign_ids: &[String],
    ) -> Result<Vec<campaign_retention::Model>, Error> {
        let mut query = campaign_retention::Entity::find();
        if !campaign_ids.is_empty() {
            query = query.filter(
                campaign_retention::Column::CampaignId
                    .is_in(campaign_ids.iter().map(String::as_str)),
            );
        }
        Ok(query.all(self.connection()).await?)
    }

    /// Deletes transcripts and form answers of records finished longer ago
    /// than their campaign's retention; returns how many records it stripped.
    pub async fn sweep_retention(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        use attention_record::Column;
        let mut stripped = 0;
        for retention in self.retentions(&[]).await? {
            let cutoff = now - TimeDelta::days(i64::from(retention.days));
            loop {
                let txn = self.connection().begin().await?;
                let due = attention_record::Entity::find()
                    .filter(Column::CampaignId.eq(&retention.campaign_id))
                    .filter(Column::FinishedAt.lt(cutoff))
                    .filter(Column::TranscriptDeletedAt.is_null())
                    .limit(SWEEP_BATCH)
                    .all(&txn)
                    .await?;
                let count = due.len();
                strip(&txn, due, Strip::Retention, now).await?;
                txn.commit().await?;
                stripped += count;
                if (count as u64) < SWEEP_BATCH {
                    break;
                }
            }
        }
        Ok(stripped)
    }

    /// Erases a customer's data from every record of theirs and keeps a
    /// record of the erasure, in one transaction. Returns the erasure id and
    /// how many records it erased (0 when already erased).
    pub async fn erase_customer(&self, erasure: Erasure) -> Result<(String, usize), Error> {
        let now = Utc::now();
        let txn = self.connection().begin().await?;
        let records = attention_record::Entity::find()
            .filter(attention_record::Column::CustomerId.eq(erasure.customer.as_str()))
            .all(&txn)
            .await?;
        let count = records.len();
        strip(&txn, records, Strip::Erasure, now).await?;
        let id = uuid::Uuid::new_v4().to_string();
        customer_erasure::Entity::insert(customer_erasure::ActiveModel {
            id: Set(id.clone()),
            customer_hash: Set(customer_hash(&erasure.customer)),
            actor: Set(erasure.actor),
            reason: Set(erasure.reason),
            records: Set(i32::try_from(count).unwrap_or(i32::MAX)),
            erased_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        tracing::info!(erasure = %id, records = count, "customer data erased from history");
        Ok((id, count))
    }
}

impl Records {
    /// Asks the services holding the rest of stripped records' data to purge
    /// it, until all have confirmed every record; returns how many records
    /// were confirmed. A failure leaves the rest for the next sweep.
    pub async fn purge_elsewhere(&self, holders: &mut Holders) -> Result<usize, Error> {
        use attention_record::Column;
        let mut confirmed = 0;
        loop {
            let due = attention_record::Entity::find()
                .filter(Column::TranscriptDeletedAt.is_not_null())
                .filter(Column::PurgedAt.is_null())
                .limit(SWEEP_BATCH)
                .all(self.connection())
                .await?;
            if due.is_empty() {
                return Ok(confirmed);
            }
            let (erased, expired): (Vec<_>, Vec<_>) =
                due.into_iter().partition(|r| r.erased_at.is_some());
            for (records, erase_customer) in [(erased, true), (expired, false)] {
                if records.is_empty() {
                    continue;
                }
                let ids: Vec<String> = records.into_iter().map(|r| r.attention_id).collect();
                holders.purge(&ids, erase_customer).await?;
                attention_record::Entity::update_many()
                    .col_expr(Column::PurgedAt, Expr::value(Utc::now()))
                    .filter(Column::AttentionId.is_in(ids.iter().map(String::as_str)))
                    .exec(self.connection())
                    .await?;
                confirmed += ids.len();
            }
        }
    }
}

/// Removes the personal content of `records` inside `txn`: transcript rows,
/// form answers and, for an erasure, the customer; the search document is
/// rebuilt from what is left.
async fn strip(
    txn: &impl ConnectionTrait,
    records: Vec<attention_record::Model>,
    how: Strip,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    for row in records {
        let id = row.attention_id.clone();
        transcript_message::Entity::delete_many()
            .filter(transcript_message::Column::AttentionId.eq(&id))
            .exec(txn)
            .await?;
        let mut record = record_from_row(row.clone())?;
        record.form = None;
        let mut active = row.into_active_model();
        active.form = Set(None);
        if active.transcript_deleted_at.as_ref().is_none() {
            active.transcript_deleted_at = Set(Some(now));
        }
        if how == Strip::Erasure {
            record.customer = Customer {
                id: CustomerId::parse(ERASED.into(), "customer_id")
                    .map_err(|_| Error::Corrupt("erased customer id".into()))?,
                wa_id: String::new(),
                user_id: String::new(),
                name: String::new(),
            };
            active.customer_id = Set(ERASED.into());
            active.customer_wa_id = Set(String::new());
            active.customer_user_id = Set(String::new());
            active.customer_name = Set(String::new());
            active.erased_at = Set(Some(now));
        }
        active.update(txn).await?;
        search::reindex(txn, &id, search::document(&record, None)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_needs_customer_actor_and_reason() {
        let Err(Error::InvalidArgument { violations, .. }) =
            Erasure::parse(" ".into(), String::new(), String::new())
        else {
            panic!("expected violations");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["customer_id", "actor", "reason"]);
    }

    #[test]
    fn the_erasure_record_keeps_a_hash_not_the_id() {
        let customer = CustomerId::parse("5491155550000".into(), "customer_id").expect("valid");
        let hash = customer_hash(&customer);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains("5491155550000"));
        assert_eq!(hash, customer_hash(&customer), "stable");
    }
}
