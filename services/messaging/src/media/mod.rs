//! Media files, received and sent. Knows nothing about protobuf.
//!
//! Received: when the processor stores an image, video, audio, document or
//! sticker message it calls [`track_inbound`], which records the file as
//! DOWNLOADING; the background worker fetches it from the Graph API into
//! storage, checks its SHA-256 and marks it STORED or FAILED.
//!
//! Sent: an agent's file arrives in chunks over unary calls (browsers speak
//! gRPC-Web, which has no client streaming), each stored as it comes; finishing
//! joins them into one file, checks size and SHA-256 and uploads it to
//! WhatsApp, whose id [`for_sending`] gives the send pipeline.
//!
//! The database row is the durable state; the bytes are in the object store.
//! Every step is safe to repeat and guarded by the state it expects, and the
//! slow ones (a download, an upload to WhatsApp) are leased, so several
//! replicas never do the same one at once and a crash only delays it.

mod checksum;
mod download;
mod graph;
mod kind;
mod storage;
mod store;
mod upload;
pub mod wire;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use atenciones_runtime::settings::MediaSettings;
use bytes::{Bytes, BytesMut};
use chrono::Duration;
use futures::stream::{BoxStream, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::Value;
use uuid::Uuid;

pub use kind::MediaKind;
pub use storage::Storage;
pub use upload::{Chunk, StartUpload};
pub use worker::run as run_worker;

use crate::domain::Direction;
use crate::entity::{media, message};
use crate::error::Error;
use crate::graph::Graph;

/// Where a media file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaState {
    /// Received; being fetched from WhatsApp.
    Downloading,
    /// An agent's upload, chunks arriving.
    Receiving,
    /// In storage (and, for an upload, checked).
    Stored,
    /// Could not be fetched, or the upload did not match its checksum.
    Failed,
    /// An upload abandoned before it was finished.
    Expired,
}

impl MediaState {
    const ALL: [Self; 5] = [
        Self::Downloading,
        Self::Receiving,
        Self::Stored,
        Self::Failed,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Downloading => "downloading",
            Self::Receiving => "receiving",
            Self::Stored => "stored",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl media::Model {
    pub fn state(&self) -> Option<MediaState> {
        MediaState::parse(&self.state)
    }

    /// A name to save the file under: its own (documents), or one made from
    /// its kind and type (a photo has none).
    pub fn download_name(&self) -> String {
        match &self.filename {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!(
                "{}-{}.{}",
                self.kind,
                self.id.simple(),
                MediaKind::extension(&self.mime_type)
            ),
        }
    }
}

/// How long a replica owns a slow step (a download, an upload to WhatsApp)
/// without renewing: a crashed owner delays the step by about this much.
const LEASE: Duration = Duration::seconds(60);
/// How often a live owner renews its lease.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// What the media code takes from settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_chunk_bytes: u32,
    pub download_chunk_bytes: usize,
    pub upload_expiry: Duration,
    pub poll_interval: std::time::Duration,
    pub download_attempts: u32,
}

/// Below and above these, download chunks are many tiny messages or strain
/// gRPC's default 4 MiB message limit.
const DOWNLOAD_CHUNK_BYTES: std::ops::RangeInclusive<usize> = 64 * 1024..=1024 * 1024;
/// An upload chunk and its envelope must fit gRPC's default 4 MiB message.
const MAX_UPLOAD_CHUNK_BYTES: u32 = 3 * 1024 * 1024;
/// Longer is a typo (and would push dates out of range).
const MAX_UPLOAD_EXPIRY_SECS: u64 = 7 * 24 * 3600;

impl From<&MediaSettings> for Limits {
    fn from(settings: &MediaSettings) -> Self {
        Self {
            max_chunk_bytes: settings.max_chunk_bytes.clamp(1, MAX_UPLOAD_CHUNK_BYTES),
            download_chunk_bytes: (settings.download_chunk_bytes as usize)
                .clamp(*DOWNLOAD_CHUNK_BYTES.start(), *DOWNLOAD_CHUNK_BYTES.end()),
            upload_expiry: Duration::seconds(
                i64::try_from(settings.upload_expiry_secs.clamp(1, MAX_UPLOAD_EXPIRY_SECS))
                    .unwrap_or(1),
            ),
            poll_interval: std::time::Duration::from_millis(settings.download_poll_ms.max(10)),
            download_attempts: settings.download_attempts.max(1),
        }
    }
}

/// The media side of the service: uploads, downloads, the background worker.
#[derive(Clone)]
pub struct Media {
    db: DatabaseConnection,
    storage: Storage,
    graph: Arc<Graph>,
    limits: Arc<Limits>,
}

impl Media {
    /// `graph` is the media side's own Graph client: file transfers are not
    /// messages, so they neither wait behind nor delay message sends.
    pub fn new(db: DatabaseConnection, storage: Storage, graph: Graph, limits: Limits) -> Self {
        Self {
            db,
            storage,
            graph: Arc::new(graph),
            limits: Arc::new(limits),
        }
    }

    /// A stored file of `attention_id` to stream to an agent: its record, then
    /// its bytes in chunks of the configured size (memory stays at about one
    /// chunk whatever the file's size).
    pub async fn open(
        &self,
        attention_id: Uuid,
        media_id: Uuid,
    ) -> Result<(media::Model, BoxStream<'static, Result<Bytes, Error>>), Error> {
        let file = store::find(&self.db, media_id)
            .await?
            .ok_or_else(not_found)?;
        if !self.belongs_to(&file, attention_id).await? {
            // Indistinguishable from a missing file: ids are not confirmed to
            // callers who may not see them.
            return Err(not_found());
        }
        match file.state() {
            Some(MediaState::Stored) => {}
            Some(MediaState::Downloading) => {
                return Err(Error::NotReady(
                    "the file is still being fetched from WhatsApp; retry shortly".into(),
                ));
            }
            Some(MediaState::Failed) => {
                return Err(Error::FailedPrecondition(format!(
                    "the file could not be stored: {}",
                    file.failure.as_deref().unwrap_or("unknown reason")
                )));
            }
            Some(MediaState::Receiving) => {
                return Err(Error::FailedPrecondition(
                    "the upload is not finished".into(),
                ));
            }
            Some(MediaState::Expired) | None => return Err(not_found()),
        }
        let pieces = self.storage.read(&Storage::file(file.id)).await?;
        Ok((file, rechunk(pieces, self.limits.download_chunk_bytes)))
    }

    /// [`of_messages`] on this service's database.
    /// What SendMedia needs of the uploaded file `media_id` (see [`for_sending`]).
    pub async fn for_sending(
        &self,
        attention_id: Uuid,
        media_id: Uuid,
    ) -> Result<OutgoingMedia, Error> {
        for_sending(&self.db, attention_id, media_id).await
    }

    /// Links an uploaded file to the message that sent it, so the message
    /// shows the file (and DownloadMedia serves it). The first message that
    /// sent a file keeps it; repeating the call changes nothing.
    pub async fn sent_in(&self, media_id: Uuid, message_id: Uuid) -> Result<(), Error> {
        store::link_message(&self.db, media_id, message_id).await
    }

    #[cfg(test)]
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Deletes the files of these messages or attentions, object first, then
    /// row, so a failure halfway leaves rows a retry finds. Returns how many.
    pub async fn delete_files(
        &self,
        message_ids: &[Uuid],
        attention_ids: &[Uuid],
    ) -> Result<u32, Error> {
        use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
        let files = media::Entity::find()
            .filter(
                Condition::any()
                    .add(media::Column::MessageId.is_in(message_ids.iter().copied()))
                    .add(media::Column::AttentionId.is_in(attention_ids.iter().copied())),
            )
            .all(&self.db)
            .await?;
        for file in &files {
            self.storage.delete(&Storage::file(file.id)).await?;
            media::Entity::delete_by_id(file.id).exec(&self.db).await?;
        }
        Ok(u32::try_from(files.len()).unwrap_or(u32::MAX))
    }

    pub async fn of_messages(
        &self,
        message_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, media::Model>, Error> {
        of_messages(&self.db, message_ids).await
    }

    /// Runs `work` on file `id`, whose lease the caller holds, renewing the
    /// lease until the work ends, however long the transfer takes.
    async fn leased<F: std::future::Future>(&self, id: Uuid, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = renew.tick() => {
                    if let Err(error) = store::renew_lease(&self.db, id, LEASE).await {
                        tracing::warn!(media_id = %id, %error, "cannot renew a media lease");
                    }
                }
            }
        }
    }

    async fn belongs_to(&self, file: &media::Model, attention_id: Uuid) -> Result<bool, Error> {
        if file.attention_id == Some(attention_id) {
            return Ok(true);
        }
        let Some(message_id) = file.message_id else {
            return Ok(false);
        };
        let message = crate::store::find_message(&self.db, message_id).await?;
        Ok(message.is_some_and(|m| m.attention_id == Some(attention_id)))
    }
}

/// Sizes are u64 on the wire and BIGINT in the database; files are far below
/// either limit.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn not_found() -> Error {
    Error::NotFound("no such media in this attention".into())
}

/// Cuts a stream of pieces of any size into chunks of `size` bytes (the last
/// one shorter).
fn rechunk<S>(pieces: S, size: usize) -> BoxStream<'static, Result<Bytes, Error>>
where
    S: futures::Stream<Item = Result<Bytes, object_store::Error>> + Send + 'static,
{
    let state = (pieces.boxed(), BytesMut::new(), false);
    futures::stream::unfold(state, move |(mut pieces, mut buffer, done)| async move {
        if done {
            return None;
        }
        loop {
            if buffer.len() >= size {
                let chunk = buffer.split_to(size).freeze();
                return Some((Ok(chunk), (pieces, buffer, false)));
            }
            match pieces.next().await {
                Some(Ok(piece)) => buffer.extend_from_slice(&piece),
                Some(Err(error)) => return Some((Err(error.into()), (pieces, buffer, true))),
                None if buffer.is_empty() => return None,
                None => {
                    let chunk = buffer.split().freeze();
                    return Some((Ok(chunk), (pieces, buffer, true)));
                }
            }
        }
    })
    .boxed()
}

// ---- the seams other parts of the service call ----

/// Records the file of a stored inbound message for the worker to fetch;
/// nothing for other types. Idempotent (one file per message), so the
/// processor can call it every time it handles the message.
pub async fn track_inbound<C: ConnectionTrait>(
    db: &C,
    message: &message::Model,
) -> Result<(), Error> {
    let Some(kind) = MediaKind::parse(&message.message_type) else {
        return Ok(());
    };
    let object = message.raw.as_ref().and_then(|raw| raw.get(kind.as_str()));
    let field = |name: &str| match object.and_then(|o| o.get(name)) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let whatsapp_media_id = field("id");
    let state = if whatsapp_media_id.is_some() {
        MediaState::Downloading
    } else {
        MediaState::Failed
    };
    let mut row = store::new_row(Uuid::new_v4(), state);
    row.direction = sea_orm::Set(Direction::Inbound.as_str().to_owned());
    row.message_id = sea_orm::Set(Some(message.id));
    row.business_phone_number_id = sea_orm::Set(message.business_phone_number_id.clone());
    row.kind = sea_orm::Set(kind.as_str().to_owned());
    row.mime_type = sea_orm::Set(field("mime_type").unwrap_or_default());
    row.filename = sea_orm::Set(field("filename"));
    row.expected_sha256 = sea_orm::Set(field("sha256"));
    if whatsapp_media_id.is_none() {
        row.failure = sea_orm::Set(Some("the webhook carried no media id".into()));
    }
    row.whatsapp_media_id = sea_orm::Set(whatsapp_media_id);
    store::insert_inbound(db, row).await
}

/// The files of a page of messages, by message id: the read path joins them
/// into the messages' content (media id, state, size).
pub async fn of_messages<C: ConnectionTrait>(
    db: &C,
    message_ids: &[Uuid],
) -> Result<HashMap<Uuid, media::Model>, Error> {
    Ok(store::of_messages(db, message_ids)
        .await?
        .into_iter()
        .filter_map(|file| Some((file.message_id?, file)))
        .collect())
}

/// What a media send needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMedia {
    /// The id to put in the Graph request (`{"image": {"id": …}}`).
    pub whatsapp_media_id: String,
    pub kind: MediaKind,
    pub mime_type: String,
    pub filename: Option<String>,
}

/// The uploaded file `media_id` of `attention_id`, ready to send; NOT_FOUND
/// for another attention's file, FAILED_PRECONDITION for an upload that is
/// not finished.
pub async fn for_sending<C: ConnectionTrait>(
    db: &C,
    attention_id: Uuid,
    media_id: Uuid,
) -> Result<OutgoingMedia, Error> {
    let file = store::find(db, media_id)
        .await?
        .filter(|f| f.attention_id == Some(attention_id))
        .ok_or_else(not_found)?;
    let kind = MediaKind::parse(&file.kind)
        .ok_or_else(|| Error::Internal(format!("media {media_id} has kind {:?}", file.kind)))?;
    match file.whatsapp_media_id {
        Some(whatsapp_media_id) if file.state() == Some(MediaState::Stored) => Ok(OutgoingMedia {
            whatsapp_media_id,
            kind,
            mime_type: file.mime_type,
            filename: file.filename,
        }),
        _ => Err(Error::FailedPrecondition(
            "the upload is not finished: call FinishMediaUpload first".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn chunks_have_the_configured_size_whatever_the_pieces() {
        let pieces: Vec<Result<Bytes, object_store::Error>> = vec![
            Ok(Bytes::from(vec![1u8; 70_000])),
            Ok(Bytes::from(vec![2u8; 10])),
            Ok(Bytes::from(vec![3u8; 200_000])),
        ];
        let chunks: Vec<Bytes> = rechunk(futures::stream::iter(pieces), 65_536)
            .try_collect()
            .await
            .expect("chunks");
        let sizes: Vec<usize> = chunks.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [65_536, 65_536, 65_536, 65_536, 7_866]);
        let all: Vec<u8> = chunks.concat();
        assert_eq!(all.len(), 270_010);
        assert_eq!(all[69_999..70_001], [1, 2]);
    }

    #[tokio::test]
    async fn an_empty_file_has_no_chunks_and_errors_end_the_stream() {
        let empty = futures::stream::iter(Vec::<Result<Bytes, object_store::Error>>::new());
        assert_eq!(rechunk(empty, 65_536).count().await, 0);
        let failing = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(object_store::Error::NotImplemented {
                operation: "test".into(),
                implementer: "test".into(),
            }),
        ]);
        let results: Vec<_> = rechunk(failing, 65_536).collect().await;
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
    }
}
