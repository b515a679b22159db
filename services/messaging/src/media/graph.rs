//! The Graph API's media endpoints, on the service's one Graph client:
//! `GET /<media id>` (a short-lived download URL and the file's checksum),
//! `GET <that url>` (the bytes, same bearer) and
//! `POST /<phone number id>/media` (multipart upload → an id to send).

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;

use reqwest::Method;

use crate::graph::{self, Graph, SendError, Trouble};

/// Longest one file transfer may take (100 MB documents on a slow link); the
/// client's default timeout is sized for small JSON calls.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// What the Graph API says about a media id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Where the bytes are, for about five minutes.
    pub url: String,
    pub mime_type: String,
    /// Base64 SHA-256 of the bytes at `url`.
    pub sha256: String,
    pub file_size: Option<u64>,
}

#[derive(Deserialize)]
struct InfoResponse {
    #[serde(default)]
    url: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    sha256: String,
    /// Meta has sent it both as a number and as a string.
    #[serde(default)]
    file_size: Option<Value>,
}

#[derive(Deserialize)]
struct UploadResponse {
    #[serde(default)]
    id: String,
}

impl Graph {
    /// The download URL and checksum of a media id WhatsApp gave us.
    pub async fn media_info(&self, media_id: &str) -> Result<MediaInfo, SendError> {
        if media_id.is_empty() || !media_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            // It would become a path segment of the URL. Refused as the Graph
            // API refuses an id that names nothing (code 100): it never will.
            return Err(SendError::Refused(crate::domain::MessageError {
                code: 100,
                title: format!("{media_id:?} is not a WhatsApp media id"),
                detail: String::new(),
            }));
        }
        let url = self.url(media_id);
        let bytes = self.call(self.request(Method::GET, &url), &url).await?;
        let info: InfoResponse = serde_json::from_slice(&bytes).map_err(|e| {
            SendError::Temporary(Trouble::new(format!("{url} answered unreadable JSON: {e}")))
        })?;
        if info.url.is_empty() {
            return Err(SendError::Temporary(Trouble::new(format!(
                "{url} answered without a url"
            ))));
        }
        let file_size = match info.file_size {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Ok(MediaInfo {
            url: info.url,
            mime_type: info.mime_type,
            sha256: info.sha256,
            file_size,
        })
    }

    /// The bytes at a download URL from [`Graph::media_info`], as they arrive.
    pub async fn media_bytes(
        &self,
        url: &str,
    ) -> Result<impl Stream<Item = reqwest::Result<Bytes>> + use<>, SendError> {
        let response = self
            .request(Method::GET, url)
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .await
            .map_err(|e| SendError::Temporary(Trouble::new(format!("GET {url}: {e}"))))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(graph::classify(status, &body));
        }
        Ok(response.bytes_stream())
    }

    /// Uploads a file for a business number to send; returns WhatsApp's id.
    pub async fn upload_media(
        &self,
        phone_number_id: &str,
        file: Upload,
        body: reqwest::Body,
    ) -> Result<String, SendError> {
        let url = self.url(&format!("{phone_number_id}/media"));
        let part = reqwest::multipart::Part::stream_with_length(body, file.size)
            .file_name(file.filename)
            .mime_str(&file.mime_type)
            .map_err(|e| {
                SendError::Temporary(Trouble::new(format!("MIME type {:?}: {e}", file.mime_type)))
            })?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", file.mime_type)
            .part("file", part);
        let request = self
            .request(Method::POST, &url)
            .timeout(TRANSFER_TIMEOUT)
            .multipart(form);
        let bytes = self.call(request, &url).await?;
        serde_json::from_slice::<UploadResponse>(&bytes)
            .ok()
            .map(|r| r.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                SendError::Temporary(Trouble::new(format!("{url} answered without an id")))
            })
    }
}

/// A file to upload to WhatsApp.
#[derive(Debug, Clone)]
pub struct Upload {
    pub mime_type: String,
    pub filename: String,
    pub size: u64,
}
