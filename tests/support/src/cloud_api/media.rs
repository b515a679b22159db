//! The fake Cloud API's media endpoints:
//! - `GET /{version}/{media_id}` → `{url, mime_type, sha256, file_size, id}`
//!   for a file the test added, or Meta's 404 error for any other id (which is
//!   what WhatsApp answers for an expired id too);
//! - `GET /whatsapp_business/attachments/?mid=…` → the bytes (bearer required,
//!   as on Meta's CDN);
//! - `POST /{version}/{phone_number_id}/media` (multipart) → `{id}`, recording
//!   what was uploaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::lock;

/// Larger than WhatsApp's largest upload (100 MB documents).
const MAX_UPLOAD_BYTES: usize = 110 * 1024 * 1024;
const DOWNLOAD_PATH: &str = "/whatsapp_business/attachments/";

/// A file the fake serves.
#[derive(Debug, Clone)]
struct File {
    bytes: Vec<u8>,
    mime_type: String,
    /// What the metadata announces (base64); the real checksum unless a test
    /// asked for a wrong one.
    sha256: String,
}

/// A file the fake received on its upload endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedMedia {
    pub version: String,
    pub phone_number_id: String,
    pub authorization: String,
    /// The `messaging_product` field.
    pub messaging_product: String,
    /// The `type` field.
    pub mime_type: String,
    /// The file part's name and content type.
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub(super) struct MediaShared {
    base_url: String,
    files: HashMap<String, File>,
    /// Answers 500 to this many more metadata requests.
    failures: usize,
    /// Metadata and download requests, in order (media ids).
    requests: Vec<String>,
    uploaded: Vec<UploadedMedia>,
}

pub(super) type Shared = Arc<Mutex<MediaShared>>;

pub(super) fn router(base_url: &str) -> (Router, Shared) {
    let shared = Arc::new(Mutex::new(MediaShared {
        base_url: base_url.to_owned(),
        ..Default::default()
    }));
    let router = Router::new()
        .route("/{version}/{media_id}", get(info))
        .route(DOWNLOAD_PATH, get(download))
        .route(
            "/{version}/{phone_number_id}/media",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .with_state(shared.clone());
    (router, shared)
}

impl super::CloudApi {
    /// Serves `bytes` as WhatsApp media `media_id`, with its real checksum.
    pub fn add_media(&self, media_id: &str, bytes: &[u8], mime_type: &str) {
        let sha256 = STANDARD.encode(Sha256::digest(bytes));
        self.add_media_with_sha256(media_id, bytes, mime_type, &sha256);
    }

    /// Serves `bytes` as media `media_id` but announces `sha256` (base64) as
    /// its checksum: a file that does not match what WhatsApp says.
    pub fn add_media_with_sha256(
        &self,
        media_id: &str,
        bytes: &[u8],
        mime_type: &str,
        sha256: &str,
    ) {
        let file = File {
            bytes: bytes.to_vec(),
            mime_type: mime_type.to_owned(),
            sha256: sha256.to_owned(),
        };
        lock(&self.media).files.insert(media_id.to_owned(), file);
    }

    /// Forgets media `media_id`, as WhatsApp does after seven days: its
    /// metadata answers 404.
    pub fn expire_media(&self, media_id: &str) {
        lock(&self.media).files.remove(media_id);
    }

    /// Answers 500 to the next `n` metadata requests.
    pub fn fail_media_requests(&self, n: usize) {
        lock(&self.media).failures = n;
    }

    /// Media ids asked about so far (metadata and bytes), in order.
    pub fn media_requests(&self) -> Vec<String> {
        lock(&self.media).requests.clone()
    }

    /// Files uploaded so far, in order.
    pub fn uploaded(&self) -> Vec<UploadedMedia> {
        lock(&self.media).uploaded.clone()
    }
}

fn authorization(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn graph_error(status: StatusCode, code: i64, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "AbCdEfGhIjK"
        }})),
    )
}

async fn info(
    State(shared): State<Shared>,
    Path((_version, media_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if !authorization(&headers).starts_with("Bearer ") {
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.");
    }
    let mut shared = lock(&shared);
    shared.requests.push(media_id.clone());
    if shared.failures > 0 {
        shared.failures -= 1;
        return graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "Service temporarily unavailable",
        );
    }
    let Some(file) = shared.files.get(&media_id) else {
        // Meta's answer for an unknown or expired media id.
        return graph_error(
            StatusCode::NOT_FOUND,
            100,
            &format!(
                "Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            ),
        );
    };
    (
        StatusCode::OK,
        Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}{DOWNLOAD_PATH}?mid={media_id}&ext=1697043379&hash=fake", shared.base_url),
            "mime_type": file.mime_type,
            "sha256": file.sha256,
            // Meta sends it as a string.
            "file_size": file.bytes.len().to_string(),
            "id": media_id,
        })),
    )
}

async fn download(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<(HeaderMap, Vec<u8>), StatusCode> {
    if !authorization(&headers).starts_with("Bearer ") {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let media_id = query.get("mid").cloned().unwrap_or_default();
    let mut shared = lock(&shared);
    shared.requests.push(media_id.clone());
    let file = shared.files.get(&media_id).ok_or(StatusCode::NOT_FOUND)?;
    let mut response_headers = HeaderMap::new();
    if let Ok(value) = file.mime_type.parse() {
        response_headers.insert("content-type", value);
    }
    Ok((response_headers, file.bytes.clone()))
}

async fn upload(
    State(shared): State<Shared>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> (StatusCode, Json<Value>) {
    let mut uploaded = UploadedMedia {
        version,
        phone_number_id,
        authorization: authorization(&headers),
        messaging_product: String::new(),
        mime_type: String::new(),
        filename: String::new(),
        content_type: String::new(),
        bytes: Vec::new(),
    };
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    &format!("bad multipart: {error}"),
                );
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().unwrap_or_default().to_owned();
        let content_type = field.content_type().unwrap_or_default().to_owned();
        let Ok(bytes) = field.bytes().await else {
            return graph_error(StatusCode::BAD_REQUEST, 100, "unreadable multipart field");
        };
        match name.as_str() {
            "messaging_product" => {
                uploaded.messaging_product = String::from_utf8_lossy(&bytes).into_owned();
            }
            "type" => uploaded.mime_type = String::from_utf8_lossy(&bytes).into_owned(),
            "file" => {
                uploaded.filename = filename;
                uploaded.content_type = content_type;
                uploaded.bytes = bytes.to_vec();
            }
            _ => {}
        }
    }
    if uploaded.messaging_product != "whatsapp" || uploaded.bytes.is_empty() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) The parameter messaging_product and a file are required.",
        );
    }
    let mut shared = lock(&shared);
    shared.uploaded.push(uploaded);
    let id = format!("media.uploaded.{}", shared.uploaded.len());
    (StatusCode::OK, Json(json!({ "id": id })))
}
