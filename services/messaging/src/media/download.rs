//! Fetching received files from WhatsApp into storage.
//!
//! WhatsApp keeps a received file for a while only (its download URL lasts
//! five minutes, its media id seven days), so the worker fetches it as soon as
//! the message is stored: metadata first (a fresh URL and the checksum), then
//! the bytes, streamed into storage while hashed. A failed attempt is retried
//! with backoff; an answer that cannot change (an unknown or expired id, a
//! checksum mismatch, a file too large) fails the file at once.

use futures::StreamExt;

use super::checksum::Sha256;
use super::storage::{FileWriter, Storage};
use super::{LEASE, Media, MediaState, store};
use crate::domain;
use crate::entity::media;
use crate::error::Error;
use crate::graph::SendError;
use crate::processor::backoff;

/// Files fetched at once by one replica.
const CONCURRENT: usize = 4;
/// Files read per query.
const BATCH: u64 = 20;
/// Largest received file kept: WhatsApp's largest media (documents, 100 MB)
/// with room to spare; anything bigger is not a WhatsApp file.
const MAX_RECEIVED_BYTES: u64 = 128 * 1024 * 1024;

/// Why an attempt did not store the file.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt later.
    Transient(String),
    /// Will not change: the file is FAILED.
    Permanent(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Transient(error.to_string())
    }
}

impl Failure {
    /// The same failure, worth another attempt.
    fn transient(self) -> Self {
        match self {
            Self::Transient(reason) | Self::Permanent(reason) => Self::Transient(reason),
        }
    }
}

/// Graph API code for an object that does not exist (or no longer does: an
/// expired media id). Other refusals (a bad token, a rate limit) may pass.
const NO_SUCH_OBJECT: i64 = 100;

impl From<SendError> for Failure {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Refused(refusal) if refusal.code == NO_SUCH_OBJECT => {
                Self::Permanent(format!("WhatsApp: {refusal}"))
            }
            SendError::Refused(refusal) => Self::Transient(format!("WhatsApp: {refusal}")),
            SendError::Temporary(trouble) => Self::Transient(trouble.reason),
        }
    }
}

impl Media {
    /// Fetches the files that are due, a few at a time. Returns how many were
    /// attempted by this replica.
    pub async fn download_due(&self) -> Result<usize, Error> {
        let due = store::due_downloads(&self.db, domain::now(), BATCH).await?;
        let attempted = futures::stream::iter(due)
            .map(|file| async move {
                match store::claim_download(&self.db, file.id, LEASE).await {
                    Ok(true) => {
                        self.download(file).await;
                        1
                    }
                    // Another replica took it.
                    Ok(false) => 0,
                    Err(error) => {
                        tracing::warn!(media_id = %file.id, %error, "cannot claim a download");
                        0
                    }
                }
            })
            .buffer_unordered(CONCURRENT)
            .fold(0, |total, n| async move { total + n })
            .await;
        Ok(attempted)
    }

    /// One attempt at a claimed file, and its outcome recorded.
    async fn download(&self, file: media::Model) {
        // The claim counted this attempt.
        let attempts = file.attempts.saturating_add(1);
        let outcome = match self.leased(file.id, self.fetch(&file)).await {
            Ok(()) => {
                tracing::info!(media_id = %file.id, "received media stored");
                Ok(())
            }
            Err(Failure::Permanent(reason)) => {
                tracing::warn!(media_id = %file.id, %reason, "received media cannot be stored");
                store::mark_failed(&self.db, file.id, MediaState::Downloading, &reason).await
            }
            Err(Failure::Transient(reason))
                if u32::try_from(attempts).unwrap_or(u32::MAX) >= self.limits.download_attempts =>
            {
                let reason = format!("{reason} (gave up after {attempts} attempts)");
                tracing::warn!(media_id = %file.id, %reason, "received media cannot be fetched");
                store::mark_failed(&self.db, file.id, MediaState::Downloading, &reason).await
            }
            Err(Failure::Transient(reason)) => {
                let retry_in = backoff(attempts);
                tracing::info!(media_id = %file.id, %reason, ?retry_in, "media download failed; will retry");
                store::retry_download_at(&self.db, file.id, domain::now() + retry_in, &reason).await
            }
        };
        if let Err(error) = outcome {
            // The lease runs out and another attempt is made.
            tracing::warn!(media_id = %file.id, %error, "cannot record a download's outcome");
        }
    }

    async fn fetch(&self, file: &media::Model) -> Result<(), Failure> {
        let media_id = file.whatsapp_media_id.as_deref().unwrap_or_default();
        let info = self.graph.media_info(media_id).await?;
        let limit = match info.file_size {
            Some(size) if size > MAX_RECEIVED_BYTES => {
                return Err(Failure::Permanent(format!(
                    "the file has {size} bytes, more than the {MAX_RECEIVED_BYTES} kept"
                )));
            }
            Some(size) => size,
            None => MAX_RECEIVED_BYTES,
        };
        // The URL's own failures are transient: the next attempt asks for a
        // fresh one.
        let bytes = self
            .graph
            .media_bytes(&info.url)
            .await
            .map_err(|error| Failure::from(error).transient())?;
        let key = Storage::file(file.id);
        let mut writer = self.storage.writer(&key).await?;
        if let Err(failure) = pour(bytes, &mut writer, limit).await {
            writer.abort().await;
            return Err(failure);
        }
        let written = writer.finish().await?;

        let refused = match info.file_size {
            Some(size) if written.size != size => Some(Failure::Transient(format!(
                "received {} of the {size} bytes announced",
                written.size
            ))),
            _ => mismatch(file, &info.sha256, written.sha256).map(Failure::Permanent),
        };
        if let Some(failure) = refused {
            self.storage.delete(&key).await?;
            return Err(failure);
        }
        let mime_type = if file.mime_type.is_empty() {
            &info.mime_type
        } else {
            &file.mime_type
        };
        store::mark_downloaded(&self.db, file.id, written.size, written.sha256, mime_type).await?;
        Ok(())
    }
}

/// Streams the bytes into `writer`, refusing more than `limit`.
async fn pour<S>(mut bytes: S, writer: &mut FileWriter, limit: u64) -> Result<(), Failure>
where
    S: futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    while let Some(piece) = bytes.next().await {
        let piece = piece.map_err(|e| Failure::Transient(format!("reading the file: {e}")))?;
        if writer.len() + piece.len() as u64 > limit {
            return Err(Failure::Transient(format!(
                "the file is larger than the {limit} bytes announced"
            )));
        }
        writer.write(piece).await?;
    }
    Ok(())
}

/// Why the stored bytes are not the file WhatsApp announced, if they are
/// not. Both checksums are checked: the metadata's (which describes the URL's
/// bytes) and the webhook's. One that is not a SHA-256 at all (Meta's examples
/// carry placeholders) cannot be checked and is only logged.
fn mismatch(file: &media::Model, from_graph: &str, actual: Sha256) -> Option<String> {
    let announced = [
        ("the Graph API", Some(from_graph)),
        ("the webhook", file.expected_sha256.as_deref()),
    ];
    for (source, text) in announced {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            continue;
        };
        match Sha256::from_base64(text) {
            Some(expected) if expected != actual => {
                return Some(format!(
                    "checksum mismatch: the file's SHA-256 is {}, {source} announced {}",
                    actual.base64(),
                    text
                ));
            }
            Some(_) => {}
            None => {
                tracing::warn!(media_id = %file.id, %source, sha256 = %text, "announced checksum is not a SHA-256; not checked");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use atenciones_test_support::{TestDatabase, on_both_databases};
    use futures::TryStreamExt;
    use sea_orm::{EntityTrait, PaginatorTrait};
    use uuid::Uuid;

    use super::*;
    use crate::entity::media::{Column, Entity};
    use crate::testkit::{
        self, FIXTURE_MEDIA, MediaHarness as Harness, image, media_harness as harness,
    };

    impl Harness {
        async fn reload(&self, id: Uuid) -> media::Model {
            store::find(&self.db, id)
                .await
                .expect("find")
                .expect("exists")
        }

        /// Ends a file's backoff, as time would.
        async fn make_due(&self, id: Uuid) {
            store::set_time(&self.db, id, Column::NextAttemptAt, domain::now())
                .await
                .expect("update");
        }
    }

    /// An image webhook whose media is `media_id` announced with `sha256`.
    fn image_webhook(wamid: &str, media_id: &str, sha256: &str) -> Vec<u8> {
        serde_json::json!({"entry": [{"changes": [{"value": {
            "metadata": {"phone_number_id": "1122334455667"},
            "contacts": [{"wa_id": "5491100000000", "profile": {"name": "Ana"}}],
            "messages": [{"from": "5491100000000", "id": wamid, "timestamp": "1697043379",
                "type": "image", "image": {"id": media_id, "mime_type": "image/png", "sha256": sha256}}]
        }}]}]})
        .to_string()
        .into_bytes()
    }

    async fn a_received_image_is_fetched_checked_and_stored(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = image();
        h.graph.add_media(FIXTURE_MEDIA, &bytes, "image/jpeg");
        let file = h.fixture("inbound_image.json").await;
        assert_eq!(file.state(), Some(MediaState::Downloading));
        assert_eq!(file.whatsapp_media_id.as_deref(), Some(FIXTURE_MEDIA));
        // The webhook delivered twice: still one file.
        h.fixture("inbound_image.json").await;
        assert_eq!(Entity::find().count(&h.db).await.expect("count"), 1);

        assert_eq!(h.media.download_due().await.expect("downloads"), 1);
        let stored = h.reload(file.id).await;
        assert_eq!(stored.state(), Some(MediaState::Stored));
        assert_eq!(stored.size_bytes, Some(bytes.len() as i64));
        assert_eq!(stored.mime_type, "image/jpeg");
        assert_eq!(stored.lease_until, None);
        assert_eq!(h.graph.media_requests(), [FIXTURE_MEDIA, FIXTURE_MEDIA]);
        let kept: Vec<u8> = h
            .media
            .storage
            .read(&Storage::file(file.id))
            .await
            .expect("stored")
            .map_ok(|piece| piece.to_vec())
            .try_concat()
            .await
            .expect("bytes");
        assert_eq!(kept, bytes);
        assert_eq!(h.media.download_due().await.expect("nothing left"), 0);
    }
    on_both_databases!(a_received_image_is_fetched_checked_and_stored);

    async fn a_file_that_does_not_match_its_checksum_fails(db: TestDatabase) {
        let h = harness(db).await;
        let bytes = image();
        let other = super::super::checksum::Sha256::from_hex(&"ab".repeat(32)).expect("digest");
        // The Graph API announces a checksum the bytes do not have…
        h.graph
            .add_media_with_sha256("111", &bytes, "image/png", &other.base64());
        let by_graph = h.receive(&image_webhook("wamid.a", "111", "")).await;
        // …or the webhook did.
        h.graph.add_media("222", &bytes, "image/png");
        let by_webhook = h
            .receive(&image_webhook("wamid.b", "222", &other.base64()))
            .await;
        assert_eq!(h.media.download_due().await.expect("downloads"), 2);
        for file in [by_graph, by_webhook] {
            let failed = h.reload(file.id).await;
            assert_eq!(failed.state(), Some(MediaState::Failed));
            let reason = failed.failure.unwrap_or_default();
            assert!(reason.starts_with("checksum mismatch"), "{reason}");
            assert!(h.media.storage.read(&Storage::file(file.id)).await.is_err());
        }
        assert_eq!(h.media.download_due().await.expect("no retry"), 0);
    }
    on_both_databases!(a_file_that_does_not_match_its_checksum_fails);

    async fn an_expired_media_id_fails_at_once_with_whatsapps_reason(db: TestDatabase) {
        let h = harness(db).await;
        let file = h.fixture("inbound_image.json").await;
        assert_eq!(h.media.download_due().await.expect("downloads"), 1);
        let failed = h.reload(file.id).await;
        assert_eq!(failed.state(), Some(MediaState::Failed));
        let reason = failed.failure.unwrap_or_default();
        assert!(reason.contains("does not exist"), "{reason}");
        assert_eq!(h.graph.media_requests().len(), 1, "not retried");
        // The agent who asks for it is told why it is not there.
        let attention = Uuid::new_v4();
        let message_id = failed.message_id.expect("a message");
        crate::store::set_attention(&h.db, message_id, attention)
            .await
            .expect("routed");
        let Err(Error::FailedPrecondition(why)) = h.media.open(attention, file.id).await else {
            panic!("a failed file cannot be opened")
        };
        assert!(why.contains("does not exist"), "{why}");
    }
    on_both_databases!(an_expired_media_id_fails_at_once_with_whatsapps_reason);

    async fn a_failed_attempt_is_retried_after_a_backoff(db: TestDatabase) {
        let h = harness(db).await;
        h.graph.add_media(FIXTURE_MEDIA, &image(), "image/jpeg");
        h.graph.fail_media_requests(1);
        let file = h.fixture("inbound_image.json").await;
        assert_eq!(h.media.download_due().await.expect("attempt"), 1);
        let waiting = h.reload(file.id).await;
        assert_eq!(waiting.state(), Some(MediaState::Downloading));
        assert_eq!(waiting.attempts, 1);
        assert!(waiting.failure.is_some());
        assert!(waiting.next_attempt_at > domain::now());
        assert_eq!(h.media.download_due().await.expect("backing off"), 0);
        h.make_due(file.id).await;
        assert_eq!(h.media.download_due().await.expect("attempt"), 1);
        let stored = h.reload(file.id).await;
        assert_eq!(stored.state(), Some(MediaState::Stored));
        assert_eq!(stored.failure, None);
    }
    on_both_databases!(a_failed_attempt_is_retried_after_a_backoff);

    async fn a_file_that_never_comes_fails_after_the_last_attempt(db: TestDatabase) {
        let h = harness(db).await;
        h.graph.add_media(FIXTURE_MEDIA, &image(), "image/jpeg");
        h.graph.fail_media_requests(100);
        let file = h.fixture("inbound_image.json").await;
        let attempts = testkit::media_limits().download_attempts;
        for _ in 0..attempts {
            h.make_due(file.id).await;
            assert_eq!(h.media.download_due().await.expect("attempt"), 1);
        }
        let failed = h.reload(file.id).await;
        assert_eq!(failed.state(), Some(MediaState::Failed));
        let reason = failed.failure.unwrap_or_default();
        assert!(
            reason.contains(&format!("gave up after {attempts} attempts")),
            "{reason}"
        );
    }
    on_both_databases!(a_file_that_never_comes_fails_after_the_last_attempt);

    async fn two_replicas_fetch_a_file_once(db: TestDatabase) {
        let h = harness(db).await;
        h.graph.add_media(FIXTURE_MEDIA, &image(), "image/jpeg");
        let file = h.fixture("inbound_image.json").await;
        let other = Media::new(
            h.db.clone(),
            h.media.storage.clone(),
            testkit::graph(&h.graph),
            testkit::media_limits(),
        );
        let (a, b) = tokio::join!(h.media.download_due(), other.download_due());
        assert_eq!(a.expect("a") + b.expect("b"), 1);
        assert_eq!(
            h.graph.media_requests().len(),
            2,
            "metadata and bytes, once"
        );
        assert_eq!(h.reload(file.id).await.state(), Some(MediaState::Stored));
    }
    on_both_databases!(two_replicas_fetch_a_file_once);

    async fn a_lease_is_renewed_only_while_held(db: TestDatabase) {
        let h = harness(db).await;
        let file = h.fixture("inbound_image.json").await;
        assert!(
            store::claim_download(&h.db, file.id, LEASE)
                .await
                .expect("claim")
        );
        assert!(
            !store::claim_download(&h.db, file.id, LEASE)
                .await
                .expect("claim")
        );
        let first = h.reload(file.id).await.lease_until.expect("held");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store::renew_lease(&h.db, file.id, LEASE)
            .await
            .expect("renew");
        let renewed = h.reload(file.id).await.lease_until.expect("held");
        assert!(renewed > first, "{renewed} > {first}");
        store::release(&h.db, file.id).await.expect("release");
        store::renew_lease(&h.db, file.id, LEASE)
            .await
            .expect("renew");
        assert_eq!(
            h.reload(file.id).await.lease_until,
            None,
            "a released lease stays so"
        );
    }
    on_both_databases!(a_lease_is_renewed_only_while_held);

    #[test]
    fn only_a_missing_object_is_final() {
        let refusal = |code| {
            SendError::Refused(crate::domain::MessageError {
                code,
                title: "t".into(),
                detail: String::new(),
            })
        };
        assert!(matches!(Failure::from(refusal(100)), Failure::Permanent(_)));
        // A bad token or a rate limit: fixed by time or by ops, not final.
        for code in [190, 4, 80007, 130429] {
            assert!(
                matches!(Failure::from(refusal(code)), Failure::Transient(_)),
                "{code}"
            );
        }
        assert!(matches!(
            Failure::from(SendError::Temporary(crate::graph::Trouble::new("down"))),
            Failure::Transient(_)
        ));
        assert!(matches!(
            Failure::from(refusal(100)).transient(),
            Failure::Transient(_)
        ));
    }

    async fn a_media_message_without_an_id_is_failed_at_once(db: TestDatabase) {
        let h = harness(db).await;
        let body = br#"{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"1"},
            "messages":[{"id":"wamid.noid","from":"5491","type":"video","video":{"mime_type":"video/mp4"}}]}}]}]}"#;
        let file = h.receive(body).await;
        assert_eq!(file.state(), Some(MediaState::Failed));
        assert_eq!(file.kind, "video");
        assert_eq!(h.media.download_due().await.expect("nothing"), 0);
    }
    on_both_databases!(a_media_message_without_an_id_is_failed_at_once);
}
