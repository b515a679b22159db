//! Reads and writes of the messaging tables. Every write that can be repeated
//! (a redelivered webhook, a reprocessed inbox row, a retried send) is keyed on
//! a unique column or guarded by a WHERE, never check-then-insert. Each
//! function is a single statement that is safe to repeat; the processor runs
//! the writes of one webhook body in one transaction (every function takes any
//! connection), so a body is stored whole or not at all.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::domain::{self, Direction, MessageError, MessageStatus, Routing};
use crate::entity::{inbox, message, reaction, status};
use crate::error::Error;
use crate::notification::{InboundMessage, StatusUpdate};

// ---- inbox ----

/// Keeps a webhook body; returns its row id.
pub async fn insert_inbox<C: ConnectionTrait>(db: &C, body: Vec<u8>) -> Result<i64, Error> {
    let now = domain::now();
    let row = inbox::ActiveModel {
        body: Set(body),
        received_at: Set(now),
        processed_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        next_attempt_at: Set(now),
        ..Default::default()
    };
    Ok(inbox::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// Unprocessed rows whose backoff has passed, oldest first.
pub async fn due_inbox<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<inbox::Model>, Error> {
    Ok(inbox::Entity::find()
        .filter(inbox::Column::ProcessedAt.is_null())
        .filter(inbox::Column::NextAttemptAt.lte(now))
        .order_by_asc(inbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

pub async fn mark_processed<C: ConnectionTrait>(
    db: &C,
    id: i64,
    note: Option<String>,
) -> Result<(), Error> {
    let mut update = inbox::Entity::update_many()
        .col_expr(inbox::Column::ProcessedAt, Expr::value(domain::now()))
        .filter(inbox::Column::Id.eq(id));
    if note.is_some() {
        update = update.col_expr(inbox::Column::LastError, Expr::value(note));
    }
    update.exec(db).await?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    row: &inbox::Model,
    error: &str,
    retry_in: Duration,
) -> Result<(), Error> {
    inbox::Entity::update_many()
        .col_expr(
            inbox::Column::Attempts,
            Expr::value(row.attempts.saturating_add(1)),
        )
        .col_expr(inbox::Column::LastError, Expr::value(error.to_owned()))
        .col_expr(
            inbox::Column::NextAttemptAt,
            Expr::value(domain::now() + retry_in),
        )
        .filter(inbox::Column::Id.eq(row.id))
        .exec(db)
        .await?;
    Ok(())
}

// ---- messages ----

/// A new message's id. Lists order messages by time, then id, and WhatsApp
/// stamps a customer's messages in whole seconds: ids ordered by creation
/// (UUID v7, monotonic within this process) keep the messages of one second
/// in the order they were stored.
pub fn new_message_id() -> Uuid {
    Uuid::now_v7()
}

/// Stores an inbound message once per wamid and returns the stored row (the
/// one already there when the message was seen before).
pub async fn store_inbound<C: ConnectionTrait>(
    db: &C,
    inbound: &InboundMessage,
) -> Result<message::Model, Error> {
    let now = domain::now();
    let row = message::ActiveModel {
        id: Set(new_message_id()),
        wamid: Set(Some(inbound.wamid.clone())),
        direction: Set(Direction::Inbound.as_str().to_owned()),
        attention_id: Set(None),
        routing: Set(Routing::Pending.as_str().to_owned()),
        business_phone_number_id: Set(inbound.business_phone_number_id.clone()),
        customer_id: Set(inbound.customer.id.clone()),
        customer_wa_id: Set(inbound.customer.wa_id.clone()),
        customer_user_id: Set(inbound.customer.user_id.clone()),
        customer_name: Set(inbound.customer.name.clone()),
        message_type: Set(inbound.kind.clone()),
        text: Set(inbound.text.clone()),
        raw: Set(Some(inbound.raw.clone())),
        status: Set(MessageStatus::Received.as_str().to_owned()),
        error_code: Set(None),
        error_title: Set(None),
        error_detail: Set(None),
        sent_at: Set(inbound.time),
        agent_id: Set(None),
        idempotency_key: Set(None),
        sending_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    message::Entity::insert(row)
        .on_conflict_do_nothing_on([message::Column::Wamid])
        .exec_without_returning(db)
        .await?;
    find_by_wamid(db, &inbound.wamid)
        .await?
        .ok_or_else(|| Error::Internal(format!("message {} vanished after insert", inbound.wamid)))
}

pub async fn find_by_wamid<C: ConnectionTrait>(
    db: &C,
    wamid: &str,
) -> Result<Option<message::Model>, Error> {
    Ok(message::Entity::find()
        .filter(message::Column::Wamid.eq(wamid))
        .one(db)
        .await?)
}

pub async fn find_message<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
) -> Result<Option<message::Model>, Error> {
    Ok(message::Entity::find_by_id(id).one(db).await?)
}

pub async fn find_by_idempotency_key<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<message::Model>, Error> {
    Ok(message::Entity::find()
        .filter(message::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

/// Our ids of the messages known under these WhatsApp ids.
pub async fn ids_by_wamid<C: ConnectionTrait>(
    db: &C,
    wamids: &[String],
) -> Result<HashMap<String, Uuid>, Error> {
    if wamids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Option<String>)> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .column(message::Column::Wamid)
        .filter(message::Column::Wamid.is_in(wamids.iter().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, wamid)| Some((wamid?, id)))
        .collect())
}

/// Joins a message to its attention (first answer wins; the queue gives the
/// same attention for the same message anyway).
pub async fn set_attention<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    attention_id: Uuid,
) -> Result<(), Error> {
    message::Entity::update_many()
        .col_expr(message::Column::AttentionId, Expr::value(attention_id))
        .col_expr(
            message::Column::Routing,
            Expr::value(Routing::Routed.as_str()),
        )
        .col_expr(message::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::AttentionId.is_null())
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_unrouted<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<(), Error> {
    message::Entity::update_many()
        .col_expr(
            message::Column::Routing,
            Expr::value(Routing::Unrouted.as_str()),
        )
        .col_expr(message::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::AttentionId.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Stores an outbound message as PENDING unless one with the same idempotency
/// key exists; returns the stored one either way.
pub async fn insert_outbound<C: ConnectionTrait>(
    db: &C,
    row: message::ActiveModel,
    key: &str,
) -> Result<message::Model, Error> {
    message::Entity::insert(row)
        .on_conflict_do_nothing_on([message::Column::IdempotencyKey])
        .exec_without_returning(db)
        .await?;
    find_by_idempotency_key(db, key)
        .await?
        .ok_or_else(|| Error::Internal(format!("message with key {key} vanished after insert")))
}

/// Takes the right to call the Cloud API for a PENDING message that is due
/// (its backoff over, no live lease) for `lease`. Exactly one caller gets
/// `true` until the lease ends or the outcome is recorded.
pub async fn claim_send<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    lease: Duration,
) -> Result<bool, Error> {
    let now = domain::now();
    let result = message::Entity::update_many()
        .col_expr(
            message::Column::SendingUntil,
            Expr::value(Some(now + lease)),
        )
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::Status.eq(MessageStatus::Pending.as_str()))
        .filter(send_due(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Nobody holds the send and no backoff is running.
fn send_due(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(message::Column::SendingUntil.is_null())
        .add(message::Column::SendingUntil.lte(now))
}

/// PENDING messages whose send is due, oldest first: retries whose backoff
/// ended, and sends whose replica died holding them.
pub async fn due_sends<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>, Error> {
    Ok(message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .filter(message::Column::Status.eq(MessageStatus::Pending.as_str()))
        .filter(send_due(now))
        .order_by_asc(message::Column::CreatedAt)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// When the next PENDING message that is not due yet becomes due.
pub async fn next_send_time<C: ConnectionTrait>(db: &C) -> Result<Option<DateTime<Utc>>, Error> {
    Ok(message::Entity::find()
        .select_only()
        .column(message::Column::SendingUntil)
        .filter(message::Column::Status.eq(MessageStatus::Pending.as_str()))
        .filter(message::Column::SendingUntil.is_not_null())
        .order_by_asc(message::Column::SendingUntil)
        .limit(1)
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(db)
        .await?
        .flatten())
}

/// A try of a PENDING message hit temporary trouble: count it, say why, and
/// let nobody send it before `retry_at`.
pub async fn schedule_retry<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    attempts: i32,
    retry_at: DateTime<Utc>,
    reason: &str,
) -> Result<(), Error> {
    message::Entity::update_many()
        .col_expr(message::Column::SendAttempts, Expr::value(attempts))
        .col_expr(message::Column::SendError, Expr::value(reason.to_owned()))
        .col_expr(message::Column::SendingUntil, Expr::value(Some(retry_at)))
        .col_expr(message::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::Status.eq(MessageStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// The Cloud API accepted a PENDING message under `wamid`.
pub async fn mark_accepted<C: ConnectionTrait>(db: &C, id: Uuid, wamid: &str) -> Result<(), Error> {
    message::Entity::update_many()
        .col_expr(message::Column::Wamid, Expr::value(wamid.to_owned()))
        .col_expr(
            message::Column::Status,
            Expr::value(MessageStatus::Accepted.as_str()),
        )
        .col_expr(
            message::Column::SendingUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            message::Column::SendError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(message::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::Status.eq(MessageStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// A PENDING message will not be sent: WhatsApp refused it, or temporary
/// trouble outlasted every try.
pub async fn mark_refused<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    error: &MessageError,
) -> Result<(), Error> {
    message::Entity::update_many()
        .col_expr(
            message::Column::Status,
            Expr::value(MessageStatus::Failed.as_str()),
        )
        .col_expr(message::Column::ErrorCode, Expr::value(error.code))
        .col_expr(
            message::Column::ErrorTitle,
            Expr::value(error.title.clone()),
        )
        .col_expr(
            message::Column::ErrorDetail,
            Expr::value(error.detail.clone()),
        )
        .col_expr(
            message::Column::SendingUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(message::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::Status.eq(MessageStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// The newest customer message of an attention not yet marked read on WhatsApp.
pub async fn latest_unread_inbound<C: ConnectionTrait>(
    db: &C,
    attention_id: Uuid,
) -> Result<Option<message::Model>, Error> {
    Ok(message::Entity::find()
        .filter(message::Column::AttentionId.eq(attention_id))
        .filter(message::Column::Direction.eq(Direction::Inbound.as_str()))
        .filter(message::Column::MarkedReadAt.is_null())
        .filter(message::Column::Wamid.is_not_null())
        .order_by_desc(message::Column::SentAt)
        .order_by_desc(message::Column::Id)
        .one(db)
        .await?)
}

/// Records that WhatsApp was told the customer's messages up to `up_to` were
/// read; returns how many were newly marked.
pub async fn mark_read_up_to<C: ConnectionTrait>(
    db: &C,
    attention_id: Uuid,
    up_to: DateTime<Utc>,
) -> Result<u64, Error> {
    let result = message::Entity::update_many()
        .col_expr(
            message::Column::MarkedReadAt,
            Expr::value(Some(domain::now())),
        )
        .filter(message::Column::AttentionId.eq(attention_id))
        .filter(message::Column::Direction.eq(Direction::Inbound.as_str()))
        .filter(message::Column::MarkedReadAt.is_null())
        .filter(message::Column::SentAt.lte(up_to))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// One page of an attention's messages, newest first, strictly older than
/// `before` (time, id) when given.
pub async fn list_messages<C: ConnectionTrait>(
    db: &C,
    attention_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<message::Model>, Error> {
    let mut query = message::Entity::find().filter(message::Column::AttentionId.eq(attention_id));
    if let Some((time, id)) = before {
        query = query.filter(
            Condition::any().add(message::Column::SentAt.lt(time)).add(
                Condition::all()
                    .add(message::Column::SentAt.eq(time))
                    .add(message::Column::Id.lt(id)),
            ),
        );
    }
    Ok(query
        .order_by_desc(message::Column::SentAt)
        .order_by_desc(message::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

// ---- reactions ----

/// Keeps the reaction message `message_id` for its target, once.
pub async fn keep_reaction<C: ConnectionTrait>(
    db: &C,
    message_id: Uuid,
    target_wamid: &str,
    direction: Direction,
    emoji: &str,
    reacted_at: DateTime<Utc>,
) -> Result<(), Error> {
    let row = reaction::ActiveModel {
        message_id: Set(message_id),
        target_wamid: Set(target_wamid.to_owned()),
        direction: Set(direction.as_str().to_owned()),
        emoji: Set(emoji.to_owned()),
        reacted_at: Set(reacted_at),
        created_at: Set(domain::now()),
        ..Default::default()
    };
    reaction::Entity::insert(row)
        .on_conflict_do_nothing_on([reaction::Column::MessageId])
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Every reaction ever made on these messages, in arrival order.
pub async fn reactions_on<C: ConnectionTrait>(
    db: &C,
    wamids: &[String],
) -> Result<Vec<reaction::Model>, Error> {
    if wamids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(reaction::Entity::find()
        .filter(reaction::Column::TargetWamid.is_in(wamids.iter().cloned()))
        .order_by_asc(reaction::Column::Id)
        .all(db)
        .await?)
}

// ---- statuses ----

/// Keeps a status report once per (wamid, status).
pub async fn keep_status<C: ConnectionTrait>(db: &C, update: &StatusUpdate) -> Result<(), Error> {
    let row = status::ActiveModel {
        wamid: Set(update.wamid.clone()),
        status: Set(update.status.clone()),
        business_phone_number_id: Set(update.business_phone_number_id.clone()),
        recipient_id: Set(update.recipient_id.clone()),
        status_at: Set(update.time),
        error_code: Set(update.error.as_ref().map(|e| e.code)),
        error_title: Set(update.error.as_ref().map(|e| e.title.clone())),
        error_detail: Set(update.error.as_ref().map(|e| e.detail.clone())),
        raw: Set(Some(update.raw.clone())),
        received_at: Set(domain::now()),
    };
    status::Entity::insert(row)
        .on_conflict_do_nothing_on([status::Column::Wamid, status::Column::Status])
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Moves the outbound message `wamid` to `next` if that is a step forward;
/// a single guarded UPDATE, so concurrent and repeated reports converge.
pub async fn apply_status<C: ConnectionTrait>(
    db: &C,
    wamid: &str,
    next: MessageStatus,
    error: Option<&MessageError>,
) -> Result<bool, Error> {
    let from: Vec<&str> = MessageStatus::predecessors(next)
        .into_iter()
        .map(MessageStatus::as_str)
        .collect();
    if from.is_empty() {
        return Ok(false);
    }
    let mut update = message::Entity::update_many()
        .col_expr(message::Column::Status, Expr::value(next.as_str()))
        .col_expr(message::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(message::Column::Wamid.eq(wamid))
        .filter(message::Column::Direction.eq(Direction::Outbound.as_str()))
        .filter(message::Column::Status.is_in(from));
    if next == MessageStatus::Failed {
        let error = error.cloned().unwrap_or_default();
        update = update
            .col_expr(message::Column::ErrorCode, Expr::value(error.code))
            .col_expr(message::Column::ErrorTitle, Expr::value(error.title))
            .col_expr(message::Column::ErrorDetail, Expr::value(error.detail));
    }
    Ok(update.exec(db).await?.rows_affected > 0)
}

/// Applies every status kept for `wamid` (those that arrived before the
/// message was known under that id).
pub async fn apply_kept_statuses<C: ConnectionTrait>(db: &C, wamid: &str) -> Result<(), Error> {
    let kept = status::Entity::find()
        .filter(status::Column::Wamid.eq(wamid))
        .all(db)
        .await?;
    for row in kept {
        if let Some(next) = MessageStatus::from_webhook(&row.status) {
            let error = row.error_code.map(|code| MessageError {
                code,
                title: row.error_title.clone().unwrap_or_default(),
                detail: row.error_detail.clone().unwrap_or_default(),
            });
            apply_status(db, wamid, next, error.as_ref()).await?;
        }
    }
    Ok(())
}
