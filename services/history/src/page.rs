//! Paging of a customer's records: page sizes and opaque keyset page tokens.

use chrono::{DateTime, Utc};

use crate::record::Violation;

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// 0 means the default; anything above the maximum gets the maximum.
pub fn page_size(requested: u32) -> u64 {
    match u64::from(requested) {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Where the previous page stopped: its last record, in (finished_at desc,
/// attention_id desc) order. Keyset rather than offset, so records recorded
/// meanwhile neither repeat nor get skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub finished_at: DateTime<Utc>,
    pub attention_id: String,
}

impl Cursor {
    /// Hex so it reads as opaque and survives any transport; clients must not parse it.
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{}|{}",
            self.finished_at.timestamp_micros(),
            self.attention_id
        ))
    }

    /// An empty token is the first page.
    pub fn decode(token: &str) -> Result<Option<Self>, Violation> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || Violation::new("page_token", "El token de página no es válido.");
        let bytes = hex::decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, attention_id) = text.split_once('|').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let finished_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        Ok(Some(Self {
            finished_at,
            attention_id: attention_id.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(0), 20);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(500), 100);
    }

    #[test]
    fn a_cursor_survives_its_token() {
        let cursor = Cursor {
            finished_at: DateTime::from_timestamp_micros(1_764_115_200_123_456).expect("valid"),
            attention_id: "a|b".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(Some(cursor)));
        assert_eq!(Cursor::decode(""), Ok(None));
    }

    #[test]
    fn a_forged_token_is_refused() {
        for token in [
            "zz",
            "41",
            &hex::encode("abc|x"),
            &hex::encode([0xff, 0xfe]),
        ] {
            let violation = Cursor::decode(token).expect_err("invalid token");
            assert_eq!(violation.field, "page_token");
        }
    }
}
