//! SHA-256 of media files: WhatsApp writes it in base64, agents' clients in
//! hex; both are compared as bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256 as Hasher};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// A digest written in base64, as WhatsApp does; `None` when the text is
    /// not one (Meta's own examples carry placeholders such as `4654+8g=`).
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// A digest written in hex (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Lower-case hex: the stored form.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Hashes bytes as they stream past.
#[derive(Default)]
pub struct Hashing {
    hasher: Hasher,
    bytes: u64,
}

impl Hashing {
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn finish(self) -> Sha256 {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(self.hasher.finalize().as_slice());
        Sha256(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_name_the_same_digest() {
        let mut hashing = Hashing::default();
        hashing.update(b"hola");
        let digest = hashing.finish();
        assert_eq!(
            digest.hex(),
            "b221d9dbb083a7f33428d7c2a3c3198ae925614d70210e28716ccaa7cd4ddb79"
        );
        assert_eq!(Sha256::from_hex(&digest.hex()), Some(digest));
        assert_eq!(Sha256::from_hex(&digest.hex().to_uppercase()), Some(digest));
        assert_eq!(Sha256::from_base64(&digest.base64()), Some(digest));
    }

    #[test]
    fn placeholders_are_not_digests() {
        assert_eq!(Sha256::from_base64("4654+8g="), None);
        assert_eq!(Sha256::from_base64("not base64!"), None);
        assert_eq!(Sha256::from_hex("abcd"), None);
        assert_eq!(Sha256::from_hex(&"zz".repeat(32)), None);
    }
}
