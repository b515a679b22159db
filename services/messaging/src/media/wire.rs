//! Media on the wire: requests checked into commands, stored files into
//! `MediaContent`. The only media code that knows protobuf.

use atenciones_proto::messaging::v1 as pb;
use bytes::Bytes;

use super::checksum::Sha256;
use super::{Chunk, MediaKind, MediaState, StartUpload};
use crate::entity::media;
use crate::error::{Error, Violation};
use crate::grpc::{attention_id, phone_number_id, uuid_field};

/// Longest file name kept (most file systems' limit).
const MAX_FILENAME_CHARS: usize = 255;
/// WhatsApp's code for a media download error, shown on a message whose file
/// could not be fetched.
const MEDIA_DOWNLOAD_ERROR: i64 = 131052;

impl TryFrom<pb::StartMediaUploadRequest> for StartUpload {
    type Error = Error;

    /// Checks every field against WhatsApp's rules and reports all bad ones.
    fn try_from(request: pb::StartMediaUploadRequest) -> Result<Self, Error> {
        let mut violations = Vec::new();
        let v = &mut violations;
        let attention_id = check(v, attention_id(&request.attention_id));
        let number = check(v, phone_number_id(&request.business_phone_number_id));
        let kind = check(v, kind(&request.mime_type));
        let size = match kind {
            Some(kind) => check(v, size(kind, request.size_bytes)),
            None => Some(request.size_bytes),
        };
        let sha256 = check(
            v,
            Sha256::from_hex(&request.sha256)
                .ok_or_else(|| Violation::new("sha256", "is not a hex SHA-256 (64 hex digits)")),
        );
        let filename = check(v, filename(&request.filename));
        match (attention_id, number, kind, size, sha256, filename) {
            (
                Some(attention_id),
                Some(number),
                Some(kind),
                Some(size),
                Some(sha256),
                Some(filename),
            ) if violations.is_empty() => Ok(StartUpload {
                attention_id,
                business_phone_number_id: number,
                kind,
                mime_type: request.mime_type.trim().to_owned(),
                filename,
                size,
                sha256,
            }),
            _ => Err(Error::InvalidArgument(violations)),
        }
    }
}

/// The value, or `None` with its violation noted: every field is checked
/// and every bad one reported at once.
fn check<T>(violations: &mut Vec<Violation>, result: Result<T, Violation>) -> Option<T> {
    result.map_err(|v| violations.push(v)).ok()
}

fn kind(mime_type: &str) -> Result<MediaKind, Violation> {
    if mime_type.trim().is_empty() {
        return Err(Violation::new("mime_type", "is required"));
    }
    MediaKind::for_sending(mime_type).ok_or_else(|| {
        Violation::new(
            "mime_type",
            format!(
                "{mime_type:?} cannot be sent on WhatsApp; images are image/jpeg or image/png, \
                 videos video/mp4 or video/3gpp, audio audio/aac, audio/amr, audio/mpeg, \
                 audio/mp4 or audio/ogg, documents PDF, text or Office files"
            ),
        )
    })
}

fn size(kind: MediaKind, size: u64) -> Result<u64, Violation> {
    if size == 0 {
        return Err(Violation::new(
            "size_bytes",
            "is required (the file's exact size)",
        ));
    }
    if size > kind.max_bytes() {
        return Err(Violation::new(
            "size_bytes",
            format!(
                "is {size} bytes; WhatsApp accepts at most {} bytes for a {}",
                kind.max_bytes(),
                kind.as_str()
            ),
        ));
    }
    Ok(size)
}

fn filename(value: &str) -> Result<Option<String>, Violation> {
    let name = value.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err(Violation::new(
            "filename",
            format!("has more than {MAX_FILENAME_CHARS} characters"),
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(Violation::new(
            "filename",
            "is a name, not a path (no slashes or control characters)",
        ));
    }
    Ok(Some(name.to_owned()))
}

impl TryFrom<pb::UploadMediaChunkRequest> for Chunk {
    type Error = Error;

    fn try_from(request: pb::UploadMediaChunkRequest) -> Result<Self, Error> {
        let attention = attention_id(&request.attention_id);
        let upload = uuid_field("upload_id", &request.upload_id);
        match (attention, upload) {
            (Ok(attention_id), Ok(upload_id)) => Ok(Chunk {
                attention_id,
                upload_id,
                offset: request.offset,
                data: Bytes::from(request.data),
            }),
            (attention, upload) => Err(Error::InvalidArgument(
                [attention.err(), upload.err()]
                    .into_iter()
                    .flatten()
                    .collect(),
            )),
        }
    }
}

/// The attention and upload ids of a FinishMediaUpload request.
pub fn finish(request: &pb::FinishMediaUploadRequest) -> Result<(uuid::Uuid, uuid::Uuid), Error> {
    ids(&request.attention_id, "upload_id", &request.upload_id)
}

/// The attention and media ids of a DownloadMedia request.
pub fn download(request: &pb::DownloadMediaRequest) -> Result<(uuid::Uuid, uuid::Uuid), Error> {
    ids(&request.attention_id, "media_id", &request.media_id)
}

fn ids(attention: &str, field: &str, id: &str) -> Result<(uuid::Uuid, uuid::Uuid), Error> {
    match (attention_id(attention), uuid_field(field, id)) {
        (Ok(attention), Ok(id)) => Ok((attention, id)),
        (attention, id) => Err(Error::InvalidArgument(
            [attention.err(), id.err()].into_iter().flatten().collect(),
        )),
    }
}

fn state(file: &media::Model) -> pb::MediaState {
    match file.state() {
        Some(MediaState::Downloading | MediaState::Receiving) => pb::MediaState::Downloading,
        Some(MediaState::Stored) => pb::MediaState::Stored,
        Some(MediaState::Failed | MediaState::Expired) => pb::MediaState::Failed,
        None => pb::MediaState::Unspecified,
    }
}

/// A stored file as `MediaContent` (no caption: that belongs to a message).
pub fn content(file: &media::Model) -> pb::MediaContent {
    pb::MediaContent {
        kind: file.kind.clone(),
        media_id: file.id.to_string(),
        mime_type: file.mime_type.clone(),
        filename: file.filename.clone().unwrap_or_default(),
        size_bytes: file
            .size_bytes
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or_default(),
        state: state(file).into(),
        ..Default::default()
    }
}

/// The description DownloadMedia sends first: as [`content`], with a file
/// name to save it under even when the file came without one.
pub fn download_info(file: &media::Model) -> pb::MediaContent {
    pb::MediaContent {
        filename: file.download_name(),
        ..content(file)
    }
}

/// Joins what the media table knows into a message read from the message
/// table: the media id, state and size (and the MIME type and file name
/// when the message's own content lacks them). A file that could not be
/// fetched shows as the message's error, as MEDIA_STATE_FAILED promises.
pub fn attach(message: &mut pb::Message, file: &media::Model) {
    let stored = content(file);
    match &mut message.content {
        Some(pb::message::Content::Media(media)) => {
            media.media_id = stored.media_id;
            media.state = stored.state;
            media.size_bytes = stored.size_bytes;
            if media.mime_type.is_empty() {
                media.mime_type = stored.mime_type;
            }
            if media.filename.is_empty() {
                media.filename = stored.filename;
            }
        }
        _ => message.content = Some(pb::message::Content::Media(stored)),
    }
    if file.state() == Some(MediaState::Failed) && message.error.is_none() {
        message.error = Some(pb::MessageError {
            code: MEDIA_DOWNLOAD_ERROR,
            title: "The file could not be downloaded".into(),
            detail: file.failure.clone().unwrap_or_default(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::violated;

    fn valid() -> pb::StartMediaUploadRequest {
        pb::StartMediaUploadRequest {
            attention_id: uuid::Uuid::new_v4().to_string(),
            mime_type: "image/jpeg".into(),
            filename: "foto.jpg".into(),
            size_bytes: 1000,
            sha256: "ab".repeat(32),
            business_phone_number_id: "1122334455667".into(),
        }
    }

    fn fields(request: pb::StartMediaUploadRequest) -> Vec<String> {
        violated(StartUpload::try_from(request))
    }

    #[test]
    fn a_valid_request_becomes_a_command() {
        let command = StartUpload::try_from(valid()).expect("valid");
        assert_eq!(command.kind, MediaKind::Image);
        assert_eq!(command.filename.as_deref(), Some("foto.jpg"));
        assert_eq!(command.sha256.hex(), "ab".repeat(32));
    }

    #[test]
    fn type_and_size_are_checked_against_whatsapps_limits() {
        assert_eq!(
            fields(pb::StartMediaUploadRequest {
                mime_type: "image/gif".into(),
                ..valid()
            }),
            ["mime_type"]
        );
        assert_eq!(
            fields(pb::StartMediaUploadRequest {
                size_bytes: 5_000_001,
                ..valid()
            }),
            ["size_bytes"]
        );
        let video = pb::StartMediaUploadRequest {
            mime_type: "video/mp4".into(),
            size_bytes: 16_000_000,
            ..valid()
        };
        assert!(StartUpload::try_from(video).is_ok(), "16 MB video is fine");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let request = pb::StartMediaUploadRequest {
            attention_id: "x".into(),
            mime_type: String::new(),
            filename: "../etc/passwd".into(),
            size_bytes: 0,
            sha256: "nope".into(),
            business_phone_number_id: String::new(),
        };
        assert_eq!(
            fields(request),
            [
                "attention_id",
                "business_phone_number_id",
                "mime_type",
                "sha256",
                "filename"
            ]
        );
        assert_eq!(
            fields(pb::StartMediaUploadRequest {
                size_bytes: 0,
                ..valid()
            }),
            ["size_bytes"]
        );
    }

    fn file(state: MediaState) -> media::Model {
        let now = crate::domain::now();
        media::Model {
            id: uuid::Uuid::from_u128(1),
            direction: "inbound".into(),
            message_id: Some(uuid::Uuid::from_u128(2)),
            attention_id: None,
            business_phone_number_id: "1".into(),
            kind: "image".into(),
            mime_type: "image/jpeg".into(),
            filename: None,
            state: state.as_str().into(),
            whatsapp_media_id: Some("65463453".into()),
            expected_sha256: None,
            sha256: None,
            declared_size: None,
            size_bytes: Some(1234),
            received_bytes: 0,
            attempts: 1,
            next_attempt_at: now,
            lease_until: None,
            expires_at: None,
            failure: Some("checksum mismatch".into()),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn attaching_keeps_what_the_message_says_and_adds_id_state_and_size() {
        let mut message = pb::Message {
            content: Some(pb::message::Content::Media(pb::MediaContent {
                kind: "image".into(),
                caption: "mira".into(),
                mime_type: "image/jpeg".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        attach(&mut message, &file(MediaState::Stored));
        let Some(pb::message::Content::Media(media)) = message.content else {
            panic!("media content")
        };
        assert_eq!(media.caption, "mira");
        assert_eq!(media.media_id, uuid::Uuid::from_u128(1).to_string());
        assert_eq!(media.state, pb::MediaState::Stored as i32);
        assert_eq!(media.size_bytes, 1234);
        assert!(message.error.is_none());
    }

    #[test]
    fn a_failed_file_shows_as_the_messages_error() {
        let mut message = pb::Message::default();
        attach(&mut message, &file(MediaState::Failed));
        assert!(matches!(
            message.content,
            Some(pb::message::Content::Media(ref m)) if m.state == pb::MediaState::Failed as i32
        ));
        let error = message.error.expect("error");
        assert_eq!(error.code, 131052);
        assert_eq!(error.detail, "checksum mismatch");
    }

    #[test]
    fn a_photo_gets_a_name_to_save_it_under() {
        let info = download_info(&file(MediaState::Stored));
        assert_eq!(info.filename, "image-00000000000000000000000000000001.jpg");
        assert_eq!(content(&file(MediaState::Stored)).filename, "");
    }
}
