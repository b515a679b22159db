//! Supervisors' dialers: a campaign's contact list to be written to with an
//! approved template, at a pace, within a schedule. This part creates them,
//! takes their contact lists and moves them between states; `crate::dialing`
//! sends.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, UpdateMany,
};
use uuid::Uuid;

use atenciones_proto::queue::v1 as pb;

use crate::admin::{TemplateRef, allow};
use crate::entity::{dialer, dialer_contact};
use crate::error::{Error, Violations};
use crate::hours::BusinessHours;
use crate::queue::{Queue, parse_id};

/// The most of a list one call takes.
const MAX_CHUNK_BYTES: usize = 1 << 20;
const MAX_CHUNK_LINES: usize = 10_000;
const MAX_PER_MINUTE: u32 = 6_000;
const MAX_ATTEMPTS: u32 = 10;
const MAX_RETRY_MINUTES: u32 = 1_440;
const MAX_CONTACTS_PAGE: u32 = 1_000;

/// A dialer's state, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialerState {
    Draft,
    Running,
    Paused,
    Stopped,
    Finished,
}

impl DialerState {
    const ALL: [Self; 5] = [
        Self::Draft,
        Self::Running,
        Self::Paused,
        Self::Stopped,
        Self::Finished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Finished => "finished",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == stored)
    }

    /// The update moving dialer `id` from this state to `to` (add columns,
    /// then exec): it changes nothing when the state moved meanwhile.
    pub fn moving(self, id: Uuid, to: Self) -> UpdateMany<dialer::Entity> {
        dialer::Entity::update_many()
            .col_expr(dialer::Column::State, Expr::value(to.as_str()))
            .filter(dialer::Column::Id.eq(id))
            .filter(dialer::Column::State.eq(self.as_str()))
    }

    fn to_proto(self) -> pb::DialerState {
        match self {
            Self::Draft => pb::DialerState::Draft,
            Self::Running => pb::DialerState::Running,
            Self::Paused => pb::DialerState::Paused,
            Self::Stopped => pb::DialerState::Stopped,
            Self::Finished => pb::DialerState::Finished,
        }
    }
}

/// Where a contact is: pending → sent → delivered → read → replied, or
/// failed / not contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    Pending,
    Sent,
    Delivered,
    Read,
    Replied,
    Failed,
    NotContacted,
}

impl ContactState {
    const ALL: [Self; 7] = [
        Self::Pending,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Replied,
        Self::Failed,
        Self::NotContacted,
    ];

    /// The states of a contact written to that a status or a reply may
    /// still move on from.
    pub const REACHED: [Self; 3] = [Self::Sent, Self::Delivered, Self::Read];

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == stored)
    }

    /// The update putting contacts in this state now (filter which ones).
    pub fn setting(self) -> UpdateMany<dialer_contact::Entity> {
        dialer_contact::Entity::update_many()
            .col_expr(dialer_contact::Column::State, Expr::value(self.as_str()))
            .col_expr(dialer_contact::Column::UpdatedAt, Expr::value(Utc::now()))
    }

    fn to_proto(self) -> pb::DialerContactState {
        match self {
            Self::Pending => pb::DialerContactState::Pending,
            Self::Sent => pb::DialerContactState::Sent,
            Self::Delivered => pb::DialerContactState::Delivered,
            Self::Read => pb::DialerContactState::Read,
            Self::Replied => pb::DialerContactState::Replied,
            Self::Failed => pb::DialerContactState::Failed,
            Self::NotContacted => pb::DialerContactState::NotContacted,
        }
    }

    fn from_proto(state: pb::DialerContactState) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.to_proto() == state)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Replied => "replied",
            Self::Failed => "failed",
            Self::NotContacted => "not_contacted",
        }
    }
}

/// What a new dialer is, once every field checked.
struct NewDialer {
    campaign_id: String,
    number: String,
    template: TemplateRef,
    template_parameter_count: u32,
    messages_per_minute: u32,
    schedule: Option<BusinessHours>,
    max_attempts: u32,
    retry_after_minutes: u32,
    agent_id: Option<String>,
}

impl TryFrom<Option<pb::Dialer>> for NewDialer {
    type Error = Error;

    fn try_from(dialer: Option<pb::Dialer>) -> Result<Self, Error> {
        let d = dialer.ok_or_else(|| Error::invalid("dialer", "required"))?;
        let mut v = Violations::default();
        v.check(!d.campaign_id.is_empty(), "dialer.campaign_id", "required");
        let template =
            TemplateRef::from_proto(d.template.unwrap_or_default(), "dialer.template", &mut v);
        v.check(
            (1..=MAX_PER_MINUTE).contains(&d.messages_per_minute),
            "dialer.messages_per_minute",
            "between 1 and 6000",
        );
        v.check(
            (1..=MAX_ATTEMPTS).contains(&d.max_attempts),
            "dialer.max_attempts",
            "between 1 and 10",
        );
        v.check(
            (1..=MAX_RETRY_MINUTES).contains(&d.retry_after_minutes),
            "dialer.retry_after_minutes",
            "between 1 and 1440",
        );
        let schedule = d
            .schedule
            .and_then(|s| BusinessHours::from_proto(s, "dialer.schedule", &mut v));
        v.into_result(Self {
            campaign_id: d.campaign_id,
            number: d.business_phone_number_id,
            template,
            template_parameter_count: d.template_parameter_count,
            messages_per_minute: d.messages_per_minute,
            schedule,
            max_attempts: d.max_attempts,
            retry_after_minutes: d.retry_after_minutes,
            agent_id: Some(d.agent_id).filter(|a| !a.is_empty()),
        })
    }
}

impl Queue {
    /// Creates a dialer in state draft for a campaign `actor` supervises.
    pub async fn create_dialer(
        &self,
        actor: &str,
        given: Option<pb::Dialer>,
    ) -> Result<pb::Dialer, Error> {
        let new = NewDialer::try_from(given)?;
        allow(&self.supervised(actor).await?, [new.campaign_id.as_str()])?;
        let number = self
            .campaign_number(&new.campaign_id, &new.number)
            .await?
            .phone_number_id;
        if let Some(agent) = &new.agent_id
            && !self.campaigns_of(agent).await?.contains(&new.campaign_id)
        {
            return Err(Error::FailedPrecondition(format!(
                "agent {agent} is not an agent of campaign {}",
                new.campaign_id
            )));
        }
        if new.messages_per_minute > self.dialer_budget {
            return Err(Error::FailedPrecondition(format!(
                "dialers of a number send at most {} messages a minute (a quarter of its WhatsApp throughput)",
                self.dialer_budget
            )));
        }
        let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let model = dialer::Model {
            id: Uuid::new_v4(),
            campaign_id: new.campaign_id,
            business_phone_number_id: number,
            template_name: new.template.name,
            template_language: new.template.language,
            template_parameter_count: int(new.template_parameter_count),
            messages_per_minute: int(new.messages_per_minute),
            schedule: new
                .schedule
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
            max_attempts: int(new.max_attempts),
            retry_after_minutes: int(new.retry_after_minutes),
            state: DialerState::Draft.as_str().to_owned(),
            created_by: actor.to_owned(),
            created_at: Utc::now(),
            next_send_at: None,
            lease_owner: None,
            lease_until: None,
            notice: None,
            agent_id: new.agent_id,
        };
        dialer::Entity::insert(dialer::ActiveModel::from(model.clone()))
            .exec(&self.db)
            .await?;
        Ok(to_proto(model, pb::DialerProgress::default()))
    }

    /// Adds the good lines of a chunk of the dialer's contact list; reports
    /// the bad ones by line number.
    pub async fn add_dialer_contacts(
        &self,
        actor: &str,
        dialer_id: &str,
        first_line: u32,
        csv: &str,
    ) -> Result<pb::AddDialerContactsResponse, Error> {
        let dialer = self.supervised_dialer(actor, dialer_id).await?;
        if matches!(
            DialerState::parse(&dialer.state),
            Some(DialerState::Stopped | DialerState::Finished)
        ) {
            return Err(Error::FailedPrecondition(format!(
                "dialer {dialer_id} is {}: it takes no more contacts",
                dialer.state
            )));
        }
        let mut v = Violations::default();
        v.check(first_line >= 1, "first_line", "lines are numbered from 1");
        v.check(csv.len() <= MAX_CHUNK_BYTES, "csv", "at most 1 MiB a chunk");
        v.check(
            csv.lines().count() <= MAX_CHUNK_LINES,
            "csv",
            "at most 10,000 lines a chunk",
        );
        v.into_result(())?;
        let expected = usize::try_from(dialer.template_parameter_count).unwrap_or(0);
        let (lines, mut rejected) = parse(csv, first_line, expected);
        // Numbers already in the list (from other chunks), by line.
        let numbers: Vec<String> = lines.iter().map(|l| l.customer_id.clone()).collect();
        let known: HashMap<String, i32> = dialer_contact::Entity::find()
            .filter(dialer_contact::Column::DialerId.eq(dialer.id))
            .filter(dialer_contact::Column::CustomerId.is_in(numbers))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.customer_id, c.line))
            .collect();
        let now = Utc::now();
        let mut rows = Vec::new();
        for line in lines {
            match known.get(&line.customer_id) {
                // Kept by an earlier call with this chunk.
                Some(kept) if *kept == line.line => {}
                Some(kept) => rejected.push(pb::ContactLineError {
                    line: u32::try_from(line.line).unwrap_or(0),
                    reason: format!("the number is already on line {kept}"),
                }),
                None => rows.push(dialer_contact::ActiveModel {
                    dialer_id: Set(dialer.id),
                    line: Set(line.line),
                    customer_id: Set(line.customer_id),
                    parameters: Set(serde_json::json!(line.parameters)),
                    state: Set(ContactState::Pending.as_str().to_owned()),
                    attempts: Set(0),
                    updated_at: Set(now),
                    // Made now, so every try and the reply share it.
                    attention_id: Set(Some(Uuid::new_v4())),
                    message_id: Set(None),
                    next_try_at: Set(None),
                    sent_at: Set(None),
                    reason: Set(None),
                }),
            }
        }
        rejected.sort_by_key(|r| r.line);
        let added = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        if !rows.is_empty() {
            // One statement: the chunk's good lines are kept together or not at all.
            dialer_contact::Entity::insert_many(rows)
                .exec(&self.db)
                .await?;
        }
        Ok(pb::AddDialerContactsResponse { added, rejected })
    }

    /// A dialer of a campaign `actor` supervises, with its progress.
    pub async fn dialer(&self, actor: &str, dialer_id: &str) -> Result<pb::Dialer, Error> {
        let dialer = self.supervised_dialer(actor, dialer_id).await?;
        self.with_progress(dialer).await
    }

    /// The dialers of the campaigns `actor` supervises (or of one of them),
    /// newest first.
    pub async fn dialers(&self, actor: &str, campaign_id: &str) -> Result<Vec<pb::Dialer>, Error> {
        let mut campaigns = self.supervised(actor).await?;
        if !campaign_id.is_empty() {
            allow(&campaigns, [campaign_id])?;
            campaigns = [campaign_id.to_owned()].into();
        }
        let found = dialer::Entity::find()
            .filter(dialer::Column::CampaignId.is_in(campaigns))
            .order_by_desc(dialer::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let mut dialers = Vec::with_capacity(found.len());
        for d in found {
            dialers.push(self.with_progress(d).await?);
        }
        Ok(dialers)
    }

    /// A page of a dialer's contacts in list order, after the line in
    /// `page_token`.
    pub async fn dialer_contacts(
        &self,
        actor: &str,
        request: pb::ListDialerContactsRequest,
    ) -> Result<(Vec<pb::DialerContact>, String), Error> {
        let dialer = self.supervised_dialer(actor, &request.dialer_id).await?;
        let after = match request.page_token.as_str() {
            "" => 0,
            token => token
                .parse::<i32>()
                .map_err(|_| Error::invalid("page_token", "not a token this API gave"))?,
        };
        let size = match request.page_size {
            0 => 100,
            n => n.min(MAX_CONTACTS_PAGE),
        };
        let mut query = dialer_contact::Entity::find()
            .filter(dialer_contact::Column::DialerId.eq(dialer.id))
            .filter(dialer_contact::Column::Line.gt(after));
        if let Some(state) = ContactState::from_proto(request.state()) {
            query = query.filter(dialer_contact::Column::State.eq(state.as_str()));
        }
        let mut page = query
            .order_by_asc(dialer_contact::Column::Line)
            .limit(u64::from(size) + 1)
            .all(&self.db)
            .await?;
        let more = page.len() > size as usize;
        page.truncate(size as usize);
        let next = match (more, page.last()) {
            (true, Some(last)) => last.line.to_string(),
            _ => String::new(),
        };
        Ok((page.into_iter().map(contact_to_proto).collect(), next))
    }

    async fn with_progress(&self, dialer: dialer::Model) -> Result<pb::Dialer, Error> {
        let counts: Vec<(String, i64)> = dialer_contact::Entity::find()
            .select_only()
            .column(dialer_contact::Column::State)
            .column_as(dialer_contact::Column::Line.count(), "count")
            .filter(dialer_contact::Column::DialerId.eq(dialer.id))
            .group_by(dialer_contact::Column::State)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut progress = pb::DialerProgress::default();
        for (state, count) in counts {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            let Some(state) = ContactState::parse(&state) else {
                continue;
            };
            let slot = match state {
                ContactState::Pending => &mut progress.pending,
                ContactState::Sent => &mut progress.sent,
                ContactState::Delivered => &mut progress.delivered,
                ContactState::Read => &mut progress.read,
                ContactState::Replied => &mut progress.replied,
                ContactState::Failed => &mut progress.failed,
                ContactState::NotContacted => &mut progress.not_contacted,
            };
            *slot += count;
        }
        Ok(to_proto(dialer, progress))
    }

    /// Starts, pauses, resumes or stops a dialer of a campaign `actor`
    /// supervises.
    pub async fn set_dialer_state(
        &self,
        actor: &str,
        dialer_id: &str,
        target: pb::DialerState,
    ) -> Result<pb::Dialer, Error> {
        let target = match target {
            pb::DialerState::Running => DialerState::Running,
            pb::DialerState::Paused => DialerState::Paused,
            pb::DialerState::Stopped => DialerState::Stopped,
            _ => return Err(Error::invalid("state", "RUNNING, PAUSED or STOPPED")),
        };
        let d = self.supervised_dialer(actor, dialer_id).await?;
        let current = DialerState::parse(&d.state)
            .ok_or_else(|| Error::FailedPrecondition(format!("dialer state {:?}", d.state)))?;
        if current == target {
            return self.dialer(actor, dialer_id).await;
        }
        use DialerState::{Draft, Paused, Running, Stopped};
        if !matches!(
            (current, target),
            (Draft | Paused, Running) | (Running, Paused) | (Draft | Running | Paused, Stopped)
        ) {
            return Err(Error::FailedPrecondition(format!(
                "dialer {dialer_id} is {}: it cannot become {}",
                current.as_str(),
                target.as_str()
            )));
        }
        if target == Running {
            self.check_can_run(&d).await?;
        }
        let mut update = current.moving(d.id, target);
        if target == Running {
            // What stopped it is over once a supervisor resumes it.
            update = update.col_expr(dialer::Column::Notice, Expr::value(None::<String>));
        }
        if update.exec(&self.db).await?.rows_affected == 0 {
            return Err(Error::FailedPrecondition(format!(
                "dialer {dialer_id} changed meanwhile: read it again"
            )));
        }
        if target == Stopped {
            ContactState::NotContacted
                .setting()
                .col_expr(
                    dialer_contact::Column::Reason,
                    Expr::value("the dialer was stopped"),
                )
                .filter(dialer_contact::Column::DialerId.eq(d.id))
                .filter(dialer_contact::Column::State.eq(ContactState::Pending.as_str()))
                .exec(&self.db)
                .await?;
        }
        self.dialer(actor, dialer_id).await
    }

    /// A dialer may run when it has contacts and, with the number's other
    /// running dialers, stays within the number's budget.
    async fn check_can_run(&self, d: &dialer::Model) -> Result<(), Error> {
        let contacts = dialer_contact::Entity::find()
            .filter(dialer_contact::Column::DialerId.eq(d.id))
            .count(&self.db)
            .await?;
        if contacts == 0 {
            return Err(Error::FailedPrecondition(
                "the dialer has no contacts: upload its list first".into(),
            ));
        }
        let others: Vec<i32> = dialer::Entity::find()
            .select_only()
            .column(dialer::Column::MessagesPerMinute)
            .filter(dialer::Column::BusinessPhoneNumberId.eq(&d.business_phone_number_id))
            .filter(dialer::Column::State.eq(DialerState::Running.as_str()))
            .filter(dialer::Column::Id.ne(d.id))
            .into_tuple()
            .all(&self.db)
            .await?;
        let pace: i64 =
            others.iter().map(|p| i64::from(*p)).sum::<i64>() + i64::from(d.messages_per_minute);
        if pace > i64::from(self.dialer_budget) {
            return Err(Error::FailedPrecondition(format!(
                "the running dialers of number {} would send {pace} messages a minute; at most {} (a quarter of its WhatsApp throughput)",
                d.business_phone_number_id, self.dialer_budget
            )));
        }
        Ok(())
    }

    async fn supervised_dialer(
        &self,
        actor: &str,
        dialer_id: &str,
    ) -> Result<dialer::Model, Error> {
        let id = parse_id(dialer_id).map_err(|_| Error::invalid("dialer_id", "must be a UUID"))?;
        let supervised = self.supervised(actor).await?;
        let dialer = dialer::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("dialer {dialer_id}")))?;
        allow(&supervised, [dialer.campaign_id.as_str()])?;
        Ok(dialer)
    }
}

/// A good line of a contact list.
#[derive(Debug, PartialEq, Eq)]
struct ContactLine {
    line: i32,
    customer_id: String,
    parameters: Vec<String>,
}

/// The good lines of a chunk starting at `first_line`, and why the others
/// are not: not CSV, a number that is not E.164, not `expected` parameters,
/// or the number twice in the chunk. An optional header (a first line of the
/// list whose first field has no digit) is skipped; blank lines too.
fn parse(
    csv: &str,
    first_line: u32,
    expected: usize,
) -> (Vec<ContactLine>, Vec<pb::ContactLineError>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let mut seen = HashMap::new();
    // Line by line, so every line is numbered as the supervisor sees it
    // (a field cannot hold a line break: contact lists need none).
    for (offset, text) in csv.lines().enumerate() {
        let line = u64::from(first_line) + offset as u64;
        if text.trim().is_empty() {
            continue;
        }
        let record = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes())
            .records()
            .next()
            .unwrap_or_else(|| Ok(csv::StringRecord::new()));
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                bad.push(pb::ContactLineError {
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    reason: format!("not CSV: {error}"),
                });
                continue;
            }
        };
        let line_no = u32::try_from(line).unwrap_or(u32::MAX);
        let number = record.get(0).unwrap_or_default();
        let Some(customer_id) = atenciones_domain::e164(number) else {
            let header = line == 1 && !number.chars().any(|c| c.is_ascii_digit());
            if !header {
                bad.push(pb::ContactLineError {
                    line: line_no,
                    reason: format!("{number:?} is not an E.164 number"),
                });
            }
            continue;
        };
        let parameters: Vec<String> = record.iter().skip(1).map(str::to_owned).collect();
        if parameters.len() != expected || parameters.iter().any(String::is_empty) {
            bad.push(pb::ContactLineError {
                line: line_no,
                reason: format!(
                    "the template takes {expected} parameters; the line has {} (none may be empty)",
                    parameters.len()
                ),
            });
            continue;
        }
        if let Some(earlier) = seen.insert(customer_id.clone(), line_no) {
            bad.push(pb::ContactLineError {
                line: line_no,
                reason: format!("the number is already on line {earlier}"),
            });
            continue;
        }
        good.push(ContactLine {
            line: i32::try_from(line).unwrap_or(i32::MAX),
            customer_id,
            parameters,
        });
    }
    (good, bad)
}

fn contact_to_proto(contact: dialer_contact::Model) -> pb::DialerContact {
    let state = ContactState::parse(&contact.state);
    pb::DialerContact {
        line: u32::try_from(contact.line).unwrap_or(0),
        customer_id: contact.customer_id,
        body_parameters: serde_json::from_value(contact.parameters).unwrap_or_default(),
        state: state
            .map_or(pb::DialerContactState::Unspecified, ContactState::to_proto)
            .into(),
        attempts: u32::try_from(contact.attempts).unwrap_or(0),
        reason: contact.reason.unwrap_or_default(),
        // Only a reply starts it: before, the id names no attention.
        attention_id: match (state, contact.attention_id) {
            (Some(ContactState::Replied), Some(id)) => id.to_string(),
            _ => String::new(),
        },
        update_time: Some(atenciones_proto::time::timestamp(contact.updated_at)),
    }
}

fn to_proto(model: dialer::Model, progress: pb::DialerProgress) -> pb::Dialer {
    let schedule: Option<BusinessHours> =
        model.schedule.and_then(|s| serde_json::from_value(s).ok());
    let state = DialerState::parse(&model.state)
        .map_or(pb::DialerState::Unspecified, DialerState::to_proto);
    pb::Dialer {
        id: model.id.to_string(),
        campaign_id: model.campaign_id,
        business_phone_number_id: model.business_phone_number_id,
        template: Some(pb::TemplateRef {
            name: model.template_name,
            language: model.template_language,
        }),
        template_parameter_count: u32::try_from(model.template_parameter_count).unwrap_or(0),
        messages_per_minute: u32::try_from(model.messages_per_minute).unwrap_or(0),
        schedule: schedule.as_ref().map(BusinessHours::to_proto),
        max_attempts: u32::try_from(model.max_attempts).unwrap_or(0),
        retry_after_minutes: u32::try_from(model.retry_after_minutes).unwrap_or(0),
        state: state.into(),
        progress: Some(progress),
        created_by: model.created_by,
        create_time: Some(atenciones_proto::time::timestamp(model.created_at)),
        agent_id: model.agent_id.unwrap_or_default(),
        notice: model.notice.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines_are_kept_and_bad_ones_reported_by_line() {
        let csv = "numero,nombre,dia\n\
                   +54 9 11 5555-0001,Ana,lunes\n\
                   12AB,Beto,martes\n\
                   +5491155550002,Carla\n\
                   \n\
                   +5491155550001,Ana otra vez,jueves\n\
                   \"+5491155550003\",\"Dora, la de ventas\",viernes\n";
        let (good, bad) = parse(csv, 1, 2);
        let kept: Vec<_> = good
            .iter()
            .map(|l| (l.line, l.customer_id.as_str()))
            .collect();
        assert_eq!(kept, [(2, "5491155550001"), (7, "5491155550003")]);
        assert_eq!(good[1].parameters, ["Dora, la de ventas", "viernes"]);
        let lines: Vec<_> = bad.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 6]);
        // A later chunk numbers its lines from where it starts; its first
        // line is no header.
        let (good, bad) = parse("numero,x,y\n+5491155550009,a,b\n", 101, 2);
        assert_eq!(good[0].line, 102);
        assert_eq!(bad[0].line, 101);
    }
}
