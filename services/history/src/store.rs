//! The history service's use cases over its tables.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, TransactionTrait, TryInsertResult,
};

use crate::entity::{attention_record, transcript_message};
use crate::error::Error;
use crate::page::Cursor;
use crate::record::{
    AttentionId, AttentionRecord, Customer, CustomerId, Direction, MessageDirection, MessageError,
    MessageStatus, TranscriptMessage, UNSPECIFIED, truncate_to_micros,
};
use crate::search;

/// Rows per INSERT: well under SQLite's and PostgreSQL's bound-parameter limits.
const TRANSCRIPT_CHUNK: usize = 500;

#[derive(Clone)]
pub struct Records {
    db: DatabaseConnection,
    /// PostgreSQL search: a query with fewer matches than this is fetched by
    /// id, one with more by walking records newest first (see `search`).
    pub(crate) probe_cap: usize,
}

/// One page of a customer's records.
pub struct Page {
    pub records: Vec<AttentionRecord>,
    pub next: Option<Cursor>,
}

impl Records {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            probe_cap: crate::search::PROBE_CAP,
        }
    }

    /// Stores a finished attention once. The record row is inserted with ON
    /// CONFLICT DO NOTHING and the transcript only by the call that inserted it,
    /// all in one transaction: a repeated or concurrent call changes nothing and
    /// returns false, and no record is ever seen without its transcript.
    pub async fn record(&self, record: AttentionRecord) -> Result<bool, Error> {
        let attention_id = record.attention_id.as_str().to_owned();
        let form = record.submission();
        let document = search::document(&record, form.as_ref());
        // The form's disposition path joined by `/`; empty when none.
        let disposition = form.map(|f| f.disposition.join("/")).unwrap_or_default();
        let row = attention_record::ActiveModel {
            attention_id: Set(attention_id.clone()),
            campaign_id: Set(record.campaign_id),
            campaign_name: Set(record.campaign_name),
            business_phone_number_id: Set(record.business_phone_number_id),
            customer_id: Set(record.customer.id.as_str().to_owned()),
            customer_wa_id: Set(record.customer.wa_id),
            customer_user_id: Set(record.customer.user_id),
            customer_name: Set(record.customer.name),
            direction: Set(record
                .direction
                .map_or(UNSPECIFIED, Direction::as_str)
                .to_owned()),
            agent_id: Set(record.agent_id),
            created_at: Set(truncate_to_micros(record.created_at)),
            opened_at: Set(record.opened_at.map(truncate_to_micros)),
            finished_at: Set(truncate_to_micros(record.finished_at)),
            message_count: Set(i32::try_from(record.transcript.len()).unwrap_or(i32::MAX)),
            form: Set(record.form),
            recorded_at: Set(truncate_to_micros(Utc::now())),
            tag: Set(record.tag),
            agent_ids: Set(serde_json::to_value(&record.agent_ids).ok()),
            transfers: Set(serde_json::to_value(&record.transfers).ok()),
            first_response_at: Set(record.first_response_at.map(truncate_to_micros)),
            disposition: Set(disposition),
            transcript_deleted_at: Set(None),
            erased_at: Set(None),
            purged_at: Set(None),
        };
        let messages: Vec<_> = record
            .transcript
            .into_iter()
            .enumerate()
            .map(|(position, message)| message_row(&attention_id, position, message))
            .collect::<Result<_, _>>()?;
        // Everything below uses `txn` only: SQLite has one pooled connection.
        let txn = self.db.begin().await?;
        let inserted = attention_record::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await?;
        let created = matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0);
        if created {
            search::index(&txn, &attention_id, document).await?;
            let mut messages = messages.into_iter().peekable();
            while messages.peek().is_some() {
                let chunk: Vec<_> = messages.by_ref().take(TRANSCRIPT_CHUNK).collect();
                transcript_message::Entity::insert_many(chunk)
                    .exec_without_returning(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(created)
    }

    /// A record with its transcript, oldest message first.
    pub async fn get(&self, attention_id: &AttentionId) -> Result<AttentionRecord, Error> {
        // The record and its transcript as of one moment: never a record
        // whose transcript a retention sweep deleted in between.
        let snapshot = atenciones_runtime::database::snapshot(&self.db).await?;
        let row = attention_record::Entity::find_by_id(attention_id.as_str())
            .one(&snapshot)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "No hay registro de la atención {}.",
                    attention_id.as_str()
                ))
            })?;
        let messages = transcript_message::Entity::find()
            .filter(transcript_message::Column::AttentionId.eq(attention_id.as_str()))
            .order_by_asc(transcript_message::Column::Position)
            .all(&snapshot)
            .await?;
        snapshot.commit().await?;
        let mut record = record_from_row(row)?;
        record.transcript = messages.into_iter().map(message_from_row).collect();
        Ok(record)
    }

    /// A customer's records, most recently finished first, without transcripts.
    pub async fn list_for_customer(
        &self,
        customer: &CustomerId,
        campaign_ids: &[String],
        page_size: u64,
        after: Option<Cursor>,
    ) -> Result<Page, Error> {
        use attention_record::Column;
        let mut query =
            attention_record::Entity::find().filter(Column::CustomerId.eq(customer.as_str()));
        if !campaign_ids.is_empty() {
            query = query.filter(Column::CampaignId.is_in(campaign_ids.iter().map(String::as_str)));
        }
        self.page(query, page_size, after).await
    }

    /// One page of `query`'s records, most recently finished first, after
    /// `after`. Keyset rather than offset, so records recorded meanwhile
    /// neither repeat nor get skipped.
    pub(crate) async fn page(
        &self,
        mut query: Select<attention_record::Entity>,
        page_size: u64,
        after: Option<Cursor>,
    ) -> Result<Page, Error> {
        use attention_record::Column;
        if let Some(after) = after {
            query = query.filter(
                Condition::any()
                    .add(Column::FinishedAt.lt(after.finished_at))
                    .add(
                        Condition::all()
                            .add(Column::FinishedAt.eq(after.finished_at))
                            .add(Column::AttentionId.lt(after.attention_id)),
                    ),
            );
        }
        // One more than asked tells whether another page follows.
        let mut rows = query
            .order_by_desc(Column::FinishedAt)
            .order_by_desc(Column::AttentionId)
            .limit(page_size + 1)
            .all(&self.db)
            .await?;
        let more = rows.len() as u64 > page_size;
        rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
        let next = more.then(|| rows.last()).flatten().map(|last| Cursor {
            finished_at: last.finished_at,
            attention_id: last.attention_id.clone(),
        });
        let records = rows
            .into_iter()
            .map(record_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Page { records, next })
    }

    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

fn message_row(
    attention_id: &str,
    position: usize,
    message: TranscriptMessage,
) -> Result<transcript_message::ActiveModel, Error> {
    let position = i32::try_from(position)
        .map_err(|_| Error::Corrupt(format!("transcript of {attention_id} is too long")))?;
    let (error_code, error_title, error_detail) = match message.error {
        Some(e) => (Some(e.code), Some(e.title), Some(e.detail)),
        None => (None, None, None),
    };
    Ok(transcript_message::ActiveModel {
        attention_id: Set(attention_id.to_owned()),
        position: Set(position),
        message_id: Set(message.message_id),
        wamid: Set(message.wamid),
        direction: Set(MessageDirection::store(message.direction).to_owned()),
        message_type: Set(message.message_type),
        text: Set(message.text),
        status: Set(MessageStatus::store(message.status).to_owned()),
        error_code: Set(error_code),
        error_title: Set(error_title),
        error_detail: Set(error_detail),
        agent_id: Set(message.agent_id),
        sent_at: Set(message.sent_at.map(truncate_to_micros)),
        content: Set(message.content),
    })
}

pub(crate) fn record_from_row(row: attention_record::Model) -> Result<AttentionRecord, Error> {
    let corrupt = |what: &str| Error::Corrupt(format!("record {}: {what}", row.attention_id));
    let attention_id = AttentionId::parse(row.attention_id.clone(), "attention_id")
        .map_err(|_| corrupt("blank attention id"))?;
    let customer_id = CustomerId::parse(row.customer_id.clone(), "customer_id")
        .map_err(|_| corrupt("blank customer id"))?;
    let message_count =
        u32::try_from(row.message_count).map_err(|_| corrupt("negative message count"))?;
    Ok(AttentionRecord {
        attention_id,
        campaign_id: row.campaign_id,
        campaign_name: row.campaign_name,
        business_phone_number_id: row.business_phone_number_id,
        customer: Customer {
            id: customer_id,
            wa_id: row.customer_wa_id,
            user_id: row.customer_user_id,
            name: row.customer_name,
        },
        direction: Direction::parse(&row.direction),
        agent_id: row.agent_id,
        created_at: row.created_at,
        opened_at: row.opened_at,
        finished_at: row.finished_at,
        message_count,
        form: row.form,
        transcript: Vec::new(),
        tag: row.tag,
        agent_ids: json_list(row.agent_ids),
        transfers: json_list(row.transfers),
        first_response_at: row.first_response_at,
    })
}

/// A JSON list column; empty when unset (records stored before it existed).
fn json_list<T: serde::de::DeserializeOwned>(value: Option<serde_json::Value>) -> Vec<T> {
    value
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn message_from_row(row: transcript_message::Model) -> TranscriptMessage {
    let error = row.error_code.map(|code| MessageError {
        code,
        title: row.error_title.unwrap_or_default(),
        detail: row.error_detail.unwrap_or_default(),
    });
    TranscriptMessage {
        message_id: row.message_id,
        wamid: row.wamid,
        direction: MessageDirection::load(&row.direction),
        message_type: row.message_type,
        text: row.text,
        status: MessageStatus::load(&row.status),
        error,
        agent_id: row.agent_id,
        sent_at: row.sent_at,
        content: row.content,
    }
}
