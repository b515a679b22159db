//! WhatsApp's media kinds, the MIME types it accepts for each and its size
//! limits (../shared/WHATSAPP.md). Sizes are decimal megabytes, as Meta writes
//! them: checking against the smaller reading refuses a file here rather
//! than after it has travelled to WhatsApp.

/// What a media file is to WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

const MB: u64 = 1_000_000;
const KB: u64 = 1_000;

/// Document types the Cloud API accepts.
const DOCUMENT_TYPES: &[&str] = &[
    "text/plain",
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
];

impl MediaKind {
    pub const ALL: [Self; 5] = [
        Self::Image,
        Self::Video,
        Self::Audio,
        Self::Document,
        Self::Sticker,
    ];

    /// WhatsApp's type name, which is also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// A message type that carries a media file, if `value` is one.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// Largest file WhatsApp takes for this kind (stickers: the animated limit;
    /// a static sticker's 100 KB is WhatsApp's to check).
    pub fn max_bytes(self) -> u64 {
        match self {
            Self::Image => 5 * MB,
            Self::Video | Self::Audio => 16 * MB,
            Self::Document => 100 * MB,
            Self::Sticker => 500 * KB,
        }
    }

    /// The kind an agent's file of MIME type `mime` is sent as. Agents send
    /// images, videos, audio and documents (stickers are received only).
    pub fn for_sending(mime: &str) -> Option<Self> {
        match essence(mime).as_str() {
            "image/jpeg" | "image/png" => Some(Self::Image),
            "video/mp4" | "video/3gpp" => Some(Self::Video),
            "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => {
                Some(Self::Audio)
            }
            other if DOCUMENT_TYPES.contains(&other) => Some(Self::Document),
            _ => None,
        }
    }

    /// A file extension for a MIME type, to name files that came without a
    /// name (a photo has none).
    pub fn extension(mime: &str) -> &'static str {
        match essence(mime).as_str() {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            "image/webp" => "webp",
            "video/mp4" => "mp4",
            "video/3gpp" => "3gp",
            "audio/aac" => "aac",
            "audio/amr" => "amr",
            "audio/mpeg" => "mp3",
            "audio/mp4" => "m4a",
            "audio/ogg" => "ogg",
            "application/pdf" => "pdf",
            "text/plain" => "txt",
            _ => "bin",
        }
    }
}

/// `audio/ogg; codecs=opus` → `audio/ogg`: parameters do not change the type.
fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_send_whatsapps_types_only() {
        assert_eq!(MediaKind::for_sending("image/jpeg"), Some(MediaKind::Image));
        assert_eq!(MediaKind::for_sending("IMAGE/PNG"), Some(MediaKind::Image));
        assert_eq!(
            MediaKind::for_sending("audio/ogg; codecs=opus"),
            Some(MediaKind::Audio)
        );
        assert_eq!(
            MediaKind::for_sending("application/pdf"),
            Some(MediaKind::Document)
        );
        for refused in [
            "image/gif",
            "image/webp",
            "application/zip",
            "",
            "video/quicktime",
        ] {
            assert_eq!(MediaKind::for_sending(refused), None, "{refused}");
        }
    }

    #[test]
    fn limits_are_whatsapps() {
        assert_eq!(MediaKind::Image.max_bytes(), 5_000_000);
        assert_eq!(MediaKind::Video.max_bytes(), 16_000_000);
        assert_eq!(MediaKind::Audio.max_bytes(), 16_000_000);
        assert_eq!(MediaKind::Document.max_bytes(), 100_000_000);
        assert_eq!(MediaKind::Sticker.max_bytes(), 500_000);
    }

    #[test]
    fn kinds_round_trip_and_unknown_types_are_not_media() {
        for kind in MediaKind::ALL {
            assert_eq!(MediaKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MediaKind::parse("text"), None);
        assert_eq!(MediaKind::extension("image/jpeg"), "jpg");
        assert_eq!(MediaKind::extension("application/x-unknown"), "bin");
    }
}
