//! Reports for supervisors: counts and averages over the activity of
//! attentions started in a date range, grouped by the database, and CSV
//! exports written page by page.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    Select,
};

use crate::entity::attention_activity::{self, Column};
use crate::error::Error;
use crate::store::Records;

/// What a report covers; campaigns already narrowed to the caller's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub start_from: DateTime<Utc>,
    pub start_to: DateTime<Utc>,
    pub campaign_ids: Vec<String>,
    pub agent_ids: Vec<String>,
}

/// One campaign and agent's figures (or every row summed).
#[derive(Debug, Clone, Default, PartialEq, FromQueryResult)]
pub struct Row {
    pub campaign_id: String,
    pub agent_id: String,
    pub total: i64,
    pub waiting: i64,
    pub open: i64,
    pub finished: i64,
    pub reassigned: i64,
    pub orphaned: i64,
    pub messages_received: i64,
    pub messages_sent: i64,
    /// Sums and counts rather than averages, so rows add up exactly and both
    /// databases return the same types.
    pub first_response_sum: Option<i64>,
    pub first_response_count: i64,
    pub handling_sum: Option<i64>,
    pub handling_count: i64,
}

impl Row {
    pub fn average_first_response(&self) -> f64 {
        average(self.first_response_sum, self.first_response_count)
    }

    pub fn average_handling(&self) -> f64 {
        average(self.handling_sum, self.handling_count)
    }

    fn add(&mut self, other: &Row) {
        self.total += other.total;
        self.waiting += other.waiting;
        self.open += other.open;
        self.finished += other.finished;
        self.reassigned += other.reassigned;
        self.orphaned += other.orphaned;
        self.messages_received += other.messages_received;
        self.messages_sent += other.messages_sent;
        let sum = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.first_response_sum = sum(self.first_response_sum, other.first_response_sum);
        self.first_response_count += other.first_response_count;
        self.handling_sum = sum(self.handling_sum, other.handling_sum);
        self.handling_count += other.handling_count;
    }
}

#[allow(clippy::cast_precision_loss)] // seconds and counts far below 2^52
fn average(sum: Option<i64>, count: i64) -> f64 {
    match (sum, count) {
        (Some(sum), count) if count > 0 => sum as f64 / count as f64,
        _ => 0.0,
    }
}

/// Every row summed; its campaign and agent are empty.
pub fn total(rows: &[Row]) -> Row {
    rows.iter().fold(Row::default(), |mut total, row| {
        total.add(row);
        total
    })
}

impl Filter {
    fn select(&self) -> Select<attention_activity::Entity> {
        let mut condition = Condition::all()
            .add(Column::CampaignId.is_in(self.campaign_ids.iter().map(String::as_str)))
            .add(Column::CreatedAt.gte(self.start_from))
            .add(Column::CreatedAt.lt(self.start_to));
        if !self.agent_ids.is_empty() {
            condition =
                condition.add(Column::AgentId.is_in(self.agent_ids.iter().map(String::as_str)));
        }
        attention_activity::Entity::find().filter(condition)
    }
}

/// `SUM(CASE WHEN <condition> THEN 1 ELSE 0 END)`: the same on both databases.
fn count_when(condition: &str) -> Expr {
    Expr::cust(format!("SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"))
}

/// Rows of attentions on a page of an attention export.
pub const EXPORT_PAGE: u64 = 1_000;

impl Records {
    /// The report's rows by campaign, then agent; one grouped query.
    pub async fn report(&self, filter: &Filter) -> Result<Vec<Row>, Error> {
        let rows = filter
            .select()
            .select_only()
            .column(Column::CampaignId)
            .column(Column::AgentId)
            .column_as(Expr::cust("COUNT(*)"), "total")
            .column_as(count_when("state IN ('queued', 'offered')"), "waiting")
            .column_as(count_when("state = 'open'"), "open")
            .column_as(count_when("state = 'finished'"), "finished")
            .column_as(count_when("reassignments > 0"), "reassigned")
            .column_as(count_when("orphaned"), "orphaned")
            .column_as(Expr::cust("SUM(messages_received)"), "messages_received")
            .column_as(Expr::cust("SUM(messages_sent)"), "messages_sent")
            .column_as(
                Expr::cust("SUM(first_response_seconds)"),
                "first_response_sum",
            )
            .column_as(
                Expr::cust("COUNT(first_response_seconds)"),
                "first_response_count",
            )
            .column_as(Expr::cust("SUM(handling_seconds)"), "handling_sum")
            .column_as(Expr::cust("COUNT(handling_seconds)"), "handling_count")
            .group_by(Column::CampaignId)
            .group_by(Column::AgentId)
            .order_by_asc(Column::CampaignId)
            .order_by_asc(Column::AgentId)
            .into_model::<Row>()
            .all(self.connection())
            .await?;
        Ok(rows)
    }

    /// One page of the attentions a report covers, oldest start first, after
    /// `after` (a keyset: rows recorded meanwhile neither repeat nor shift).
    pub async fn report_attentions(
        &self,
        filter: &Filter,
        after: Option<(DateTime<Utc>, String)>,
    ) -> Result<Vec<attention_activity::Model>, Error> {
        let mut query = filter.select();
        if let Some((created_at, attention_id)) = after {
            query = query.filter(
                Condition::any().add(Column::CreatedAt.gt(created_at)).add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(created_at))
                        .add(Column::AttentionId.gt(attention_id)),
                ),
            );
        }
        Ok(query
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::AttentionId)
            .limit(EXPORT_PAGE)
            .all(self.connection())
            .await?)
    }
}

/// CSV lines of a report, written with the csv crate (quoting by RFC 4180).
pub mod csv_lines {
    use super::{Row, attention_activity};

    const SUMMARY_HEADER: [&str; 12] = [
        "campaign_id",
        "agent_id",
        "total",
        "waiting",
        "open",
        "finished",
        "reassigned",
        "orphaned",
        "messages_received",
        "messages_sent",
        "average_first_response_seconds",
        "average_handling_seconds",
    ];

    const ATTENTION_HEADER: [&str; 15] = [
        "attention_id",
        "campaign_id",
        "direction",
        "state",
        "agent_id",
        "created_at",
        "first_opened_at",
        "first_response_at",
        "finished_at",
        "first_response_seconds",
        "handling_seconds",
        "reassignments",
        "orphaned",
        "messages_received",
        "messages_sent",
    ];

    fn write<I, S>(records: impl IntoIterator<Item = I>) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for record in records {
            // Writing to a Vec cannot fail.
            let _ = writer.write_record(record);
        }
        writer.into_inner().unwrap_or_default()
    }

    /// The summary: header, one line per row, then the total (campaign `*`).
    pub fn summary(rows: &[Row], total: &Row) -> Vec<u8> {
        let line = |row: &Row, campaign: &str| {
            vec![
                campaign.to_owned(),
                row.agent_id.clone(),
                row.total.to_string(),
                row.waiting.to_string(),
                row.open.to_string(),
                row.finished.to_string(),
                row.reassigned.to_string(),
                row.orphaned.to_string(),
                row.messages_received.to_string(),
                row.messages_sent.to_string(),
                format!("{:.1}", row.average_first_response()),
                format!("{:.1}", row.average_handling()),
            ]
        };
        let header = SUMMARY_HEADER.map(str::to_owned).to_vec();
        write(
            std::iter::once(header)
                .chain(rows.iter().map(|r| line(r, &r.campaign_id)))
                .chain(std::iter::once(line(total, "*"))),
        )
    }

    pub fn attention_header() -> Vec<u8> {
        write([ATTENTION_HEADER])
    }

    pub fn attentions(rows: &[attention_activity::Model]) -> Vec<u8> {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339()).unwrap_or_default()
        };
        let number = |n: Option<i32>| n.map(|n| n.to_string()).unwrap_or_default();
        write(rows.iter().map(|a| {
            [
                a.attention_id.clone(),
                a.campaign_id.clone(),
                a.direction.clone(),
                a.state.clone(),
                a.agent_id.clone(),
                a.created_at.to_rfc3339(),
                time(a.first_opened_at),
                time(a.first_response_at),
                time(a.finished_at),
                number(a.first_response_seconds),
                number(a.handling_seconds),
                a.reassignments.to_string(),
                a.orphaned.to_string(),
                a.messages_received.to_string(),
                a.messages_sent.to_string(),
            ]
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(campaign: &str, agent: &str, total: i64, handling: Option<(i64, i64)>) -> Row {
        Row {
            campaign_id: campaign.into(),
            agent_id: agent.into(),
            total,
            handling_sum: handling.map(|h| h.0),
            handling_count: handling.map_or(0, |h| h.1),
            ..Row::default()
        }
    }

    #[test]
    fn the_total_weights_averages_by_count() {
        let rows = [
            row("ventas", "ana", 3, Some((300, 3))),
            row("ventas", "luis", 1, Some((500, 1))),
            row("soporte", "", 2, None),
        ];
        let total = total(&rows);
        assert_eq!(total.total, 6);
        assert!((total.average_handling() - 200.0).abs() < f64::EPSILON);
        assert!(total.average_first_response().abs() < f64::EPSILON, "none");
    }

    #[test]
    fn the_summary_csv_quotes_what_needs_quoting() {
        let rows = [row("ventas, norte", "ana \"la jefa\"", 1, Some((90, 1)))];
        let text = String::from_utf8(csv_lines::summary(&rows, &total(&rows))).expect("utf-8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("campaign_id,agent_id,total,"));
        assert_eq!(
            lines[1],
            "\"ventas, norte\",\"ana \"\"la jefa\"\"\",1,0,0,0,0,0,0,0,0.0,90.0"
        );
        assert!(lines[2].starts_with("*,,1,"));
    }
}
