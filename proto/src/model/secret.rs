//! Secrets and configs: named, immutable blobs of data services refer to (Docker's
//! `docker secret` / `docker config`). Both have the same shape; they differ in what the APIs
//! show: a secret's data is never returned, a config's may be.
//!
//! `Debug` never prints the data (it could end up in a log line or an error message).

use super::{ConfigId, SecretId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Largest secret or config, bytes (Docker's `MaxSecretSize`, 500 KiB).
pub const MAX_DATA_BYTES: usize = 500 * 1024;

/// Longest secret or config name (Docker's limit).
pub const MAX_DATA_NAME: usize = 64;

/// Bytes that `Debug` does not print: only their length.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Opaque(pub Vec<u8>);

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0.len())
    }
}

/// A secret or a config as the store holds it (the fields of Docker's `Secret`/`Config`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataObject<Id> {
    /// Its id.
    pub id: Id,
    /// Its name, unique among objects of its kind.
    pub name: String,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The data, 1 byte to [`MAX_DATA_BYTES`].
    pub data: Opaque,
    /// Created, ms since epoch.
    pub created_ms: i64,
    /// Last written, ms since epoch (objects are immutable: the creation time).
    pub updated_ms: i64,
    /// Raft index of the last write.
    pub version: u64,
}

impl<Id: fmt::Debug> fmt::Debug for DataObject<Id> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataObject")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("data", &self.data)
            .field("created_ms", &self.created_ms)
            .field("updated_ms", &self.updated_ms)
            .field("version", &self.version)
            .finish()
    }
}

/// A secret (`swarmctl secret create`). Named so as not to clash with [`super::Secret`], the
/// redacted string of the cluster's private keys.
pub type SecretObject = DataObject<SecretId>;

/// A config (`swarmctl config create`).
pub type ConfigObject = DataObject<ConfigId>;

/// Why a secret or config name is refused (Docker's rule: 1 to 64 characters of
/// `[a-zA-Z0-9-_.]`, starting and ending with a letter or digit).
pub fn data_name_ok(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !name.is_empty()
        && name.len() <= MAX_DATA_NAME
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A file a task gets from a secret or a config (Docker's `SecretReference`/`ConfigReference`
/// with a file target).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataReference<Id> {
    /// The object's id (resolved from what the user typed at create/update).
    pub id: Id,
    /// The object's name, as the user sees it.
    pub name: String,
    /// Where the file appears: relative to `/run/secrets` for a secret, absolute for a config.
    pub target: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits, at most `0o7777`.
    pub mode: u32,
}

/// A service's use of a secret (`--secret`).
pub type SecretReference = DataReference<SecretId>;

/// A service's use of a config (`--config`).
pub type ConfigReference = DataReference<ConfigId>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_data() {
        let s = SecretObject {
            id: "abc".into(),
            name: "db_pass".into(),
            data: Opaque(b"hunter2-marker".to_vec()),
            ..Default::default()
        };
        let text = format!("{s:?} {s:#?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("db_pass") && text.contains("14 bytes redacted"),
            "{text}"
        );
    }

    #[test]
    fn names_as_docker_checks_them() {
        for ok in ["a", "db_pass", "x.y-z_1", &"a".repeat(64)] {
            assert!(data_name_ok(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a/b", ".a", "é", &"a".repeat(65)] {
            assert!(!data_name_ok(bad), "{bad}");
        }
    }
}
