//! The autolock unlock key: 32 random bytes shown to operators as `SWMKEY-1-<base64url>` (the
//! shape of Docker's `SWMKEY-1-…`), and the key-encryption key derived from it.
//!
//! The KEK is HKDF-SHA256 (RFC 5869) of the key's bytes with a fixed salt and info naming its
//! use. The input is already 256 uniformly random bits, so no password-hardening KDF (argon2)
//! is needed: HKDF only separates this use of the key from any other.

use super::crypt::{Key, KEY_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ring::hkdf;
use zeroize::Zeroizing;

/// What every unlock key starts with.
pub const PREFIX: &str = "SWMKEY-1-";
/// HKDF salt: names the application.
const SALT: &[u8] = b"shoal/autolock/v1";
/// HKDF info: names what the derived key is for.
const INFO: &[u8] = b"shoal/raft/kek";

/// An unlock key. Zeroed when dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct UnlockKey(Key);

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(<redacted>)")
    }
}

/// A string that is not an unlock key. Carries nothing of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid unlock key")]
pub struct InvalidUnlockKey;

impl UnlockKey {
    /// A fresh random unlock key.
    pub fn generate() -> UnlockKey {
        UnlockKey(Key::generate())
    }

    /// Parses `SWMKEY-1-<base64url of 32 bytes>` (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<UnlockKey, InvalidUnlockKey> {
        let body = text.trim().strip_prefix(PREFIX).ok_or(InvalidUnlockKey)?;
        let bytes = Zeroizing::new(B64URL.decode(body).map_err(|_| InvalidUnlockKey)?);
        Key::from_slice(&bytes)
            .map(UnlockKey)
            .ok_or(InvalidUnlockKey)
    }

    /// The key as operators see it: `SWMKEY-1-…`.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(PREFIX.len() + 43));
        s.push_str(PREFIX);
        B64URL.encode_string(self.0.expose(), &mut s);
        s
    }

    /// The key-encryption key this unlock key stands for: HKDF-SHA256(salt, key, info).
    pub fn kek(&self) -> Key {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(self.0.expose());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        // HKDF_SHA256's output length is 32 bytes = KEY_LEN, always within HKDF's limit
        // (255 × 32), so neither call can fail.
        prk.expand(&[INFO], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(out.as_mut()))
            .expect("HKDF-SHA256 expands to 32 bytes");
        Key::from_slice(out.as_ref()).expect("32 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_looks_like_dockers() {
        let k = UnlockKey::generate();
        let text = k.to_text();
        assert!(text.starts_with("SWMKEY-1-"), "{}", &*text);
        assert_eq!(text.len(), PREFIX.len() + 43);
        let back = UnlockKey::parse(&format!("  {}\n", &*text)).unwrap();
        assert_eq!(back.kek().expose(), k.kek().expose());
        assert_eq!(format!("{k:?}"), "UnlockKey(<redacted>)");
    }

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        for bad in [
            "",
            "SWMKEY-1-",
            "SWMKEY-2-AAAA",
            "SWMKEY-1-not base64!",
            "SWMKEY-1-AAAA",
            "hunter2",
        ] {
            let e = UnlockKey::parse(bad).unwrap_err();
            assert_eq!(e.to_string(), "invalid unlock key");
        }
    }

    /// The KDF is HKDF-SHA256 (RFC 5869): deterministic, and distinct keys give distinct KEKs
    /// that differ from the unlock key's own bytes.
    #[test]
    fn kdf_is_deterministic_and_separates_keys() {
        let a = UnlockKey(Key::from_slice(&[7u8; 32]).unwrap());
        let b = UnlockKey(Key::from_slice(&[8u8; 32]).unwrap());
        assert_eq!(a.kek().expose(), a.kek().expose());
        assert_ne!(a.kek().expose(), b.kek().expose());
        assert_ne!(a.kek().expose(), &[7u8; 32]);
        // Pinned: a change of salt, info or hash would lock every autolocked manager out.
        let hex: String = a
            .kek()
            .expose()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, PINNED_KEK_OF_SEVENS);
    }

    /// HKDF-SHA256(salt = "shoal/autolock/v1", ikm = 32 × 0x07, info = "shoal/raft/kek"),
    /// computed independently with Python's `hmac` (RFC 5869 by hand).
    const PINNED_KEK_OF_SEVENS: &str =
        "c1d5c1dd2c74cfced7bcb386f69c17551afbe7e839f19cc2588a656e5eac6f2e";
}
