//! Sending for running dialers, and what comes back: statuses move a
//! contact on, a reply starts its attention.
//!
//! Every replica runs a [`Dialing`] loop, but one replica at a time sends for
//! a dialer: the one holding its lease, taken and renewed by a conditional
//! update of the dialer's row. The time of its next send is stored too, so
//! the pace holds across replicas and restarts. A contact's try has an
//! idempotency key (dialer, line, try): a send whose outcome was never
//! recorded (a crash, a lapsed lease) is asked again under the same key and
//! messaging answers with the message it already sent.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use atenciones_proto::common::v1 as common;
use atenciones_proto::messaging::v1 as messaging_pb;

use crate::dialer::{ContactState, DialerState};
use crate::entity::{dialer, dialer_contact};
use crate::error::Error;
use crate::hours::BusinessHours;
use crate::queue::Queue;

/// The longest a loop sleeps: a dialer started elsewhere is picked up within it.
const IDLE: Duration = Duration::from_millis(250);
/// A dialer's wait after WhatsApp did not take a message at once (its
/// throughput limit, 130429, or an outage: messaging tries it again).
const SLOWDOWN: TimeDelta = TimeDelta::seconds(30);
/// A dialer's wait while messaging cannot be reached.
const UNREACHABLE: TimeDelta = TimeDelta::seconds(5);
/// How often a dialer outside its schedule looks again.
const SCHEDULE_CHECK: TimeDelta = TimeDelta::minutes(1);
/// A reply this long after the template starts an ordinary inbound attention.
const REPLY_WINDOW: TimeDelta = TimeDelta::days(7);

/// WhatsApp's errors that pause a whole dialer for a supervisor to look at:
/// the spam limit and a locked account (../WHATSAPP.md).
const PAUSING: [i64; 3] = [131_048, 368, 131_031];
/// Errors of a try worth another later, by the dialer's retry rule: an
/// unknown error, service unavailable, and 0 (messaging's own retries gave
/// up). Others (131049 per-user marketing limit, 131026 undeliverable…) fail
/// the contact for good.
const RETRYABLE: [i64; 3] = [0, 131_000, 131_016];

/// One replica's sender.
pub struct Dialing {
    queue: Queue,
    /// This replica, as lease holder.
    me: String,
    lease: TimeDelta,
}

impl Dialing {
    pub fn new(queue: Queue, lease: Duration) -> Self {
        Self {
            queue,
            me: Uuid::new_v4().to_string(),
            lease: TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(30)),
        }
    }

    /// Sends for running dialers until `shutdown`; a send in flight is
    /// finished, not abandoned. Stopping lets go of its dialers, so another
    /// replica goes on at once.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let wait = match self.round(&shutdown).await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::warn!(%error, "dialers: a round was not completed");
                    IDLE
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(error) = self.release().await {
            tracing::warn!(%error, "dialers: leases left to lapse");
        }
    }

    async fn release(&self) -> Result<(), Error> {
        dialer::Entity::update_many()
            .col_expr(
                dialer::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(dialer::Column::LeaseOwner.eq(self.me.clone()))
            .exec(&self.queue.db)
            .await?;
        Ok(())
    }

    /// One send for every running dialer that is due and this replica can
    /// hold; returns how long until the next is due.
    async fn round(&self, shutdown: &CancellationToken) -> Result<Duration, Error> {
        let now = Utc::now();
        let running = dialer::Entity::find()
            .filter(dialer::Column::State.eq(DialerState::Running.as_str()))
            .all(&self.queue.db)
            .await?;
        let mut next = now + TimeDelta::from_std(IDLE).unwrap_or_default();
        for d in running {
            if shutdown.is_cancelled() {
                break;
            }
            match d.next_send_at {
                Some(due) if due > now => next = next.min(due),
                _ if self.hold(d.id, now).await? => {
                    next = next.min(self.queue.dial(&d, &self.me).await?);
                }
                // Another replica holds it.
                _ => {}
            }
        }
        Ok((next - Utc::now()).to_std().unwrap_or_default().min(IDLE))
    }

    /// Takes or renews the dialer's lease when it is due and free (or ours).
    async fn hold(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
        let held = dialer::Entity::update_many()
            .col_expr(dialer::Column::LeaseOwner, Expr::value(self.me.clone()))
            .col_expr(dialer::Column::LeaseUntil, Expr::value(now + self.lease))
            .filter(dialer::Column::Id.eq(id))
            .filter(dialer::Column::State.eq(DialerState::Running.as_str()))
            .filter(
                Condition::any()
                    .add(dialer::Column::NextSendAt.is_null())
                    .add(dialer::Column::NextSendAt.lte(now)),
            )
            .filter(
                Condition::any()
                    .add(dialer::Column::LeaseUntil.is_null())
                    .add(dialer::Column::LeaseUntil.lt(now))
                    .add(dialer::Column::LeaseOwner.eq(self.me.clone())),
            )
            .exec(&self.queue.db)
            .await?;
        Ok(held.rows_affected == 1)
    }
}

/// What became of one try.
enum Outcome {
    /// WhatsApp took it.
    Sent { message_id: String },
    /// Not at once: messaging tries it again by itself. The contact keeps
    /// its key, and the dialer slows down.
    Waiting { message_id: String },
    /// The try failed: the retry rule decides.
    Failed { code: i64, reason: String },
    /// Nothing was sent, and nothing will be (opted out).
    NotContacted(String),
    /// The dialer cannot go on (its template is no longer approved).
    Pause(String),
    /// Messaging could not be reached: nothing changed, try again soon.
    Unreachable(String),
}

impl Queue {
    /// Sends the dialer's next due contact (the caller holds its lease), or
    /// waits for its schedule or its retries, or finishes it. Returns when
    /// it is next due.
    async fn dial(&self, d: &dialer::Model, me: &str) -> Result<DateTime<Utc>, Error> {
        let now = Utc::now();
        let schedule: Option<BusinessHours> = d
            .schedule
            .clone()
            .and_then(|s| serde_json::from_value(s).ok());
        if schedule.is_some_and(|hours| !hours.is_open(now)) {
            let next = now + SCHEDULE_CHECK;
            self.pace(
                d,
                me,
                next,
                Some("outside its schedule: waiting for it to open"),
            )
            .await?;
            return Ok(next);
        }
        let due = dialer_contact::Entity::find()
            .filter(dialer_contact::Column::DialerId.eq(d.id))
            .filter(dialer_contact::Column::State.eq(ContactState::Pending.as_str()))
            .filter(
                Condition::any()
                    .add(dialer_contact::Column::NextTryAt.is_null())
                    .add(dialer_contact::Column::NextTryAt.lte(now)),
            )
            .order_by_asc(dialer_contact::Column::Line)
            .one(&self.db)
            .await?;
        let Some(contact) = due else {
            return self.wait_or_finish(d, me, now).await;
        };
        if self
            .active_attention(&d.business_phone_number_id, &contact.customer_id)
            .await?
            .is_some()
        {
            // An agent is talking with them already: no template on top.
            settle_not_contacted(
                &self.db,
                &contact,
                "in an unfinished attention on the number",
            )
            .await?;
            return Ok(now);
        }
        let outcome = self.send(d, &contact).await;
        let interval = TimeDelta::milliseconds(60_000 / i64::from(d.messages_per_minute.max(1)));
        let (next, notice) = match outcome {
            Outcome::Sent { message_id } => {
                mark_sent(&self.db, &contact, &message_id, now).await?;
                (now + interval, None)
            }
            Outcome::Waiting { message_id } => {
                dialer_contact::Entity::update_many()
                    .col_expr(dialer_contact::Column::MessageId, Expr::value(message_id))
                    .col_expr(
                        dialer_contact::Column::NextTryAt,
                        Expr::value(now + SLOWDOWN),
                    )
                    .filter(contact_key(&contact))
                    .exec(&self.db)
                    .await?;
                (
                    now + SLOWDOWN,
                    Some("WhatsApp did not take a message at once (its throughput limit, or an outage): slowed down".to_owned()),
                )
            }
            Outcome::Failed { code, reason } => {
                self.failed_try(d, &contact, code, &reason).await?;
                (now + interval, Some(reason))
            }
            Outcome::NotContacted(reason) => {
                settle_not_contacted(&self.db, &contact, &reason).await?;
                return Ok(now);
            }
            Outcome::Pause(reason) => {
                self.pause(d.id, &reason).await?;
                return Ok(now + SCHEDULE_CHECK);
            }
            Outcome::Unreachable(reason) => (now + UNREACHABLE, Some(reason)),
        };
        self.pace(d, me, next, notice.as_deref()).await?;
        Ok(next)
    }

    /// One try of the dialer's template to the contact.
    async fn send(&self, d: &dialer::Model, contact: &dialer_contact::Model) -> Outcome {
        let parameters: Vec<String> =
            serde_json::from_value(contact.parameters.clone()).unwrap_or_default();
        let request = messaging_pb::SendTemplateRequest {
            recipient: Some(messaging_pb::Recipient {
                attention_id: contact.attention_id.unwrap_or_default().to_string(),
                business_phone_number_id: d.business_phone_number_id.clone(),
                customer: Some(common::Customer {
                    id: contact.customer_id.clone(),
                    wa_id: contact.customer_id.clone(),
                    user_id: String::new(),
                    name: String::new(),
                }),
                agent_id: String::new(),
            }),
            name: d.template_name.clone(),
            language: d.template_language.clone(),
            body_parameters: parameters,
            reply_to_message_id: String::new(),
            idempotency_key: format!("dialer:{}:{}:{}", d.id, contact.line, contact.attempts + 1),
            validate_only: false,
        };
        let answer = self.clients.messaging().send_template(request).await;
        match answer.map(|r| r.into_inner().message.unwrap_or_default()) {
            Ok(message) => match message.status() {
                messaging_pb::MessageStatus::Pending => Outcome::Waiting {
                    message_id: message.id,
                },
                // A repeated key answers with a try that failed since.
                messaging_pb::MessageStatus::Failed => {
                    let error = message.error.unwrap_or_default();
                    Outcome::Failed {
                        code: error.code,
                        reason: whatsapp_reason(error.code, &error.title),
                    }
                }
                _ => Outcome::Sent {
                    message_id: message.id,
                },
            },
            Err(status) => refusal(&status),
        }
    }

    /// A try failed: the contact waits for its next try, or has failed for
    /// good; a spam-limit error also pauses the dialer.
    async fn failed_try(
        &self,
        d: &dialer::Model,
        contact: &dialer_contact::Model,
        code: i64,
        reason: &str,
    ) -> Result<(), Error> {
        let attempts = contact.attempts + 1;
        let pausing = PAUSING.contains(&code);
        let again = (pausing || RETRYABLE.contains(&code)) && attempts < d.max_attempts;
        // Not the contact's fault when the whole dialer pauses: tried first
        // when it resumes.
        let next = (again && !pausing)
            .then(|| Utc::now() + TimeDelta::minutes(i64::from(d.retry_after_minutes)));
        let state = if again {
            ContactState::Pending
        } else {
            ContactState::Failed
        };
        state
            .setting()
            .col_expr(dialer_contact::Column::Attempts, Expr::value(attempts))
            .col_expr(dialer_contact::Column::Reason, Expr::value(reason))
            .col_expr(dialer_contact::Column::NextTryAt, Expr::value(next))
            .filter(contact_key(contact))
            .exec(&self.db)
            .await?;
        if again {
            // A finished dialer has one more contact to try.
            DialerState::Finished
                .moving(d.id, DialerState::Running)
                .exec(&self.db)
                .await?;
        }
        if pausing {
            self.pause(d.id, &format!("paused: {reason}")).await?;
        }
        Ok(())
    }

    /// Pauses a running dialer, saying why.
    async fn pause(&self, id: Uuid, notice: &str) -> Result<(), Error> {
        tracing::warn!(dialer_id = %id, notice, "dialer paused");
        DialerState::Running
            .moving(id, DialerState::Paused)
            .col_expr(dialer::Column::Notice, Expr::value(notice))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Stores when the dialer is next due and what to tell the supervisor,
    /// while this replica still holds it.
    async fn pace(
        &self,
        d: &dialer::Model,
        me: &str,
        next: DateTime<Utc>,
        notice: Option<&str>,
    ) -> Result<(), Error> {
        dialer::Entity::update_many()
            .col_expr(dialer::Column::NextSendAt, Expr::value(next))
            .col_expr(
                dialer::Column::Notice,
                Expr::value(notice.map(str::to_owned)),
            )
            .filter(dialer::Column::Id.eq(d.id))
            .filter(dialer::Column::LeaseOwner.eq(me))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// No contact is due: the dialer waits for its earliest retry, or has
    /// written to everyone and is finished.
    async fn wait_or_finish(
        &self,
        d: &dialer::Model,
        me: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error> {
        let retry: Option<Option<DateTime<Utc>>> = dialer_contact::Entity::find()
            .select_only()
            .column_as(dialer_contact::Column::NextTryAt.min(), "next")
            .filter(dialer_contact::Column::DialerId.eq(d.id))
            .filter(dialer_contact::Column::State.eq(ContactState::Pending.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        if let Some(next) = retry.flatten() {
            self.pace(d, me, next, d.notice.as_deref()).await?;
            return Ok(next);
        }
        DialerState::Running
            .moving(d.id, DialerState::Finished)
            .exec(&self.db)
            .await?;
        Ok(now + TimeDelta::from_std(IDLE).unwrap_or_default())
    }

    /// A status of a dialer's template: its contact moves on (sent →
    /// delivered → read, never back), or the try failed. Returns whether the
    /// message was a dialer's.
    pub(crate) async fn record_dialed_status(
        &self,
        attention_id: Uuid,
        message_id: &str,
        status: &str,
        error: (i64, &str),
    ) -> Result<bool, Error> {
        let Some(contact) = dialer_contact::Entity::find()
            .filter(dialer_contact::Column::AttentionId.eq(attention_id))
            .filter(dialer_contact::Column::MessageId.eq(message_id))
            .one(&self.db)
            .await?
        else {
            return Ok(false);
        };
        use ContactState::{Delivered, Read, Sent};
        let (earlier, later): (&[ContactState], _) = match status {
            "delivered" => (&[Sent], Delivered),
            "read" => (&[Sent, Delivered], Read),
            "failed" => (&[Sent, Delivered], ContactState::Failed),
            _ => (&[], Sent),
        };
        if !ContactState::parse(&contact.state).is_some_and(|s| earlier.contains(&s)) {
            return Ok(true);
        }
        if later == ContactState::Failed {
            let d = dialer::Entity::find_by_id(contact.dialer_id)
                .one(&self.db)
                .await?
                .ok_or_else(|| Error::NotFound(format!("dialer {}", contact.dialer_id)))?;
            let (code, title) = error;
            self.failed_try(&d, &contact, code, &whatsapp_reason(code, title))
                .await?;
        } else {
            later
                .setting()
                .filter(contact_key(&contact))
                .filter(dialer_contact::Column::State.is_in(earlier.iter().map(|s| s.as_str())))
                .exec(&self.db)
                .await?;
        }
        Ok(true)
    }

    /// The contact a customer's message replies to: the latest written to
    /// from `number` for the campaign in the last days, not replied yet.
    pub(crate) async fn dialer_reply(
        &self,
        number: &str,
        campaign_id: &str,
        customer_id: &str,
    ) -> Result<Option<DialerReply>, Error> {
        let since = Utc::now() - REPLY_WINDOW;
        let candidates = dialer_contact::Entity::find()
            .filter(dialer_contact::Column::CustomerId.eq(customer_id))
            .filter(
                dialer_contact::Column::State
                    .is_in(ContactState::REACHED.map(ContactState::as_str)),
            )
            .filter(dialer_contact::Column::SentAt.gte(since))
            .order_by_desc(dialer_contact::Column::SentAt)
            .all(&self.db)
            .await?;
        for contact in candidates {
            let Some(d) = dialer::Entity::find_by_id(contact.dialer_id)
                .one(&self.db)
                .await?
            else {
                continue;
            };
            if d.business_phone_number_id == number
                && d.campaign_id == campaign_id
                && let Some(attention_id) = contact.attention_id
            {
                return Ok(Some(DialerReply {
                    dialer_id: d.id,
                    line: contact.line,
                    attention_id,
                    agent_id: d.agent_id,
                }));
            }
        }
        Ok(None)
    }
}

/// A customer's reply to a dialer's template.
pub(crate) struct DialerReply {
    pub dialer_id: Uuid,
    pub line: i32,
    /// The attention the template went out in, which the reply starts.
    pub attention_id: Uuid,
    /// The agent the dialer's replies go to, if any.
    pub agent_id: Option<String>,
}

impl DialerReply {
    /// Marks the contact replied, inside the transaction starting the attention.
    pub(crate) async fn record(&self, txn: &impl ConnectionTrait) -> Result<(), sea_orm::DbErr> {
        ContactState::Replied
            .setting()
            .filter(dialer_contact::Column::DialerId.eq(self.dialer_id))
            .filter(dialer_contact::Column::Line.eq(self.line))
            .exec(txn)
            .await
            .map(drop)
    }
}

fn contact_key(contact: &dialer_contact::Model) -> Condition {
    Condition::all()
        .add(dialer_contact::Column::DialerId.eq(contact.dialer_id))
        .add(dialer_contact::Column::Line.eq(contact.line))
}

async fn mark_sent(
    db: &impl ConnectionTrait,
    contact: &dialer_contact::Model,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    // Whatever a stop did meanwhile: the message went out.
    ContactState::Sent
        .setting()
        .col_expr(
            dialer_contact::Column::Attempts,
            Expr::value(contact.attempts + 1),
        )
        .col_expr(dialer_contact::Column::MessageId, Expr::value(message_id))
        .col_expr(dialer_contact::Column::SentAt, Expr::value(now))
        .col_expr(
            dialer_contact::Column::NextTryAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(dialer_contact::Column::Reason, Expr::value(None::<String>))
        .filter(contact_key(contact))
        .exec(db)
        .await?;
    Ok(())
}

async fn settle_not_contacted(
    db: &impl ConnectionTrait,
    contact: &dialer_contact::Model,
    reason: &str,
) -> Result<(), Error> {
    ContactState::NotContacted
        .setting()
        .col_expr(dialer_contact::Column::Reason, Expr::value(reason))
        .filter(contact_key(contact))
        .filter(dialer_contact::Column::State.eq(ContactState::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// What messaging's refusal of a try means for the dialer.
fn refusal(status: &tonic::Status) -> Outcome {
    let info = status.get_details_error_info();
    let reason = info.as_ref().map(|i| i.reason.as_str()).unwrap_or_default();
    match (status.code(), reason) {
        (Code::FailedPrecondition, "OPTED_OUT") => {
            Outcome::NotContacted("opted out of the number".into())
        }
        (Code::FailedPrecondition, "TEMPLATE_UNAVAILABLE") => {
            Outcome::Pause(format!("paused: {}", status.message()))
        }
        (Code::FailedPrecondition, "WHATSAPP_REFUSED" | "WHATSAPP_UNREACHABLE") => {
            let metadata = info.map(|i| i.metadata).unwrap_or_default();
            let code = metadata
                .get("code")
                .and_then(|c| c.parse().ok())
                .unwrap_or_default();
            let title = metadata.get("title").map_or("", String::as_str);
            Outcome::Failed {
                code,
                reason: whatsapp_reason(code, title),
            }
        }
        // The contact's line cannot be sent as it is (say, a parameter
        // WhatsApp would refuse): no retry helps.
        (Code::InvalidArgument | Code::FailedPrecondition, _) => Outcome::Failed {
            code: -1,
            reason: status.message().to_owned(),
        },
        _ => Outcome::Unreachable(format!(
            "the messaging service could not be reached: {}",
            status.message()
        )),
    }
}

fn whatsapp_reason(code: i64, title: &str) -> String {
    format!("WhatsApp error {code}: {title}")
}
