//! Encryption at rest of raft records: every log entry and every meta value (the snapshot, the
//! vote, the committed id, the purge point) is sealed with XChaCha20-Poly1305 under the
//! manager's data key before it reaches the disk engine ([`CryptEngine`]).
//!
//! Record format (one per engine value):
//! `[0xFF 'S' 'E' version=1][nonce: 24 bytes][ciphertext + 16-byte Poly1305 tag]`.
//! The first byte tells sealed from plaintext records written before encryption existed: a
//! plaintext log entry or meta value is JSON (starts with an ASCII byte) and a plaintext snapshot
//! starts with a big-endian u32 length below 2^24 (first byte 0x00); 0xFF starts neither (it is
//! not valid UTF-8).
//!
//! Nonces are 192 random bits drawn from a CSPRNG for every record (as SwarmKit's secretbox
//! records do with XSalsa20's 192-bit nonces): a repeat under one key is a birthday event with
//! probability about n²/2^193 after n records, negligible for any log size, and no counter has
//! to survive crashes or be shared between the log and snapshot writers. A 96-bit random nonce
//! (AES-GCM, ChaCha20-Poly1305) would cap a key's lifetime at about 2^32 records (NIST SP
//! 800-38D, 8.3).
//!
//! Each record's additional authenticated data names where it belongs (`log/<index>` or
//! `meta/<key>`), so a record moved to another index or key fails to open.

use super::engine::{Engine, EngineError, RawEntry};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::{RngCore, TryRngCore};
use std::ops::RangeInclusive;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Length of a key (data or key-encryption key) in bytes.
pub const KEY_LEN: usize = 32;
/// The prefix of every sealed record: a marker byte, `SE`, and the format version.
const MAGIC: [u8; 4] = [0xFF, b'S', b'E', 1];
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A 256-bit secret key. Zeroed when dropped; its `Debug` output never shows it.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Key {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(key.as_mut())
            .unwrap_or_else(|_| rand::rng().fill_bytes(key.as_mut()));
        Key(key)
    }

    /// The key made of exactly [`KEY_LEN`] bytes, or `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Key> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Key(Zeroizing::new(arr)))
    }

    /// The key's bytes, for wrapping it or writing it to its file.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// Sealing or opening a record failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    /// The record is shorter than a marker, a nonce and a tag.
    #[error("sealed record of {len} bytes is truncated; the raft directory is corrupt")]
    Truncated {
        /// The record's length.
        len: usize,
    },
    /// The record was sealed by a newer, unknown format.
    #[error("sealed record format {0} is unknown; was it written by a newer Shoal?")]
    UnknownFormat(u8),
    /// Authentication failed: the record was modified, moved, or sealed under another key.
    #[error(
        "sealed record failed authentication (modified on disk, or sealed under another key); \
         the raft directory is corrupt or does not belong to this key file"
    )]
    Tampered,
    /// A plaintext record where only sealed ones may be (after migration).
    #[error(
        "unencrypted record where only encrypted ones are written; the raft directory was \
         modified outside Shoal"
    )]
    Unsealed,
    /// The plaintext is too long for the cipher (over 256 GiB).
    #[error("record too long to encrypt")]
    TooLong,
}

/// Whether `record` carries the sealed-record marker (any format version).
pub fn is_sealed(record: &[u8]) -> bool {
    record.first_chunk::<3>() == Some(&[MAGIC[0], MAGIC[1], MAGIC[2]])
}

/// Seals and opens records under one key. `Debug` never shows the key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(xchacha20poly1305, <redacted>)")
    }
}

impl Cipher {
    /// A cipher keyed with `key`.
    pub fn new(key: &Key) -> Cipher {
        Cipher {
            aead: XChaCha20Poly1305::new(key.expose().into()),
        }
    }

    /// `plain` sealed under a fresh random nonce, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| CryptError::TooLong)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of a record made by [`Cipher::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], record: &[u8]) -> Result<Vec<u8>, CryptError> {
        if !is_sealed(record) {
            return Err(CryptError::Unsealed);
        }
        if record.len() < MAGIC.len() + NONCE_LEN + TAG_LEN {
            return Err(CryptError::Truncated { len: record.len() });
        }
        if record[3] != MAGIC[3] {
            return Err(CryptError::UnknownFormat(record[3]));
        }
        let (nonce, sealed) = record[MAGIC.len()..].split_at(NONCE_LEN);
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map_err(|_| CryptError::Tampered)
    }
}

/// Additional data binding a log record to its index.
fn log_aad(index: u64) -> Vec<u8> {
    let mut aad = b"shoal/raft/log/".to_vec();
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

/// Additional data binding a meta record to its key.
fn meta_aad(key: &str) -> Vec<u8> {
    format!("shoal/raft/meta/{key}").into_bytes()
}

/// An [`Engine`] that seals every value before the inner engine stores it and opens it on the
/// way back. Plaintext records are refused ([`CryptError::Unsealed`]);
/// [`CryptEngine::copy_from`] seals those left by an older Shoal into a new engine.
pub struct CryptEngine {
    inner: Arc<dyn Engine>,
    cipher: Cipher,
}

impl CryptEngine {
    /// Wraps `inner`, sealing with `cipher`.
    pub fn new(inner: Arc<dyn Engine>, cipher: Cipher) -> CryptEngine {
        CryptEngine { inner, cipher }
    }

    fn crypt_err(at: String) -> impl FnOnce(CryptError) -> EngineError {
        move |source| EngineError::Crypt { at, source }
    }

    fn open_entry(&self, (index, bytes): RawEntry) -> Result<RawEntry, EngineError> {
        let plain = self
            .cipher
            .open(&log_aad(index), &bytes)
            .map_err(Self::crypt_err(format!("log entry {index}")))?;
        Ok((index, plain))
    }

    /// Copies the records of `meta_keys` and the whole log from `src` into this engine, sealing
    /// the plaintext ones (sealed ones are copied as they are), then flushes. Returns how many
    /// records were copied.
    pub fn copy_from(&self, src: &dyn Engine, meta_keys: &[&str]) -> Result<usize, EngineError> {
        let mut copied = 0;
        for key in meta_keys {
            if let Some(v) = src.get_meta(key)? {
                if is_sealed(&v) {
                    self.inner.put_meta(key, &v)?;
                } else {
                    self.put_meta(key, &v)?;
                }
                copied += 1;
            }
        }
        // A batch at a time: one engine transaction per batch.
        for chunk in src.range(0..=u64::MAX)?.chunks(1024) {
            let sealed = chunk
                .iter()
                .map(|(index, v)| {
                    if is_sealed(v) {
                        return Ok((*index, v.clone()));
                    }
                    let s = self
                        .cipher
                        .seal(&log_aad(*index), v)
                        .map_err(Self::crypt_err(format!("log entry {index}")))?;
                    Ok((*index, s))
                })
                .collect::<Result<Vec<RawEntry>, EngineError>>()?;
            self.inner.append(&sealed)?;
            copied += sealed.len();
        }
        self.inner.flush()?;
        Ok(copied)
    }
}

/// Whether `engine` holds any plaintext record under `meta_keys` or in its log.
pub fn any_plain(engine: &dyn Engine, meta_keys: &[&str]) -> Result<bool, EngineError> {
    for key in meta_keys {
        if engine.get_meta(key)?.is_some_and(|v| !is_sealed(&v)) {
            return Ok(true);
        }
    }
    Ok(engine
        .range(0..=u64::MAX)?
        .iter()
        .any(|(_, v)| !is_sealed(v)))
}

/// Whether `engine` holds any sealed record under `meta_keys` or in its log: data that a newly
/// made key could not open.
pub fn any_sealed(engine: &dyn Engine, meta_keys: &[&str]) -> Result<bool, EngineError> {
    for key in meta_keys {
        if engine.get_meta(key)?.is_some_and(|v| is_sealed(&v)) {
            return Ok(true);
        }
    }
    Ok(engine.last()?.is_some_and(|(_, v)| is_sealed(&v)))
}

impl Engine for CryptEngine {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, EngineError> {
        let Some(bytes) = self.inner.get_meta(key)? else {
            return Ok(None);
        };
        self.cipher
            .open(&meta_aad(key), &bytes)
            .map(Some)
            .map_err(Self::crypt_err(format!("meta value {key:?}")))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        let sealed = self
            .cipher
            .seal(&meta_aad(key), value)
            .map_err(Self::crypt_err(format!("meta value {key:?}")))?;
        self.inner.put_meta(key, &sealed)
    }

    fn append(&self, entries: &[RawEntry]) -> Result<(), EngineError> {
        let sealed = entries
            .iter()
            .map(|(index, bytes)| {
                let s = self
                    .cipher
                    .seal(&log_aad(*index), bytes)
                    .map_err(Self::crypt_err(format!("log entry {index}")))?;
                Ok((*index, s))
            })
            .collect::<Result<Vec<RawEntry>, EngineError>>()?;
        self.inner.append(&sealed)
    }

    fn range(&self, range: RangeInclusive<u64>) -> Result<Vec<RawEntry>, EngineError> {
        self.inner
            .range(range)?
            .into_iter()
            .map(|e| self.open_entry(e))
            .collect()
    }

    fn last(&self) -> Result<Option<RawEntry>, EngineError> {
        self.inner.last()?.map(|e| self.open_entry(e)).transpose()
    }

    fn delete_range(&self, range: RangeInclusive<u64>) -> Result<(), EngineError> {
        self.inner.delete_range(range)
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.inner.flush()
    }

    fn put_meta_and_flush(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        let sealed = self
            .cipher
            .seal(&meta_aad(key), value)
            .map_err(Self::crypt_err(format!("meta value {key:?}")))?;
        self.inner.put_meta_and_flush(key, &sealed)
    }
}
