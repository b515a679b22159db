//! An agent's file, uploaded in chunks over unary calls and then handed to
//! WhatsApp.
//!
//! Each chunk is stored as its own object under the offset it starts at and
//! counted with a guarded UPDATE (`received_bytes = offset`), so chunks may
//! reach any replica, a repeated chunk changes nothing and a gap is refused.
//! Finishing streams the chunks in order into one file while hashing it,
//! then streams that file to the Graph API: memory stays bounded whatever
//! the file's size.

use bytes::Bytes;
use futures::StreamExt;
use sea_orm::Set;
use uuid::Uuid;

use super::checksum::Sha256;
use super::graph::Upload;
use super::storage::{FileWriter, Storage, Written};
use super::{LEASE, Media, MediaKind, MediaState, not_found, store, to_i64, to_u64};
use crate::domain::{self, Direction};
use crate::entity::media;
use crate::error::{Error, Violation};
use crate::graph::SendError;

/// A checked request to begin an upload.
#[derive(Debug, Clone)]
pub struct StartUpload {
    pub attention_id: Uuid,
    pub business_phone_number_id: String,
    pub kind: MediaKind,
    pub mime_type: String,
    pub filename: Option<String>,
    pub size: u64,
    pub sha256: Sha256,
}

/// One chunk of an upload.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub attention_id: Uuid,
    pub upload_id: Uuid,
    pub offset: u64,
    pub data: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadTicket {
    pub upload_id: Uuid,
    pub max_chunk_bytes: u32,
}

impl Media {
    /// Records a new upload; its chunks are welcome until it expires.
    pub async fn start_upload(&self, command: StartUpload) -> Result<UploadTicket, Error> {
        let upload_id = Uuid::new_v4();
        let mut row = store::new_row(upload_id, MediaState::Receiving);
        row.direction = Set(Direction::Outbound.as_str().to_owned());
        row.attention_id = Set(Some(command.attention_id));
        row.business_phone_number_id = Set(command.business_phone_number_id);
        row.kind = Set(command.kind.as_str().to_owned());
        row.mime_type = Set(command.mime_type);
        row.filename = Set(command.filename);
        row.expected_sha256 = Set(Some(command.sha256.hex()));
        row.declared_size = Set(Some(to_i64(command.size)));
        row.expires_at = Set(Some(domain::now() + self.limits.upload_expiry));
        store::insert(&self.db, row).await?;
        Ok(UploadTicket {
            upload_id,
            max_chunk_bytes: self.limits.max_chunk_bytes,
        })
    }

    /// Stores a chunk; returns the bytes received so far (the next offset).
    pub async fn upload_chunk(&self, chunk: Chunk) -> Result<u64, Error> {
        let length = chunk.data.len() as u64;
        if length == 0 || length > u64::from(self.limits.max_chunk_bytes) {
            return Err(invalid(
                "data",
                format!(
                    "has {length} bytes; a chunk has 1 to {} bytes",
                    self.limits.max_chunk_bytes
                ),
            ));
        }
        let upload = self.upload(chunk.attention_id, chunk.upload_id).await?;
        let declared = to_u64(upload.declared_size.unwrap_or_default());
        let received = to_u64(upload.received_bytes);
        let end = chunk.offset.saturating_add(length);
        if end > declared {
            return Err(invalid(
                "data",
                format!("ends at byte {end}, past the {declared} bytes declared"),
            ));
        }
        match upload.state() {
            Some(MediaState::Receiving) => {}
            // Finished: every byte is here, so this chunk is a repeat.
            Some(MediaState::Stored) => return Ok(received),
            _ => return Err(failed_upload(&upload)),
        }
        if chunk.offset > received {
            return Err(invalid(
                "offset",
                format!(
                    "leaves a gap: {received} bytes are received, so the next chunk starts there"
                ),
            ));
        }
        if end <= received {
            // Sent again (a retry after a lost answer): already stored.
            return Ok(received);
        }
        // A chunk that overlaps the received bytes adds only what is new.
        let start = received;
        let new = chunk
            .data
            .slice(usize::try_from(start - chunk.offset).unwrap_or(0)..);
        // Object first, count second: a crash in between leaves an object the
        // retry overwrites (same offset, same key), never a count without bytes.
        self.storage
            .put(&Storage::chunk(upload.id, start), new)
            .await?;
        let expires_at = domain::now() + self.limits.upload_expiry;
        if store::advance_upload(&self.db, upload.id, start, end, expires_at).await? {
            return Ok(end);
        }
        // Another call moved the upload meanwhile.
        let now = self.upload(chunk.attention_id, chunk.upload_id).await?;
        let received = to_u64(now.received_bytes);
        if received >= end {
            Ok(received)
        } else {
            Err(Error::Aborted(format!(
                "another chunk was stored at the same time; {received} bytes are received, resend from there"
            )))
        }
    }

    /// Checks and stores the whole file and uploads it to WhatsApp; returns
    /// the stored media. Repeating it returns the same media and uploads
    /// nothing again.
    pub async fn finish_upload(
        &self,
        attention_id: Uuid,
        upload_id: Uuid,
    ) -> Result<media::Model, Error> {
        let upload = self.upload(attention_id, upload_id).await?;
        if upload.whatsapp_media_id.is_some() {
            return Ok(upload);
        }
        match upload.state() {
            Some(MediaState::Receiving) => {
                let declared = to_u64(upload.declared_size.unwrap_or_default());
                let received = to_u64(upload.received_bytes);
                if received < declared {
                    return Err(Error::FailedPrecondition(format!(
                        "{received} of the {declared} bytes declared are received; send the rest first"
                    )));
                }
            }
            Some(MediaState::Stored) => {}
            _ => return Err(failed_upload(&upload)),
        }
        if !store::claim_finish(&self.db, upload.id, LEASE).await? {
            let now = self.upload(attention_id, upload_id).await?;
            if now.whatsapp_media_id.is_some() {
                return Ok(now);
            }
            return Err(Error::NotReady(
                "the upload is being finished by an earlier call; retry shortly".into(),
            ));
        }
        // Its own task: a caller that gives up (a timeout, a closed tab) must
        // not cut the upload to WhatsApp half-way; a retry then finds it done
        // or still leased.
        let this = self.clone();
        tokio::spawn(async move { this.finish_leased(upload).await })
            .await
            .map_err(|e| Error::Internal(format!("finishing an upload: {e}")))?
    }

    async fn finish_leased(&self, upload: media::Model) -> Result<media::Model, Error> {
        let result = self.leased(upload.id, self.store_and_send(&upload)).await;
        if result.is_err() {
            // The next finish may try again at once (the error goes to the caller).
            if let Err(release) = store::release(&self.db, upload.id).await {
                tracing::warn!(media_id = %upload.id, %release, "cannot release an upload's lease");
            }
        }
        result
    }

    async fn store_and_send(&self, upload: &media::Model) -> Result<media::Model, Error> {
        let mut size = to_u64(upload.size_bytes.unwrap_or_default());
        if upload.state() == Some(MediaState::Receiving) {
            let written = self.join_chunks(upload).await?;
            store::mark_uploaded(&self.db, upload.id, written.size, written.sha256).await?;
            size = written.size;
            self.forget_chunks(upload.id).await;
        }
        let file = self.storage.read(&Storage::file(upload.id)).await?;
        let description = Upload {
            mime_type: upload.mime_type.clone(),
            filename: upload.download_name(),
            size,
        };
        let sent = self
            .graph
            .upload_media(
                &upload.business_phone_number_id,
                description,
                reqwest::Body::wrap_stream(file),
            )
            .await;
        match sent {
            Ok(whatsapp_media_id) => {
                store::set_whatsapp_id(&self.db, upload.id, &whatsapp_media_id).await?;
                store::find(&self.db, upload.id)
                    .await?
                    .ok_or_else(|| Error::Internal(format!("media {} vanished", upload.id)))
            }
            Err(SendError::Refused(refusal)) => {
                tracing::info!(media_id = %upload.id, %refusal, "WhatsApp refused an upload");
                Err(Error::Refused(refusal))
            }
            Err(SendError::Temporary(trouble)) => Err(Error::Unavailable(trouble.reason)),
        }
    }

    /// Streams the chunks, in order, into the media's file and checks it
    /// against the declared size and SHA-256. A mismatch fails the upload
    /// (its bytes are wrong; the client starts again).
    async fn join_chunks(&self, upload: &media::Model) -> Result<Written, Error> {
        let declared = to_u64(upload.declared_size.unwrap_or_default());
        let key = Storage::file(upload.id);
        let mut writer = self.storage.writer(&key).await?;
        let broken = match self.copy_chunks(upload.id, declared, &mut writer).await {
            Ok(broken) => broken,
            Err(error) => {
                writer.abort().await;
                return Err(error);
            }
        };
        let reason = match broken {
            Some(reason) => {
                writer.abort().await;
                reason
            }
            None => {
                let written = writer.finish().await?;
                let expected = upload.expected_sha256.as_deref().and_then(Sha256::from_hex);
                if written.size == declared && Some(written.sha256) == expected {
                    return Ok(written);
                }
                format!(
                    "the {} bytes received have SHA-256 {}, not the {} declared",
                    written.size,
                    written.sha256,
                    upload.expected_sha256.as_deref().unwrap_or("(none)")
                )
            }
        };
        store::mark_failed(&self.db, upload.id, MediaState::Receiving, &reason).await?;
        if let Err(error) = self.storage.delete(&key).await {
            tracing::warn!(media_id = %upload.id, %error, "cannot delete a rejected upload");
        }
        self.forget_chunks(upload.id).await;
        Err(invalid("sha256", format!("{reason}; start a new upload")))
    }

    /// Copies the chunks into `writer` in order. `Some(why)` when they do not
    /// join up to `size` bytes: different chunks sent at once for the same
    /// offset overwrite each other's object, a client error this detects
    /// rather than prevents.
    async fn copy_chunks(
        &self,
        upload_id: Uuid,
        size: u64,
        writer: &mut FileWriter,
    ) -> Result<Option<String>, Error> {
        while writer.len() < size {
            let offset = writer.len();
            let key = Storage::chunk(upload_id, offset);
            let mut pieces = match self.storage.read(&key).await {
                Ok(pieces) => pieces,
                Err(Error::Storage(object_store::Error::NotFound { .. })) => {
                    return Ok(Some(format!(
                        "no chunk starts at byte {offset} (were chunks sent at the same time?)"
                    )));
                }
                Err(error) => return Err(error),
            };
            while let Some(piece) = pieces.next().await {
                writer.write(piece?).await?;
            }
            if writer.len() == offset {
                return Ok(Some(format!("the chunk at byte {offset} is empty")));
            }
        }
        Ok(None)
    }

    /// Chunks are only needed until the file is joined; a failure to delete
    /// them wastes space, nothing else.
    async fn forget_chunks(&self, upload_id: Uuid) {
        if let Err(error) = self.storage.delete_upload(upload_id).await {
            tracing::warn!(%upload_id, %error, "cannot delete an upload's chunks");
        }
    }

    /// Expires uploads that stopped receiving chunks and deletes their chunks.
    pub async fn expire_abandoned(&self) -> Result<usize, Error> {
        let now = domain::now();
        let mut expired = 0;
        for upload in store::abandoned_uploads(&self.db, now, 100).await? {
            if store::expire(&self.db, upload.id, now).await? {
                self.forget_chunks(upload.id).await;
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// An upload of `attention_id`; NOT_FOUND for anything else.
    async fn upload(&self, attention_id: Uuid, upload_id: Uuid) -> Result<media::Model, Error> {
        store::find(&self.db, upload_id)
            .await?
            .filter(|u| {
                u.direction == Direction::Outbound.as_str()
                    && u.attention_id == Some(attention_id)
                    && u.state() != Some(MediaState::Expired)
            })
            .ok_or_else(|| Error::NotFound("unknown or expired upload".into()))
    }
}

fn failed_upload(upload: &media::Model) -> Error {
    match upload.state() {
        Some(MediaState::Failed) => Error::FailedPrecondition(format!(
            "the upload failed ({}); start a new one",
            upload.failure.as_deref().unwrap_or("unknown reason")
        )),
        _ => not_found(),
    }
}

fn invalid(field: &str, description: String) -> Error {
    Error::InvalidArgument(vec![Violation::new(field, description)])
}

#[cfg(test)]
mod tests {
    use atenciones_test_support::{TestDatabase, on_both_databases};

    use super::*;
    use crate::entity::media::Column;
    use crate::media::checksum::Hashing;
    use crate::media::for_sending;
    use crate::testkit::{
        ACCESS_TOKEN, API_VERSION, MediaHarness as Harness, media_harness as harness, violated,
    };

    const NUMBER: &str = "1122334455667";
    const CHUNK: usize = 64 * 1024;
    /// The attention every upload of these tests is for.
    const ATTENTION: Uuid = Uuid::from_u128(42);

    /// Bytes that differ from chunk to chunk, so a misplaced chunk shows.
    fn file(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn sha256(bytes: &[u8]) -> Sha256 {
        let mut hashing = Hashing::default();
        hashing.update(bytes);
        hashing.finish()
    }

    impl Harness {
        async fn start(&self, bytes: &[u8], declared_sha256: Sha256) -> Uuid {
            let ticket = self
                .media
                .start_upload(StartUpload {
                    attention_id: ATTENTION,
                    business_phone_number_id: NUMBER.into(),
                    kind: MediaKind::Document,
                    mime_type: "application/pdf".into(),
                    filename: Some("contrato.pdf".into()),
                    size: bytes.len() as u64,
                    sha256: declared_sha256,
                })
                .await
                .expect("started");
            assert_eq!(ticket.max_chunk_bytes, CHUNK as u32);
            ticket.upload_id
        }

        async fn chunk(&self, upload_id: Uuid, offset: usize, data: &[u8]) -> Result<u64, Error> {
            self.media
                .upload_chunk(Chunk {
                    attention_id: ATTENTION,
                    upload_id,
                    offset: offset as u64,
                    data: Bytes::copy_from_slice(data),
                })
                .await
        }

        /// Sends `bytes` in chunks of the largest size.
        async fn send_all(&self, upload_id: Uuid, bytes: &[u8]) {
            for (i, piece) in bytes.chunks(CHUNK).enumerate() {
                self.chunk(upload_id, i * CHUNK, piece)
                    .await
                    .expect("chunk");
            }
        }
    }

    async fn a_file_uploaded_in_chunks_reaches_whatsapp_once(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = file(3 * CHUNK + 1000);
        let upload = h.start(&bytes, sha256(&bytes)).await;

        assert_eq!(
            h.chunk(upload, 0, &bytes[..CHUNK]).await.expect("first"),
            CHUNK as u64
        );
        // The answer was lost; the client sends the chunk again.
        assert_eq!(
            h.chunk(upload, 0, &bytes[..CHUNK]).await.expect("repeat"),
            CHUNK as u64
        );
        let gap = h
            .chunk(upload, 2 * CHUNK, &bytes[2 * CHUNK..3 * CHUNK])
            .await;
        assert_eq!(violated(gap), ["offset"]);
        // A chunk overlapping what was received adds only the new bytes.
        let overlapping = &bytes[CHUNK / 2..CHUNK / 2 + CHUNK];
        assert_eq!(
            h.chunk(upload, CHUNK / 2, overlapping)
                .await
                .expect("overlap"),
            (CHUNK / 2 + CHUNK) as u64
        );
        let rest = CHUNK / 2 + CHUNK;
        for (i, piece) in bytes[rest..].chunks(CHUNK).enumerate() {
            h.chunk(upload, rest + i * CHUNK, piece)
                .await
                .expect("chunk");
        }
        let past_the_end = h.chunk(upload, bytes.len(), b"x").await;
        assert_eq!(violated(past_the_end), ["data"]);

        let finished = h
            .media
            .finish_upload(ATTENTION, upload)
            .await
            .expect("finished");
        assert_eq!(finished.state(), Some(MediaState::Stored));
        assert_eq!(
            finished.whatsapp_media_id.as_deref(),
            Some("media.uploaded.1")
        );
        assert_eq!(finished.size_bytes, Some(bytes.len() as i64));
        assert_eq!(finished.sha256, Some(sha256(&bytes).hex()));

        let uploaded = h.graph.uploaded();
        assert_eq!(uploaded.len(), 1);
        assert_eq!(
            uploaded[0].bytes, bytes,
            "the file WhatsApp got is the one sent"
        );
        assert_eq!(
            (
                uploaded[0].version.as_str(),
                uploaded[0].phone_number_id.as_str(),
                uploaded[0].authorization.clone(),
                uploaded[0].messaging_product.as_str(),
                uploaded[0].mime_type.as_str(),
                uploaded[0].filename.as_str(),
                uploaded[0].content_type.as_str(),
            ),
            (
                API_VERSION,
                NUMBER,
                format!("Bearer {ACCESS_TOKEN}"),
                "whatsapp",
                "application/pdf",
                "contrato.pdf",
                "application/pdf"
            )
        );

        // Finishing again, and a late repeated chunk, change nothing.
        let again = h
            .media
            .finish_upload(ATTENTION, upload)
            .await
            .expect("again");
        assert_eq!(again, finished);
        assert_eq!(
            h.chunk(upload, 0, &bytes[..CHUNK]).await.expect("late"),
            bytes.len() as u64
        );
        assert_eq!(h.graph.uploaded().len(), 1);
        // The chunks are gone; the file is kept for downloads.
        assert!(
            h.media
                .storage
                .read(&Storage::chunk(upload, 0))
                .await
                .is_err()
        );

        let outgoing = for_sending(&h.media.db, ATTENTION, upload)
            .await
            .expect("sendable");
        assert_eq!(outgoing.whatsapp_media_id, "media.uploaded.1");
        assert_eq!(outgoing.kind, MediaKind::Document);
        assert_eq!(outgoing.filename.as_deref(), Some("contrato.pdf"));
        assert!(matches!(
            for_sending(&h.media.db, Uuid::new_v4(), upload).await,
            Err(Error::NotFound(_))
        ));
    }
    on_both_databases!(a_file_uploaded_in_chunks_reaches_whatsapp_once);

    async fn a_file_that_does_not_match_its_checksum_is_refused(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = file(CHUNK + 10);
        let upload = h.start(&bytes, sha256(b"something else")).await;
        h.send_all(upload, &bytes).await;
        let refused = h.media.finish_upload(ATTENTION, upload).await;
        assert_eq!(violated(refused), ["sha256"]);
        assert!(h.graph.uploaded().is_empty(), "nothing reached WhatsApp");
        // The upload is over: its bytes are wrong.
        assert!(matches!(
            h.media.finish_upload(ATTENTION, upload).await,
            Err(Error::FailedPrecondition(_))
        ));
        assert!(matches!(
            h.chunk(upload, 0, &bytes[..10]).await,
            Err(Error::FailedPrecondition(_))
        ));
        assert!(h.media.storage.read(&Storage::file(upload)).await.is_err());
    }
    on_both_databases!(a_file_that_does_not_match_its_checksum_is_refused);

    async fn chunks_that_overwrote_each_other_fail_the_upload_clearly(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = file(CHUNK + 10);
        let upload = h.start(&bytes, sha256(&bytes)).await;
        h.send_all(upload, &bytes).await;
        // What two different chunks sent at once for offset 0 can leave: an
        // object shorter than the count says.
        h.media
            .storage
            .put(
                &Storage::chunk(upload, 0),
                Bytes::from(bytes[..10].to_vec()),
            )
            .await
            .expect("overwritten");
        let refused = h.media.finish_upload(ATTENTION, upload).await;
        assert_eq!(violated(refused), ["sha256"]);
        let failed = store::find(&h.db, upload)
            .await
            .expect("find")
            .expect("row");
        assert_eq!(failed.state(), Some(MediaState::Failed));
        assert!(
            failed
                .failure
                .as_deref()
                .unwrap_or_default()
                .contains("no chunk starts at byte 10"),
            "{:?}",
            failed.failure
        );
        assert!(h.graph.uploaded().is_empty());
    }
    on_both_databases!(chunks_that_overwrote_each_other_fail_the_upload_clearly);

    async fn an_upload_finishes_only_when_every_byte_is_there(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = file(CHUNK + 10);
        let upload = h.start(&bytes, sha256(&bytes)).await;
        h.chunk(upload, 0, &bytes[..CHUNK]).await.expect("chunk");
        assert!(matches!(
            h.media.finish_upload(ATTENTION, upload).await,
            Err(Error::FailedPrecondition(_))
        ));
        let too_big = h.chunk(upload, CHUNK, &vec![0; CHUNK + 1]).await;
        assert_eq!(violated(too_big), ["data"]);
        h.chunk(upload, CHUNK, &bytes[CHUNK..]).await.expect("rest");
        h.media
            .finish_upload(ATTENTION, upload)
            .await
            .expect("finished");
    }
    on_both_databases!(an_upload_finishes_only_when_every_byte_is_there);

    async fn another_attentions_upload_is_not_found(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = file(100);
        let upload = h.start(&bytes, sha256(&bytes)).await;
        let stranger = Chunk {
            attention_id: Uuid::new_v4(),
            upload_id: upload,
            offset: 0,
            data: Bytes::from(bytes.clone()),
        };
        assert!(matches!(
            h.media.upload_chunk(stranger).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            h.media.finish_upload(Uuid::new_v4(), upload).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            h.media.open(Uuid::new_v4(), upload).await,
            Err(Error::NotFound(_))
        ));
    }
    on_both_databases!(another_attentions_upload_is_not_found);

    async fn an_abandoned_upload_expires_and_its_chunks_go(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = file(CHUNK + 10);
        let abandoned = h.start(&bytes, sha256(&bytes)).await;
        h.chunk(abandoned, 0, &bytes[..CHUNK]).await.expect("chunk");
        let alive = h.start(&bytes, sha256(&bytes)).await;
        // Time passes for the first one only.
        let past = domain::now() - chrono::Duration::seconds(1);
        store::set_time(&h.db, abandoned, Column::ExpiresAt, past)
            .await
            .expect("update");
        assert_eq!(h.media.expire_abandoned().await.expect("expired"), 1);
        assert!(matches!(
            h.chunk(abandoned, CHUNK, &bytes[CHUNK..]).await,
            Err(Error::NotFound(_))
        ));
        assert!(
            h.media
                .storage
                .read(&Storage::chunk(abandoned, 0))
                .await
                .is_err()
        );
        h.send_all(alive, &bytes).await;
        h.media
            .finish_upload(ATTENTION, alive)
            .await
            .expect("the other is fine");
        assert_eq!(h.media.expire_abandoned().await.expect("nothing"), 0);
    }
    on_both_databases!(an_abandoned_upload_expires_and_its_chunks_go);

    async fn a_sent_file_can_be_downloaded_in_its_attention(db: TestDatabase) {
        use futures::TryStreamExt;
        let h = harness(db).await;
        let bytes = file(200_000);
        let upload = h.start(&bytes, sha256(&bytes)).await;
        assert!(matches!(
            h.media.open(ATTENTION, upload).await,
            Err(Error::FailedPrecondition(_))
        ));
        h.send_all(upload, &bytes).await;
        h.media
            .finish_upload(ATTENTION, upload)
            .await
            .expect("finished");
        let (info, chunks) = h.media.open(ATTENTION, upload).await.expect("open");
        assert_eq!(info.download_name(), "contrato.pdf");
        let chunks: Vec<Bytes> = chunks.try_collect().await.expect("bytes");
        assert!(chunks.iter().all(|c| c.len() <= 64 * 1024));
        assert_eq!(chunks.concat(), bytes);
    }
    on_both_databases!(a_sent_file_can_be_downloaded_in_its_attention);
}
