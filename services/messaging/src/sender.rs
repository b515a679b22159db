//! Sending stored messages. A Send* call stores the message PENDING, holding
//! its send lease from the start, and makes the first try itself through
//! [`Sender::attempt`]; the background loop ([`Sender::run`]) makes every
//! later one: retries whose backoff has ended, and sends whose replica died
//! holding the lease (a crash between storing and sending).
//!
//! `sending_until` is the one column that says when a message may be tried:
//! while in the future a replica holds the send (its lease) or a retry waits
//! out its backoff. Claiming it is a guarded UPDATE, so of several replicas
//! exactly one tries a message at a time; outcomes are guarded on PENDING, so
//! a message is recorded accepted or failed once.

use std::sync::Arc;
use std::time::Duration;

use atenciones_runtime::settings::WhatsAppSettings;
use chrono::TimeDelta;
use futures::StreamExt;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{self, MessageError};
use crate::entity::message;
use crate::error::Error;
use crate::graph::{Graph, SendError, Trouble};
use crate::{store, window};

/// Due messages read per query.
const BATCH: u64 = 64;
/// Tries in flight at once; the pacer spaces them per business number.
const CONCURRENCY: usize = 8;
/// Longest sleep between two looks at the table: picks up work other replicas
/// left behind without being told.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Shortest sleep, so a message that is due again at once cannot spin the loop.
const MIN_SLEEP: Duration = Duration::from_millis(10);
/// First wait before recording an accepted send again.
const RECORD_BACKOFF: Duration = Duration::from_millis(100);

/// How long a send is held, how often and how patiently it is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub lease: TimeDelta,
    pub max_attempts: u32,
    pub initial_backoff: TimeDelta,
    pub max_backoff: TimeDelta,
}

impl RetryPolicy {
    pub fn new(settings: &WhatsAppSettings) -> Result<Self, String> {
        if settings.send_lease() <= settings.request_timeout() {
            return Err(
                "whatsapp.send_lease_ms must be longer than whatsapp.request_timeout_ms, \
                 or a slow answer could let another replica send the message again"
                    .to_owned(),
            );
        }
        let delta = |d: Duration| TimeDelta::from_std(d).map_err(|e| e.to_string());
        Ok(Self {
            lease: delta(settings.send_lease())?,
            max_attempts: settings.send_max_attempts.get(),
            initial_backoff: delta(settings.retry_initial_backoff())?,
            max_backoff: delta(settings.retry_max_backoff())?,
        })
    }

    /// Wait after the `attempts`-th failed try: the initial backoff, doubled
    /// each time, capped.
    pub fn backoff(&self, attempts: u32) -> TimeDelta {
        let doublings = attempts.saturating_sub(1).min(30);
        self.initial_backoff
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// How one try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// WhatsApp refused it; the message is FAILED.
    Refused(MessageError),
    /// Temporary trouble; still PENDING, tried again after a backoff.
    Retrying,
    /// Temporary trouble on the last allowed try; the message is FAILED.
    GaveUp(MessageError),
}

#[derive(Clone)]
pub struct Sender {
    db: DatabaseConnection,
    graph: Arc<Graph>,
    policy: RetryPolicy,
    /// Rings when a retry is scheduled, so the loop sleeps until the right time.
    wake: Arc<Notify>,
}

impl Sender {
    pub fn new(db: DatabaseConnection, graph: Arc<Graph>, policy: RetryPolicy) -> Self {
        Self {
            db,
            graph,
            policy,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Tries due messages until `shutdown`. A try in flight is finished, not
    /// abandoned: dropping it half-way would leave WhatsApp's answer unknown.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let sleep = match self.drain(&shutdown).await {
                Ok(sleep) => sleep,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the messages to send");
                    POLL_INTERVAL
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Tries every due message; returns how long to sleep until the next one
    /// is due.
    async fn drain(&self, shutdown: &CancellationToken) -> Result<Duration, Error> {
        loop {
            let due = store::due_sends(&self.db, domain::now(), BATCH).await?;
            let full = due.len() as u64 == BATCH;
            futures::stream::iter(due)
                .for_each_concurrent(CONCURRENCY, |id| async move {
                    if let Err(error) = self.claim_and_attempt(id).await {
                        tracing::warn!(message_id = %id, %error, "send attempt not completed");
                    }
                })
                .await;
            if !full || shutdown.is_cancelled() {
                break;
            }
        }
        let next = store::next_send_time(&self.db).await?;
        let until_next = next
            .map(|at| (at - domain::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(POLL_INTERVAL);
        Ok(until_next.clamp(MIN_SLEEP, POLL_INTERVAL))
    }

    /// Tries one due message, unless another replica claimed it first.
    async fn claim_and_attempt(&self, id: Uuid) -> Result<(), Error> {
        if !store::claim_send(&self.db, id, self.policy.lease).await? {
            return Ok(());
        }
        // Read after claiming: the attempt count is the one this claim owns.
        match store::find_message(&self.db, id).await? {
            Some(message) => self.attempt(message).await.map(drop),
            None => Ok(()),
        }
    }

    /// One try of a PENDING message whose lease the caller holds: calls the
    /// Cloud API and records the outcome.
    pub async fn attempt(&self, message: message::Model) -> Result<Outcome, Error> {
        let Some(body) = message.raw.as_ref() else {
            let error = MessageError {
                code: 0,
                title: "Nothing to send".into(),
                detail: "the message was stored without a request body".into(),
            };
            store::mark_refused(&self.db, message.id, &error).await?;
            return Ok(Outcome::GaveUp(error));
        };
        match self
            .graph
            .send(&message.business_phone_number_id, body)
            .await
        {
            Ok(wamid) => {
                self.record_accepted(&message, &wamid).await?;
                // Status webhooks can beat the send's answer; they were kept.
                store::apply_kept_statuses(&self.db, &wamid).await?;
                count_outbound(&message, "accepted");
                Ok(Outcome::Accepted)
            }
            Err(SendError::Refused(refusal)) => {
                tracing::info!(message_id = %message.id, %refusal, "Cloud API refused a message");
                store::mark_refused(&self.db, message.id, &refusal).await?;
                count_outbound(&message, "refused");
                if refusal.code == window::CLOSED_CODE {
                    window::close(
                        &self.db,
                        &message.business_phone_number_id,
                        &message.customer_id,
                        domain::now(),
                    )
                    .await?;
                }
                Ok(Outcome::Refused(refusal))
            }
            Err(SendError::Temporary(trouble)) => self.after_trouble(&message, trouble).await,
        }
    }

    /// Records that WhatsApp took the message. Not recorded, it would be
    /// sent again once the lease lapses, so a failure (the database
    /// restarting, say) is retried for as long as the lease is this sender's.
    async fn record_accepted(&self, message: &message::Model, wamid: &str) -> Result<(), Error> {
        let mut backoff = RECORD_BACKOFF;
        loop {
            let error = match store::mark_accepted(&self.db, message.id, wamid).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let lease_left = message
                .sending_until
                .and_then(|until| (until - domain::now()).to_std().ok())
                .unwrap_or_default();
            if lease_left <= backoff {
                // WhatsApp has the message; say which one, for reconciliation.
                tracing::error!(message_id = %message.id, %wamid, %error, "accepted send not stored");
                return Err(error);
            }
            tracing::warn!(message_id = %message.id, %error, "accepted send not stored yet");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(POLL_INTERVAL);
        }
    }

    async fn after_trouble(
        &self,
        message: &message::Model,
        trouble: Trouble,
    ) -> Result<Outcome, Error> {
        let attempts = message.send_attempts.saturating_add(1);
        let tried = u32::try_from(attempts).unwrap_or(u32::MAX);
        if tried >= self.policy.max_attempts {
            let error = MessageError {
                code: trouble.error.map(|e| e.code).unwrap_or_default(),
                title: "WhatsApp did not take the message".into(),
                detail: format!("gave up after {tried} tries; last: {}", trouble.reason),
            };
            tracing::warn!(message_id = %message.id, %error, "send failed after its last try");
            store::mark_refused(&self.db, message.id, &error).await?;
            count_outbound(message, "gave_up");
            return Ok(Outcome::GaveUp(error));
        }
        let retry_in = self.policy.backoff(tried);
        tracing::warn!(
            message_id = %message.id,
            attempts,
            reason = %trouble.reason,
            retry_in_ms = retry_in.num_milliseconds(),
            "send will be tried again"
        );
        store::schedule_retry(
            &self.db,
            message.id,
            attempts,
            domain::now() + retry_in,
            &trouble.reason,
        )
        .await?;
        self.wake.notify_one();
        Ok(Outcome::Retrying)
    }
}

/// `atenciones_messages_total` of the business's messages, by type and outcome.
fn count_outbound(message: &message::Model, outcome: &'static str) {
    metrics::counter!(
        "atenciones_messages_total",
        "direction" => "outbound",
        "type" => message.message_type.clone(),
        "outcome" => outcome,
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: i64, max_ms: i64) -> RetryPolicy {
        RetryPolicy {
            lease: TimeDelta::seconds(60),
            max_attempts: 8,
            initial_backoff: TimeDelta::milliseconds(initial_ms),
            max_backoff: TimeDelta::milliseconds(max_ms),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = policy(1000, 60_000);
        let waits: Vec<i64> = (1..=8)
            .map(|n| policy.backoff(n).num_milliseconds())
            .collect();
        assert_eq!(
            waits,
            [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(policy.backoff(u32::MAX), TimeDelta::milliseconds(60_000));
    }
}
