//! The raft key file, `<raft dir>/keys.json` (mode 0600): this manager's data key (DEK), wrapped
//! by a key-encryption key (KEK), as SwarmKit keeps its raft DEK encrypted by a KEK.
//!
//! ```json
//! {"format":1,"kek":{"location":"state_dir","key":"<base64>"},"dek":"<base64>","migrated":["redb"]}
//! ```
//! * `dek`: the DEK sealed under the KEK (a [`super::crypt`] record bound to `shoal/raft/dek`);
//! * `kek.location`: `state_dir` (the KEK is in this file, `key`) or `unlock_key` (autolock: the
//!   KEK is not on disk; it is derived from the cluster's unlock key, [`super::unlock`], which an
//!   operator supplies with `swarmctl swarm unlock` after a restart);
//! * `cluster_version` (absent = 0): the version (raft index) of the cluster object whose
//!   autolock setting this wrapping follows, so that a stale view of the cluster (a snapshot
//!   being replayed at start) never undoes a newer decision ([`crate::autolock`]);
//! * `migrated`: the engines (`sled`, `redb`) in which every plaintext record written before
//!   encryption has been sealed; from then on a plaintext record there is refused as tampering.
//!
//! The file is replaced atomically (written beside it, synced, renamed, directory synced).

use super::crypt::{Cipher, Key};
use super::unlock::UnlockKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The key file's name in the raft directory.
pub const FILE: &str = "keys.json";
/// The format written and understood.
const FORMAT: u32 = 1;
/// Additional data binding the wrapped DEK to its role.
const DEK_AAD: &[u8] = b"shoal/raft/dek";

/// Where the key-encryption key is.
#[derive(Serialize, Deserialize)]
#[serde(tag = "location", rename_all = "snake_case")]
enum KekOnDisk {
    /// In this file.
    StateDir { key: String },
    /// Outside the state dir (autolock): supplied by the operator's unlock key.
    UnlockKey,
}

#[derive(Serialize, Deserialize)]
struct KeyFileOnDisk {
    format: u32,
    kek: KekOnDisk,
    dek: String,
    migrated: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    cluster_version: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Reading or writing the raft key file failed. No variant carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the raft key file {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error(
        "the raft key file {path} is garbled ({what}); restore it from a backup of this \
         manager's state dir, or remove the raft directory and rejoin the cluster"
    )]
    Garbled {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        what: String,
    },
    /// The file was written by a newer Shoal.
    #[error("the raft key file {path} has format {found}, this Shoal knows {FORMAT}; upgrade it")]
    UnknownFormat {
        /// The key file.
        path: PathBuf,
        /// The format found.
        found: u32,
    },
    /// The data key does not open with the key-encryption key.
    #[error(
        "the raft data key in {path} does not open with its key-encryption key; the key file \
         was modified"
    )]
    Unwrap {
        /// The key file.
        path: PathBuf,
    },
    /// The cluster is autolocked: the key-encryption key is not in the state dir.
    #[error(
        "the raft key file {path} says the manager is locked (autolock): unlock it with \
         `swarmctl swarm unlock`"
    )]
    Locked {
        /// The key file.
        path: PathBuf,
    },
    /// The unlock key supplied does not open the data key. Says nothing about the key.
    #[error("invalid unlock key")]
    WrongUnlockKey,
    /// The file could not be written.
    #[error("cannot write the raft key file {path}: {source}; check the state dir")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where a key file's key-encryption key is ([`RaftKeys::location`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekLocation {
    /// In the key file.
    StateDir,
    /// Derived from the cluster's unlock key (autolock).
    UnlockKey,
}

/// The key-encryption key and where it lives.
#[derive(Clone)]
enum Kek {
    /// Random, written in the key file.
    StateDir(Key),
    /// Derived from an unlock key; never written.
    Unlock(Key),
}

impl Kek {
    fn key(&self) -> &Key {
        match self {
            Kek::StateDir(k) | Kek::Unlock(k) => k,
        }
    }
}

/// A manager's raft keys. `Debug` never shows them.
#[derive(Clone)]
pub struct RaftKeys {
    kek: Kek,
    dek: Key,
    /// The engines whose plaintext records from before encryption have all been sealed.
    pub migrated: Vec<String>,
    /// The version of the cluster object whose autolock setting the current wrapping follows
    /// (0: none yet).
    pub cluster_version: u64,
}

impl std::fmt::Debug for RaftKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftKeys")
            .field("kek", self.kek.key())
            .field("location", &self.location())
            .field("dek", &self.dek)
            .field("migrated", &self.migrated)
            .field("cluster_version", &self.cluster_version)
            .finish()
    }
}

impl RaftKeys {
    /// New random keys, KEK kept in the state dir, nothing migrated yet.
    pub fn generate() -> RaftKeys {
        RaftKeys {
            kek: Kek::StateDir(Key::generate()),
            dek: Key::generate(),
            migrated: Vec::new(),
            cluster_version: 0,
        }
    }

    /// The cipher of the raft records.
    pub fn data_cipher(&self) -> Cipher {
        Cipher::new(&self.dek)
    }

    /// Where this key file's KEK is.
    pub fn location(&self) -> KekLocation {
        match self.kek {
            Kek::StateDir(_) => KekLocation::StateDir,
            Kek::Unlock(_) => KekLocation::UnlockKey,
        }
    }

    /// Whether the data key is wrapped under the KEK derived from `key`.
    pub fn locked_by(&self, key: &UnlockKey) -> bool {
        match &self.kek {
            Kek::Unlock(k) => k.expose() == key.kek().expose(),
            Kek::StateDir(_) => false,
        }
    }

    /// Wraps the data key under the KEK derived from `key` instead (autolock on, or a rotated
    /// unlock key). [`RaftKeys::save`] then writes no KEK.
    pub fn lock_with(&mut self, key: &UnlockKey) {
        self.kek = Kek::Unlock(key.kek());
    }

    /// Wraps the data key under a fresh random KEK kept in the key file (autolock off).
    pub fn unlock_to_state_dir(&mut self) {
        self.kek = Kek::StateDir(Key::generate());
    }

    /// Where the KEK of the key file at `path` is, or `None` when there is no such file. Opens
    /// nothing.
    pub fn location_of(path: &Path) -> Result<Option<KekLocation>, KeyError> {
        Ok(Self::read(path)?.map(|f| match f.kek {
            KekOnDisk::StateDir { key } => {
                drop(zeroize::Zeroizing::new(key));
                KekLocation::StateDir
            }
            KekOnDisk::UnlockKey => KekLocation::UnlockKey,
        }))
    }

    fn read(path: &Path) -> Result<Option<KeyFileOnDisk>, KeyError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => zeroize::Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        // Only the kind of error and its position: serde_json's own message can quote the
        // input (`invalid type: string "…"`), which may be key material.
        let file: KeyFileOnDisk =
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Garbled {
                path: path.to_path_buf(),
                what: format!(
                    "{} at line {} column {}",
                    match e.classify() {
                        serde_json::error::Category::Io => "unreadable",
                        serde_json::error::Category::Syntax => "not JSON",
                        serde_json::error::Category::Data => "unexpected fields or values",
                        serde_json::error::Category::Eof => "truncated",
                    },
                    e.line(),
                    e.column()
                ),
            })?;
        if file.format != FORMAT {
            return Err(KeyError::UnknownFormat {
                path: path.to_path_buf(),
                found: file.format,
            });
        }
        Ok(Some(file))
    }

    /// The keys stored at `path`, or `None` when there is no such file. A file whose KEK is the
    /// unlock key's is [`KeyError::Locked`].
    pub fn load(path: &Path) -> Result<Option<RaftKeys>, KeyError> {
        Self::load_with(path, None)
    }

    /// The keys stored at `path` (`None`: no such file), opened with `unlock` if the file's KEK
    /// is an unlock key's ([`KeyError::Locked`] without one, [`KeyError::WrongUnlockKey`] with
    /// the wrong one). `unlock` is ignored when the KEK is in the file. Never writes.
    pub fn load_with(
        path: &Path,
        unlock: Option<&UnlockKey>,
    ) -> Result<Option<RaftKeys>, KeyError> {
        let Some(file) = Self::read(path)? else {
            return Ok(None);
        };
        let garbled = |what: &str| KeyError::Garbled {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        let kek = match file.kek {
            KekOnDisk::StateDir { key } => B64
                .decode(zeroize::Zeroizing::new(key).as_bytes())
                .ok()
                .and_then(|b| Key::from_slice(&zeroize::Zeroizing::new(b)))
                .map(Kek::StateDir)
                .ok_or_else(|| garbled("kek.key is not 32 bytes of base64"))?,
            KekOnDisk::UnlockKey => match unlock {
                Some(u) => Kek::Unlock(u.kek()),
                None => {
                    return Err(KeyError::Locked {
                        path: path.to_path_buf(),
                    })
                }
            },
        };
        let wrapped = B64
            .decode(file.dek)
            .map_err(|_| garbled("dek is not base64"))?;
        let dek = Cipher::new(kek.key())
            .open(DEK_AAD, &wrapped)
            .map_err(|_| match kek {
                Kek::Unlock(_) => KeyError::WrongUnlockKey,
                Kek::StateDir(_) => KeyError::Unwrap {
                    path: path.to_path_buf(),
                },
            })?;
        let dek = Key::from_slice(&zeroize::Zeroizing::new(dek))
            .ok_or_else(|| garbled("dek is not 32 bytes"))?;
        Ok(Some(RaftKeys {
            kek,
            dek,
            migrated: file.migrated,
            cluster_version: file.cluster_version,
        }))
    }

    /// Writes the keys to `path` atomically, readable by the owner only (0600).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let write_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| KeyError::Write { path: p, source }
        };
        let wrapped = Cipher::new(self.kek.key())
            .seal(DEK_AAD, self.dek.expose())
            .map_err(|e| write_err(path)(std::io::Error::other(e)))?;
        let file = KeyFileOnDisk {
            format: FORMAT,
            kek: match &self.kek {
                Kek::StateDir(k) => KekOnDisk::StateDir {
                    key: B64.encode(k.expose()),
                },
                Kek::Unlock(_) => KekOnDisk::UnlockKey,
            },
            dek: B64.encode(wrapped),
            migrated: self.migrated.clone(),
            cluster_version: self.cluster_version,
        };
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec_pretty(&file).map_err(|e| write_err(path)(e.into()))?,
        );
        if let KekOnDisk::StateDir { key } = file.kek {
            drop(zeroize::Zeroizing::new(key));
        }
        shoal_security::durable::write(path, &json, 0o600).map_err(write_err(path))
    }
}
