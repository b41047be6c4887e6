//! The shared membership key and the HMAC-SHA256 tag that authenticates every datagram.
//!
//! The key is the content of a file mounted from a Secret. Trailing whitespace is ignored, so a
//! key written with `echo` (trailing newline) and one written without agree.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of the tag appended to every datagram (full HMAC-SHA256 output).
pub const TAG_LEN: usize = 32;

/// Keys shorter than this are refused: a short shared secret can be brute-forced offline from one
/// captured datagram.
pub const MIN_KEY_LEN: usize = 16;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "membership key is {len} bytes after trimming whitespace; at least {MIN_KEY_LEN} are required"
    )]
    TooShort { len: usize },
}

/// The shared secret. `Debug` never prints it.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} bytes, redacted)", self.0.len())
    }
}

impl Key {
    /// Builds a key from the raw content of the key file.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, KeyError> {
        let end = contents
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let trimmed = &contents[..end];
        if trimmed.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len: trimmed.len() });
        }
        Ok(Self(trimmed.to_vec()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// The tag over `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` authenticates `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_whitespace_is_not_part_of_the_key() {
        let a = Key::from_file_contents(b"0123456789abcdef\n").unwrap();
        let b = Key::from_file_contents(b"0123456789abcdef").unwrap();
        assert_eq!(a.tag(b"x"), b.tag(b"x"));
    }

    #[test]
    fn short_and_empty_keys_are_refused() {
        assert_eq!(
            Key::from_file_contents(b"short\n").unwrap_err(),
            KeyError::TooShort { len: 5 }
        );
        assert_eq!(
            Key::from_file_contents(b"  \n\t").unwrap_err(),
            KeyError::TooShort { len: 0 }
        );
    }

    #[test]
    fn tag_matches_rfc4231_vector() {
        // RFC 4231 test case 2 uses a 4-byte key, below our minimum, so build the key directly.
        let key = Key(b"Jefe".to_vec());
        let tag = key.tag(b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_rejects_other_key_other_data_and_short_tags() {
        let key = Key::from_file_contents(b"0123456789abcdef").unwrap();
        let other = Key::from_file_contents(b"fedcba9876543210").unwrap();
        let tag = key.tag(b"hello");
        assert!(key.verify(b"hello", &tag));
        assert!(!other.verify(b"hello", &tag));
        assert!(!key.verify(b"hellp", &tag));
        assert!(!key.verify(b"hello", &tag[..16]));
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let key = Key::from_file_contents(b"supersecretvalue!").unwrap();
        assert!(!format!("{key:?}").contains("supersecret"));
    }
}
