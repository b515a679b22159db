//! Full-text search over finished attentions. Each record gets one document
//! (customer name and numbers, campaign, every message text, the form's
//! labels and values) normalized here — lowercase, accents removed — and the
//! query is normalized the same way, so both databases answer alike:
//! `envio` finds `envío`, `JOSE` finds `José`. Matching is by whole words,
//! every word of the query must appear.

use atenciones_domain::escape_like;
use atenciones_proto::form::v1::Submission;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QuerySelect, Statement,
};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::entity::attention_record;
use crate::error::Error;
use crate::page::Cursor;
use crate::record::{AttentionId, AttentionRecord, Direction};
use crate::store::{Page, Records};

/// Most words of a query that are matched; the rest are ignored.
const MAX_TERMS: usize = 16;

/// Lowercase, without accents (NFD, combining marks dropped).
pub fn normalize(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of a query, normalized: runs of letters and digits.
pub fn terms(query: &str) -> Vec<String> {
    normalize(query)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(MAX_TERMS)
        .map(str::to_owned)
        .collect()
}

/// The searchable text of a record, with `form`, its decoded submission.
pub fn document(record: &AttentionRecord, form: Option<&Submission>) -> String {
    let mut parts = vec![
        record.customer.name.clone(),
        record.customer.wa_id.clone(),
        record.customer.id.as_str().to_owned(),
        record.campaign_name.clone(),
        record.campaign_id.clone(),
        record.tag.clone(),
    ];
    parts.extend(record.transcript.iter().map(|m| m.text.clone()));
    for answer in form.iter().flat_map(|f| &f.answers) {
        parts.push(answer.label.clone());
        parts.push(answer.display_value.clone());
    }
    normalize(&parts.join("\n"))
}

/// Stores the record's document in the search index (inside the record's
/// transaction).
pub async fn index(
    txn: &impl ConnectionTrait,
    attention_id: &str,
    document: String,
) -> Result<(), sea_orm::DbErr> {
    let insert = Query::insert()
        .into_table(SEARCH_TABLE)
        .columns(["attention_id", "document"])
        .values_panic([attention_id.into(), document.into()])
        .to_owned();
    txn.execute(&insert).await.map(|_| ())
}

/// Replaces the record's document (after retention or erasure removed what
/// it was built from).
pub async fn reindex(
    txn: &impl ConnectionTrait,
    attention_id: &str,
    document: String,
) -> Result<(), sea_orm::DbErr> {
    let delete = Query::delete()
        .from_table(SEARCH_TABLE)
        .and_where(Expr::col("attention_id").eq(attention_id))
        .to_owned();
    txn.execute(&delete).await?;
    index(txn, attention_id, document).await
}

/// The search index: a table with a GIN index on PostgreSQL, an FTS5 table
/// on SQLite (see the migration).
const SEARCH_TABLE: &str = "history_search";

/// Matches above which PostgreSQL search walks records instead of fetching
/// them by id: measured in benches/history_search.rs.
pub const PROBE_CAP: usize = 5_000;

/// What a search asks for; every filter is optional except the campaigns,
/// which the caller always scopes (an empty list finds nothing).
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub terms: Vec<String>,
    pub campaign_ids: Vec<String>,
    pub agent_id: Option<String>,
    pub direction: Option<Direction>,
    pub tag: Option<String>,
    /// A disposition path prefix, values joined by `/`.
    pub disposition: Option<String>,
    pub finished_from: Option<DateTime<Utc>>,
    pub finished_to: Option<DateTime<Utc>>,
}

impl Records {
    /// Records matching `search`, most recently finished first, a page at a
    /// time (keyset pages: records arriving meanwhile neither repeat nor
    /// shift the pages already read).
    pub async fn search(
        &self,
        search: &Search,
        page_size: u64,
        after: Option<Cursor>,
    ) -> Result<Page, Error> {
        use attention_record::Column;
        let mut query = attention_record::Entity::find()
            .filter(Column::CampaignId.is_in(search.campaign_ids.iter().map(String::as_str)));
        if !search.terms.is_empty() {
            query = query.filter(self.matching(&search.terms).await?);
        }
        if let Some(agent) = &search.agent_id {
            query = query.filter(Column::AgentId.eq(agent.as_str()));
        }
        if let Some(tag) = &search.tag {
            query = query.filter(Column::Tag.eq(tag.as_str()));
        }
        if let Some(disposition) = &search.disposition {
            let below = LikeExpr::new(format!("{}/%", escape_like(disposition))).escape('\\');
            query = query.filter(
                Condition::any()
                    .add(Column::Disposition.eq(disposition.as_str()))
                    .add(Expr::col(Column::Disposition).like(below)),
            );
        }
        if let Some(direction) = search.direction {
            query = query.filter(Column::Direction.eq(direction.as_str()));
        }
        if let Some(from) = search.finished_from {
            query = query.filter(Column::FinishedAt.gte(from));
        }
        if let Some(to) = search.finished_to {
            query = query.filter(Column::FinishedAt.lt(to));
        }
        self.page(query, page_size, after).await
    }

    /// Indexes every record that has no search document yet (records stored
    /// before search existed); returns how many.
    pub async fn index_unindexed(&self) -> Result<usize, Error> {
        let missing: Vec<String> = attention_record::Entity::find()
            .select_only()
            .column(attention_record::Column::AttentionId)
            .filter(Expr::cust(
                "attention_id NOT IN (SELECT attention_id FROM history_search)",
            ))
            .into_tuple()
            .all(self.connection())
            .await?;
        for id in &missing {
            let record = self
                .get(
                    &AttentionId::parse(id.clone(), "attention_id").map_err(|_| {
                        Error::Corrupt(format!("record with a blank attention id: {id:?}"))
                    })?,
                )
                .await?;
            index(
                self.connection(),
                id,
                document(&record, record.submission().as_ref()),
            )
            .await?;
        }
        Ok(missing.len())
    }

    /// Records whose document holds every term, through the database's
    /// index. Terms are letters and digits only, so they cannot carry
    /// operators of either query language.
    ///
    /// On PostgreSQL no single plan suits every query. A rare word is best
    /// found through the GIN index first: its records are then fetched by id
    /// and sorted. A common one is best found by walking records newest first
    /// and stopping after a page (sorting tens of thousands of matches takes
    /// hundreds of milliseconds). A capped look-up through the index tells
    /// which one this query is, and gives the ids when they are few.
    async fn matching(&self, terms: &[String]) -> Result<Condition, Error> {
        let few = self.probe_cap;
        let db = self.connection();
        if db.get_database_backend() != DatabaseBackend::Postgres {
            let query = terms
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(" ");
            let sql = "attention_id IN (SELECT attention_id FROM history_search \
                       WHERE history_search MATCH ?)";
            return Ok(Condition::all().add(Expr::cust_with_values(sql, [query])));
        }
        let query = terms.join(" ");
        let probe = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT attention_id FROM history_search \
             WHERE to_tsvector('simple', document) @@ plainto_tsquery('simple', $1) LIMIT $2",
            [
                query.clone().into(),
                i64::try_from(few).unwrap_or(i64::MAX).into(),
            ],
        );
        let ids: Vec<String> = db
            .query_all_raw(probe)
            .await?
            .iter()
            .filter_map(|row| row.try_get_by_index(0).ok())
            .collect();
        if ids.len() < few {
            return Ok(Condition::all().add(attention_record::Column::AttentionId.is_in(ids)));
        }
        // sea-query numbers `$1` among the query's other values.
        let sql = "EXISTS (SELECT 1 FROM history_search s \
                   WHERE s.attention_id = attention_records.attention_id \
                   AND to_tsvector('simple', s.document) @@ plainto_tsquery('simple', $1))";
        Ok(Condition::all().add(Expr::cust_with_values(sql, [query])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atenciones_proto::common::v1 as common;
    use atenciones_proto::history::v1 as pb;
    use atenciones_proto::messaging::v1 as messaging;
    use atenciones_test_support::{TestDatabase, on_both_databases};

    async fn records(db: &TestDatabase) -> Records {
        let settings = atenciones_runtime::Settings::load(None).expect("settings");
        let connection =
            atenciones_runtime::database::connect(&db.url("history"), &settings.database)
                .await
                .expect("connect");
        atenciones_runtime::database::prepare::<atenciones_migrations::history::Migrator>(
            &connection,
            true,
        )
        .await
        .expect("migrate");
        Records::new(connection)
    }

    fn record(n: i64, text: &str) -> AttentionRecord {
        AttentionRecord::try_from(pb::RecordAttentionRequest {
            record: Some(pb::AttentionRecord {
                attention_id: format!("s-{n:02}"),
                campaign_id: "ventas".into(),
                customer: Some(common::Customer {
                    id: format!("c{n}"),
                    ..Default::default()
                }),
                finish_time: Some(prost_types::Timestamp {
                    seconds: 1_764_000_000 + n,
                    nanos: 0,
                }),
                transcript: vec![messaging::Message {
                    id: format!("m{n}"),
                    text: text.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .expect("a valid record")
    }

    async fn every_page(records: &Records, search: &Search) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = records.search(search, 2, after).await.expect("search");
            ids.extend(
                page.records
                    .into_iter()
                    .map(|r| r.attention_id.into_string()),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => return ids,
            }
        }
    }

    /// On PostgreSQL a query with more matches than the cap takes the other
    /// plan (walking records); both must give the same pages.
    async fn both_plans_find_the_same_pages(db: TestDatabase) {
        let mut records = records(&db).await;
        for n in 0..12 {
            let text = if n % 3 == 0 {
                "Envío demorado"
            } else {
                "Consulta"
            };
            assert!(records.record(record(n, text)).await.expect("stored"));
        }
        let search = Search {
            terms: terms("envio"),
            campaign_ids: vec!["ventas".into()],
            ..Search::default()
        };
        let by_id = every_page(&records, &search).await;
        assert_eq!(by_id, ["s-09", "s-06", "s-03", "s-00"]);
        records.probe_cap = 2;
        assert_eq!(every_page(&records, &search).await, by_id);
    }

    on_both_databases!(both_plans_find_the_same_pages);
}
