//! Content digests (`sha256:<64 lowercase hex>`), the only algorithm the store accepts, and the
//! image id (the digest of an image's config blob, as Docker's image id).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a digest string was refused; the messages are go-digest's, as Docker prints them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix or characters outside the encoding.
    #[error("invalid checksum digest format")]
    Format,
    /// The hex part has the wrong length for its algorithm.
    #[error("invalid checksum digest length")]
    Length,
    /// An algorithm other than sha256 (sha384/sha512 are valid in references but not stored).
    #[error("unsupported digest algorithm")]
    Algorithm,
}

/// A `sha256:` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(data))
    }

    /// The digest a running hasher ends with.
    pub fn from_hasher(h: Sha256) -> Self {
        Digest(format!("sha256:{:x}", h.finalize()))
    }

    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The whole `sha256:<hex>` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A 12-character short form, as `docker images` prints ids.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Format)?;
        let want = match alg {
            "sha256" => 64,
            "sha384" | "sha512" => return Err(DigestError::Algorithm),
            a if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b)) =>
            {
                return Err(DigestError::Algorithm)
            }
            _ => return Err(DigestError::Format),
        };
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(if hex.len() != want {
                DigestError::Length
            } else {
                DigestError::Format
            });
        }
        if hex.len() != want {
            return Err(DigestError::Length);
        }
        Ok(Digest(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An image's id: the digest of its config blob (as `docker images --no-trunc` shows).
pub type ImageId = Digest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_like_go_digest() {
        let hex = "a".repeat(64);
        assert_eq!(
            format!("sha256:{hex}").parse::<Digest>().unwrap().hex(),
            hex
        );
        assert_eq!("sha256:abc".parse::<Digest>(), Err(DigestError::Length));
        assert_eq!(
            format!("sha256:{}", "A".repeat(64)).parse::<Digest>(),
            Err(DigestError::Format)
        );
        assert_eq!(
            format!("md5:{hex}").parse::<Digest>(),
            Err(DigestError::Algorithm)
        );
        assert_eq!("nocolon".parse::<Digest>(), Err(DigestError::Format));
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
