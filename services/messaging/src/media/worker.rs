//! The media worker of a replica: fetches received files as soon as they are
//! recorded and expires abandoned uploads. Every replica runs one; leases in
//! the database keep them off each other's files.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Media;

/// How often abandoned uploads are looked for.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);

/// Works until `shutdown`. A download cut by shutdown keeps its lease until
/// it runs out (about a minute); then any replica starts it again.
pub async fn run(media: Media, shutdown: CancellationToken) {
    let mut next_expiry = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = media.work(&mut next_expiry) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(media.limits.poll_interval) => {}
        }
    }
}

impl Media {
    async fn work(&self, next_expiry: &mut tokio::time::Instant) {
        // Until nothing is due: a burst of images is fetched without waiting
        // a poll interval between batches.
        loop {
            match self.download_due().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot look for media to download");
                    break;
                }
            }
        }
        if tokio::time::Instant::now() >= *next_expiry {
            *next_expiry = tokio::time::Instant::now() + EXPIRE_EVERY;
            match self.expire_abandoned().await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "abandoned media uploads expired"),
                Err(error) => tracing::warn!(%error, "cannot expire abandoned uploads"),
            }
        }
    }
}
