//! Where media bytes live: one `object_store` for every replica — a local
//! directory for the embedded default, S3, GCS or Azure in production. Files
//! are written and read as streams, never held whole in memory.
//!
//! Keys: `media/<media id>` for a complete file; `uploads/<upload id>/<offset>`
//! for the chunks of an upload in progress (offsets zero-padded, so a chunk is
//! found by the offset the database says comes next).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use atenciones_runtime::settings::MediaStore;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, WriteMultipart};
use uuid::Uuid;

use super::checksum::{Hashing, Sha256};
use crate::error::Error;

/// Parts a file is written in: object stores take multipart uploads in parts
/// of at least 5 MiB (S3's minimum); this much is buffered per part.
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts in flight at once while writing one file.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.store)
    }
}

impl Storage {
    /// Opens the configured store. Cloud stores take their credentials from
    /// the environment (as their SDKs do: AWS_*, GOOGLE_*, AZURE_*), then from
    /// `options`; an option object_store does not know is an error, not a
    /// silent no-op.
    pub fn open(location: &MediaStore, options: &HashMap<String, String>) -> anyhow::Result<Self> {
        // Cloud stores build a reqwest client, which needs the process's TLS
        // provider (ring, as for the Graph client); installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store: Arc<dyn ObjectStore> = match location {
            MediaStore::Directory(dir) => Arc::new(local(dir)?),
            MediaStore::Url(text) => {
                let url = url::Url::parse(text)
                    .with_context(|| format!("media.store_url {text:?} is not a URL"))?;
                let (scheme, prefix) = ObjectStoreScheme::parse(&url)
                    .with_context(|| format!("media.store_url {text:?}"))?;
                let store: Arc<dyn ObjectStore> = match scheme {
                    ObjectStoreScheme::Local => {
                        let dir = url.to_file_path().map_err(|()| {
                            anyhow::anyhow!("media.store_url {text:?} is not an absolute path")
                        })?;
                        // The prefix is the directory itself.
                        return Ok(Self::new(Arc::new(local(&dir)?)));
                    }
                    ObjectStoreScheme::Memory => Arc::new(InMemory::new()),
                    ObjectStoreScheme::AmazonS3 => {
                        let mut builder = AmazonS3Builder::from_env().with_url(text.as_str());
                        for (key, value) in options {
                            builder = builder.with_config(option(key)?, value);
                        }
                        Arc::new(builder.build()?)
                    }
                    ObjectStoreScheme::GoogleCloudStorage => {
                        let mut builder =
                            GoogleCloudStorageBuilder::from_env().with_url(text.as_str());
                        for (key, value) in options {
                            builder = builder.with_config(option(key)?, value);
                        }
                        Arc::new(builder.build()?)
                    }
                    ObjectStoreScheme::MicrosoftAzure => {
                        let mut builder = MicrosoftAzureBuilder::from_env().with_url(text.as_str());
                        for (key, value) in options {
                            builder = builder.with_config(option(key)?, value);
                        }
                        Arc::new(builder.build()?)
                    }
                    other => anyhow::bail!("media.store_url: {other:?} stores are not supported"),
                };
                if prefix.as_ref().is_empty() {
                    store
                } else {
                    Arc::new(PrefixStore::new(store, prefix))
                }
            }
        };
        Ok(Self::new(store))
    }

    fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// A store in memory (tests).
    #[cfg(test)]
    pub fn memory() -> Self {
        Self::new(Arc::new(InMemory::new()))
    }

    /// Where the complete file of media `id` is.
    pub fn file(id: Uuid) -> Path {
        Path::from(format!("media/{id}"))
    }

    fn uploads(upload_id: Uuid) -> Path {
        Path::from(format!("uploads/{upload_id}"))
    }

    /// Where the chunk of an upload that starts at `offset` is.
    pub fn chunk(upload_id: Uuid, offset: u64) -> Path {
        Self::uploads(upload_id).join(format!("{offset:020}"))
    }

    /// Writes a small object (an upload chunk) whole.
    pub async fn put(&self, key: &Path, bytes: Bytes) -> Result<(), Error> {
        self.store.put(key, bytes.into()).await?;
        Ok(())
    }

    /// The bytes of an object, as they arrive.
    pub async fn read(
        &self,
        key: &Path,
    ) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, Error> {
        Ok(self.store.get(key).await?.into_stream())
    }

    /// Begins writing an object from a stream of pieces.
    pub async fn writer(&self, key: &Path) -> Result<FileWriter, Error> {
        let upload = self.store.put_multipart(key).await?;
        Ok(FileWriter {
            upload: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
            hashing: Hashing::default(),
        })
    }

    /// Deletes an object; one already gone is fine.
    pub async fn delete(&self, key: &Path) -> Result<(), Error> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes every chunk of an upload.
    pub async fn delete_upload(&self, upload_id: Uuid) -> Result<(), Error> {
        let prefix = Self::uploads(upload_id);
        let locations = self.store.list(Some(&prefix)).map_ok(|meta| meta.location);
        self.store
            .delete_stream(locations.boxed())
            .try_for_each(|_| async { Ok(()) })
            .await
            .or_else(|error| match error {
                object_store::Error::NotFound { .. } => Ok(()),
                error => Err(error.into()),
            })
    }
}

fn local(dir: &std::path::Path) -> anyhow::Result<LocalFileSystem> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the media directory {}", dir.display()))?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .with_context(|| format!("opening the media directory {}", dir.display()))?;
    Ok(store
        // The database calls a file STORED once written: it must survive a
        // crash, as an object in a cloud store would.
        .with_fsync(true)
        // Deleting an upload's chunks removes its directory too.
        .with_automatic_cleanup(true))
}

/// A store option by object_store's name for it (`aws_region`, `region`, …).
fn option<K>(key: &str) -> anyhow::Result<K>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    key.to_ascii_lowercase()
        .parse()
        .with_context(|| format!("media.store_options: unknown option {key:?}"))
}

/// A file being written: hashed and counted as it goes, in bounded memory.
/// Nothing is visible under the key until [`FileWriter::finish`].
pub struct FileWriter {
    upload: WriteMultipart,
    hashing: Hashing,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub sha256: Sha256,
}

impl FileWriter {
    pub async fn write(&mut self, piece: Bytes) -> Result<(), Error> {
        // Back-pressure: never more than a few parts buffered.
        self.upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.hashing.update(&piece);
        self.upload.put(piece);
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hashing.len()
    }

    pub async fn finish(self) -> Result<Written, Error> {
        let size = self.hashing.len();
        self.upload.finish().await?;
        Ok(Written {
            size,
            sha256: self.hashing.finish(),
        })
    }

    /// Gives up: the parts written are discarded.
    pub async fn abort(self) {
        if let Err(error) = self.upload.abort().await {
            tracing::warn!(%error, "cannot abort a partial media write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(storage: &Storage, key: &Path) -> Vec<u8> {
        storage
            .read(key)
            .await
            .expect("read")
            .try_fold(Vec::new(), |mut all, piece| async move {
                all.extend_from_slice(&piece);
                Ok(all)
            })
            .await
            .expect("bytes")
    }

    #[tokio::test]
    async fn a_file_written_in_pieces_reads_back_whole_with_its_checksum() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = Storage::open(
            &MediaStore::Directory(dir.path().join("media")),
            &HashMap::new(),
        )
        .expect("open");
        let id = Uuid::new_v4();
        let mut writer = storage.writer(&Storage::file(id)).await.expect("writer");
        let piece = Bytes::from(vec![7u8; 3 * 1024 * 1024]);
        for _ in 0..3 {
            writer.write(piece.clone()).await.expect("write");
        }
        assert_eq!(writer.len(), 9 * 1024 * 1024);
        let written = writer.finish().await.expect("finish");
        let bytes = read_all(&storage, &Storage::file(id)).await;
        let mut hashing = Hashing::default();
        hashing.update(&bytes);
        assert_eq!(written.size, bytes.len() as u64);
        assert_eq!(written.sha256, hashing.finish());
        assert!(dir.path().join("media/media").join(id.to_string()).exists());
    }

    #[tokio::test]
    async fn an_aborted_write_leaves_nothing() {
        let storage = Storage::memory();
        let key = Storage::file(Uuid::new_v4());
        let mut writer = storage.writer(&key).await.expect("writer");
        writer
            .write(Bytes::from_static(b"partial"))
            .await
            .expect("write");
        writer.abort().await;
        assert!(matches!(
            storage.read(&key).await,
            Err(Error::Storage(object_store::Error::NotFound { .. }))
        ));
    }

    #[tokio::test]
    async fn an_uploads_chunks_are_deleted_together() {
        let storage = Storage::memory();
        let upload = Uuid::new_v4();
        let other = Uuid::new_v4();
        for offset in [0, 10, 20] {
            storage
                .put(
                    &Storage::chunk(upload, offset),
                    Bytes::from_static(b"0123456789"),
                )
                .await
                .expect("put");
        }
        storage
            .put(&Storage::chunk(other, 0), Bytes::from_static(b"x"))
            .await
            .expect("put");
        storage.delete_upload(upload).await.expect("delete");
        storage.delete_upload(upload).await.expect("twice is fine");
        assert!(storage.read(&Storage::chunk(upload, 10)).await.is_err());
        assert_eq!(read_all(&storage, &Storage::chunk(other, 0)).await, b"x");
        storage
            .delete(&Storage::chunk(other, 0))
            .await
            .expect("delete");
        storage
            .delete(&Storage::chunk(other, 0))
            .await
            .expect("a missing object is fine");
    }

    #[test]
    fn chunk_keys_sort_by_offset() {
        let id = Uuid::nil();
        assert_eq!(
            Storage::chunk(id, 1_048_576).as_ref(),
            "uploads/00000000-0000-0000-0000-000000000000/00000000000001048576"
        );
    }

    #[test]
    fn store_urls_are_checked_at_start_up() {
        let none = HashMap::new();
        assert!(Storage::open(&MediaStore::Url("not a url".into()), &none).is_err());
        assert!(Storage::open(&MediaStore::Url("ftp://host/x".into()), &none).is_err());
        assert!(Storage::open(&MediaStore::Url("memory:///".into()), &none).is_ok());
        let options = HashMap::from([("no_such_option".to_owned(), "x".to_owned())]);
        assert!(Storage::open(&MediaStore::Url("s3://bucket/media".into()), &options).is_err());
        let options = HashMap::from([
            ("aws_region".to_owned(), "eu-west-1".to_owned()),
            ("aws_access_key_id".to_owned(), "id".to_owned()),
            ("aws_secret_access_key".to_owned(), "secret".to_owned()),
        ]);
        assert!(Storage::open(&MediaStore::Url("s3://bucket/media".into()), &options).is_ok());
    }
}
