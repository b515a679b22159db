//! Reads and writes of `messaging_media`. As in `crate::store`: every write
//! that can be repeated is keyed on a unique column or guarded by a WHERE on
//! the state it expects, so replicas and retries converge without
//! transactions.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::checksum::Sha256;
use super::{MediaState, to_i64};
use crate::domain;
use crate::entity::media::{self, Column};
use crate::error::Error;

/// A new row with the columns every media row starts with.
pub fn new_row(id: Uuid, state: MediaState) -> media::ActiveModel {
    let now = domain::now();
    media::ActiveModel {
        id: Set(id),
        state: Set(state.as_str().to_owned()),
        message_id: Set(None),
        attention_id: Set(None),
        filename: Set(None),
        whatsapp_media_id: Set(None),
        expected_sha256: Set(None),
        sha256: Set(None),
        declared_size: Set(None),
        size_bytes: Set(None),
        received_bytes: Set(0),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        expires_at: Set(None),
        failure: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Inserts a received file's row once per message.
pub async fn insert_inbound<C: ConnectionTrait>(
    db: &C,
    row: media::ActiveModel,
) -> Result<(), Error> {
    media::Entity::insert(row)
        .on_conflict_do_nothing_on([Column::MessageId])
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub async fn insert<C: ConnectionTrait>(db: &C, row: media::ActiveModel) -> Result<(), Error> {
    media::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<media::Model>, Error> {
    Ok(media::Entity::find_by_id(id).one(db).await?)
}

/// The files of some messages (a page of a conversation).
pub async fn of_messages<C: ConnectionTrait>(
    db: &C,
    message_ids: &[Uuid],
) -> Result<Vec<media::Model>, Error> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(media::Entity::find()
        .filter(Column::MessageId.is_in(message_ids.iter().copied()))
        .all(db)
        .await?)
}

fn lease_free(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::LeaseUntil.is_null())
        .add(Column::LeaseUntil.lt(now))
}

fn update() -> sea_orm::UpdateMany<media::Entity> {
    media::Entity::update_many().col_expr(Column::UpdatedAt, Expr::value(domain::now()))
}

/// An update that also ends the lease: the step it records is over.
fn update_released() -> sea_orm::UpdateMany<media::Entity> {
    update().col_expr(Column::LeaseUntil, no_time())
}

/// An update that takes the lease for `lease` if no one holds it; whoever
/// changes the row (rows affected = 1) holds it.
fn update_leasing(now: DateTime<Utc>, lease: Duration) -> sea_orm::UpdateMany<media::Entity> {
    update()
        .col_expr(Column::LeaseUntil, Expr::value(Some(now + lease)))
        .filter(lease_free(now))
}

/// An update that records the file's bytes as stored.
fn update_stored(size: u64, sha256: Sha256) -> sea_orm::UpdateMany<media::Entity> {
    update()
        .col_expr(Column::State, Expr::value(MediaState::Stored.as_str()))
        .col_expr(Column::SizeBytes, Expr::value(to_i64(size)))
        .col_expr(Column::Sha256, Expr::value(sha256.hex()))
}

/// NULL for a time column.
fn no_time() -> Expr {
    Expr::value(Option::<DateTime<Utc>>::None)
}

fn in_state(id: Uuid, state: MediaState) -> Condition {
    Condition::all()
        .add(Column::Id.eq(id))
        .add(Column::State.eq(state.as_str()))
}

// ---- downloads ----

/// Received files waiting to be fetched whose backoff has passed and that no
/// replica is fetching, oldest first.
pub async fn due_downloads<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<media::Model>, Error> {
    Ok(media::Entity::find()
        .filter(Column::State.eq(MediaState::Downloading.as_str()))
        .filter(Column::NextAttemptAt.lte(now))
        .filter(lease_free(now))
        .order_by_asc(Column::NextAttemptAt)
        .limit(limit)
        .all(db)
        .await?)
}

/// Takes the download of a file for `lease` and counts the attempt. Exactly
/// one replica gets `true` until the lease ends or is released.
pub async fn claim_download<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    lease: Duration,
) -> Result<bool, Error> {
    let now = domain::now();
    let result = update_leasing(now, lease)
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(in_state(id, MediaState::Downloading))
        .filter(Column::NextAttemptAt.lte(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The fetched bytes are stored and checked.
pub async fn mark_downloaded<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    size: u64,
    sha256: Sha256,
    mime_type: &str,
) -> Result<(), Error> {
    update_stored(size, sha256)
        .col_expr(Column::LeaseUntil, no_time())
        .col_expr(Column::MimeType, Expr::value(mime_type.to_owned()))
        .col_expr(Column::Failure, Expr::value(Option::<String>::None))
        .filter(in_state(id, MediaState::Downloading))
        .exec(db)
        .await?;
    Ok(())
}

/// A failed attempt: try again at `at`, remembering why.
pub async fn retry_download_at<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), Error> {
    update_released()
        .col_expr(Column::NextAttemptAt, Expr::value(at))
        .col_expr(Column::Failure, Expr::value(reason.to_owned()))
        .filter(in_state(id, MediaState::Downloading))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives up on a file in state `from`, saying why.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    from: MediaState,
    reason: &str,
) -> Result<(), Error> {
    update_released()
        .col_expr(Column::State, Expr::value(MediaState::Failed.as_str()))
        .col_expr(Column::Failure, Expr::value(reason.to_owned()))
        .filter(in_state(id, from))
        .exec(db)
        .await?;
    Ok(())
}

// ---- uploads ----

/// Records a chunk `from..to` of an upload, only if the upload has exactly
/// `from` bytes: two calls with the same chunk cannot both move it.
pub async fn advance_upload<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    from: u64,
    to: u64,
    expires_at: DateTime<Utc>,
) -> Result<bool, Error> {
    let result = update()
        .col_expr(Column::ReceivedBytes, Expr::value(to_i64(to)))
        .col_expr(Column::ExpiresAt, Expr::value(Some(expires_at)))
        .filter(in_state(id, MediaState::Receiving))
        .filter(Column::ReceivedBytes.eq(to_i64(from)))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Takes the right to finish an upload (compose the file, upload it to
/// WhatsApp) for `lease`; one caller at a time.
pub async fn claim_finish<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    lease: Duration,
) -> Result<bool, Error> {
    let result = update_leasing(domain::now(), lease)
        .filter(Column::Id.eq(id))
        .filter(Column::State.is_in([MediaState::Receiving.as_str(), MediaState::Stored.as_str()]))
        .filter(Column::WhatsappMediaId.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Every chunk is in the complete file, which matched its checksum.
pub async fn mark_uploaded<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    size: u64,
    sha256: Sha256,
) -> Result<(), Error> {
    update_stored(size, sha256)
        .col_expr(Column::ExpiresAt, no_time())
        .filter(in_state(id, MediaState::Receiving))
        .exec(db)
        .await?;
    Ok(())
}

/// WhatsApp has the file under `whatsapp_media_id`.
pub async fn set_whatsapp_id<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    whatsapp_media_id: &str,
) -> Result<(), Error> {
    update_released()
        .col_expr(
            Column::WhatsappMediaId,
            Expr::value(whatsapp_media_id.to_owned()),
        )
        .col_expr(Column::Failure, Expr::value(Option::<String>::None))
        .filter(in_state(id, MediaState::Stored))
        .filter(Column::WhatsappMediaId.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Extends a lease that is still held (one released or expired stays so).
/// Sets the message of an outbound file that has none yet.
pub async fn link_message<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    message_id: Uuid,
) -> Result<(), Error> {
    media::Entity::update_many()
        .col_expr(Column::MessageId, Expr::value(message_id))
        .filter(Column::Id.eq(id))
        .filter(Column::MessageId.is_null())
        .exec(db)
        .await?;
    Ok(())
}

pub async fn renew_lease<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    lease: Duration,
) -> Result<(), Error> {
    let now = domain::now();
    update()
        .col_expr(Column::LeaseUntil, Expr::value(Some(now + lease)))
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseUntil.gte(now))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends a lease early: the step failed and the next call may try at once.
pub async fn release<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<(), Error> {
    update_released().filter(Column::Id.eq(id)).exec(db).await?;
    Ok(())
}

/// Uploads that stopped receiving chunks before `now`.
pub async fn abandoned_uploads<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<media::Model>, Error> {
    Ok(media::Entity::find()
        .filter(Column::State.eq(MediaState::Receiving.as_str()))
        .filter(Column::ExpiresAt.lt(now))
        .filter(lease_free(now))
        .limit(limit)
        .all(db)
        .await?)
}

/// Expires an abandoned upload unless a chunk (which moves `expires_at`) or a
/// finish (which takes the lease) got there first.
pub async fn expire<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let result = update()
        .col_expr(Column::State, Expr::value(MediaState::Expired.as_str()))
        .filter(in_state(id, MediaState::Receiving))
        .filter(Column::ExpiresAt.lt(now))
        .filter(lease_free(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Sets a time column of a file, as the passing of time would (tests).
#[cfg(test)]
pub async fn set_time<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    column: Column,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    media::Entity::update_many()
        .col_expr(column, Expr::value(at))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
