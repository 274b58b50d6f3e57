//! The per-node image store, content-addressed, under one directory:
//! ```text
//! blobs/sha256/<hex>   manifests, configs and layers, each verified before it is renamed in
//! index.json           reference (full form) -> manifest digest, replaced atomically
//! roots/<config hex>/  each image's layers unpacked once, in order: the read-only lower dir
//! tmp/                 partial downloads and unpacks; emptied by `open`
//! ```
//! A blob is written to `tmp/`, hashed while written, and renamed into `blobs/` only when its
//! digest matches (a mismatch is deleted). A root is unpacked into `roots/.tmp-*` and renamed to
//! `roots/<id>` when every layer applied and matched the config's `diff_ids`, so a half-unpacked
//! root never carries an image id.

mod blobs;
#[cfg(test)]
mod live_tests;
mod load;
mod pull;
mod pull_counts;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, ImageId};
use crate::reference::Reference;
use crate::registry::RegistryError;
use crate::unpack::{UnpackError, UnpackOptions};

pub use pull::Progress;
pub use pull_counts::pull_counts;
pub use spec::{
    parse_manifest, AnyManifest, ConfigFile, ContainerConfig, Descriptor, Healthcheck, ImageConfig,
    Index, Manifest, Platform, RootFs, MANIFEST_TYPES,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem call failed.
    #[error("image store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Bytes did not hash to the digest that named them (the blob was discarded).
    #[error("digest mismatch for {expected}: content hashes to {actual} (discarded)")]
    DigestMismatch {
        /// The digest the content was announced with.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// An unpacked layer's digest differs from the config's `diff_ids`.
    #[error("layer {index} of image {image} unpacks to {actual}, the config says {expected}")]
    DiffId {
        /// The image id.
        image: ImageId,
        /// Layer position.
        index: usize,
        /// From the config.
        expected: Digest,
        /// Computed.
        actual: Digest,
    },
    /// A layer could not be unpacked.
    #[error("image {image}: {source}")]
    Unpack {
        /// The image id.
        image: ImageId,
        /// Why.
        #[source]
        source: UnpackError,
    },
    /// A manifest, index or config is not valid JSON of the expected shape.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which document.
        what: String,
        /// Why.
        detail: String,
    },
    /// The image is not for linux/amd64.
    #[error("image {reference} has no linux/amd64 variant (found {found})")]
    Platform {
        /// The image.
        reference: String,
        /// The platform(s) offered.
        found: String,
    },
    /// No image by that name or id (Docker's words).
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The config digest.
    pub id: ImageId,
    /// The platform manifest's digest.
    pub manifest: Digest,
    /// The names that point at it.
    pub references: Vec<Reference>,
    /// Layer blobs, lowest first.
    pub layers: Vec<Digest>,
    /// Sum of the layer blob sizes.
    pub size: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    refs: BTreeMap<String, Digest>,
}

/// The image store. Cheap to clone; every method is safe to call from several tasks.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Serializes index read-modify-write and root creation; never held across `.await`.
    lock: Mutex<()>,
    unpack: UnpackOptions,
}

impl Store {
    /// Opens (creating) the store at `dir` and clears what an interrupted run left in `tmp/`
    /// and `roots/.tmp-*`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let dir = dir.into();
        for sub in ["blobs/sha256", "roots", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        let tmp = dir.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err("read", &tmp))?.flatten() {
            let _ = blobs::remove_tree(&e.path());
        }
        let roots = dir.join("roots");
        for e in fs::read_dir(&roots)
            .map_err(io_err("read", &roots))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".tmp") {
                let _ = blobs::remove_tree(&e.path());
            }
        }
        let unpack = UnpackOptions {
            preserve_owner: is_root(),
        };
        Ok(Store {
            inner: Arc::new(Inner {
                dir,
                lock: Mutex::new(()),
                unpack,
            }),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Every image, one entry per manifest, names sorted.
    pub fn list(&self) -> Result<Vec<Image>, StoreError> {
        let index = self.read_index()?;
        let mut by_manifest: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
        for (name, d) in &index.refs {
            let names = by_manifest.entry(d.clone()).or_default();
            // A key that is a digest is an unnamed image's manifest (checked first: a digest
            // also parses as a reference, `sha256` tagged with the hex).
            if name.parse::<Digest>().is_err() {
                if let Ok(r) = Reference::parse(name) {
                    names.push(r);
                }
            }
        }
        by_manifest
            .into_iter()
            .map(|(m, refs)| self.image(&m, refs))
            .collect()
    }

    /// The image named `name`: a reference (`nginx`, `nginx:1`, `…@sha256:…`), a full image id
    /// (`sha256:<hex>`), or an id prefix of at least 12 hex characters.
    pub fn inspect(&self, name: &str) -> Result<Image, StoreError> {
        let all = self.list()?;
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some(img) = all.iter().find(|i| i.id.hex().starts_with(hex)) {
                return Ok(img.clone());
            }
        }
        let r = Reference::parse(name).map_err(|_| StoreError::NoSuchImage(name.to_string()))?;
        let index = self.read_index()?;
        let manifest = index.refs.get(&r.to_string()).cloned().or_else(|| {
            // `name@digest` also finds an image pulled by tag whose manifest is that digest.
            r.digest()
                .filter(|d| all.iter().any(|i| &i.manifest == *d))
                .cloned()
        });
        let Some(m) = manifest else {
            return Err(StoreError::NoSuchImage(r.familiar()));
        };
        all.into_iter()
            .find(|i| i.manifest == m)
            .ok_or_else(|| StoreError::NoSuchImage(r.familiar()))
    }

    /// The read-only lower directory holding the image's unpacked layers.
    pub fn root(&self, image: &Image) -> PathBuf {
        self.root_path(&image.id)
    }

    /// The image's runtime defaults.
    pub fn config(&self, image: &Image) -> Result<ImageConfig, StoreError> {
        Ok(self.config_file(&image.id)?.into())
    }

    /// Removes the name `name` (as `docker rmi`); when no name is left, the image's root and
    /// blobs go too. Returns the names removed.
    pub fn remove(&self, name: &str) -> Result<Vec<Reference>, StoreError> {
        let img = self.inspect(name)?;
        let removed = {
            let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut index = self.read_index()?;
            // By id: every name; by name: that name only.
            let by_name = Reference::parse(name)
                .ok()
                .filter(|r| index.refs.contains_key(&r.to_string()));
            let removed: Vec<Reference> = match by_name {
                Some(r) => {
                    index.refs.remove(&r.to_string());
                    vec![r]
                }
                None => {
                    index.refs.retain(|_, m| *m != img.manifest);
                    img.references.clone()
                }
            };
            self.write_index(&index)?;
            removed
        };
        self.collect()?;
        Ok(removed)
    }

    /// Removes every image whose id is not in `in_use`, then unreferenced blobs and roots.
    /// Returns the ids removed.
    pub fn prune(&self, in_use: &HashSet<ImageId>) -> Result<Vec<ImageId>, StoreError> {
        let images = self.list()?;
        let gone: Vec<Image> = images
            .into_iter()
            .filter(|i| !in_use.contains(&i.id))
            .collect();
        {
            let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut index = self.read_index()?;
            index
                .refs
                .retain(|_, m| !gone.iter().any(|i| &i.manifest == m));
            self.write_index(&index)?;
        }
        self.collect()?;
        Ok(gone.into_iter().map(|i| i.id).collect())
    }

    /// Deletes blobs and roots no name reaches.
    fn collect(&self) -> Result<(), StoreError> {
        let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut keep_blobs = HashSet::new();
        let mut keep_roots = HashSet::new();
        for img in self.list()? {
            keep_blobs.insert(img.manifest.hex().to_string());
            keep_blobs.insert(img.id.hex().to_string());
            keep_roots.insert(img.id.hex().to_string());
            keep_blobs.extend(img.layers.iter().map(|l| l.hex().to_string()));
        }
        for (sub, keep) in [("blobs/sha256", &keep_blobs), ("roots", &keep_roots)] {
            let dir = self.inner.dir.join(sub);
            for e in fs::read_dir(&dir).map_err(io_err("read", &dir))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with(".tmp") && !keep.contains(&name) {
                    tracing::debug!(path = %e.path().display(), "image store: removing unreferenced");
                    blobs::remove_tree(&e.path()).map_err(io_err("remove", &e.path()))?;
                }
            }
        }
        Ok(())
    }

    fn image(&self, manifest: &Digest, references: Vec<Reference>) -> Result<Image, StoreError> {
        let m = self.manifest(manifest)?;
        Ok(Image {
            id: m.config.digest.clone(),
            manifest: manifest.clone(),
            references,
            size: m.layers.iter().map(|l| l.size).sum(),
            layers: m.layers.into_iter().map(|l| l.digest).collect(),
        })
    }

    fn manifest(&self, d: &Digest) -> Result<Manifest, StoreError> {
        let bytes = self.read_blob(d)?;
        match parse_manifest(&bytes, None) {
            Ok(AnyManifest::Image(m)) => Ok(m),
            Ok(AnyManifest::Index(_)) => Err(invalid(
                format!("manifest {d}"),
                "an index where an image manifest was expected",
            )),
            Err(e) => Err(invalid(format!("manifest {d}"), e)),
        }
    }

    fn config_file(&self, id: &ImageId) -> Result<ConfigFile, StoreError> {
        let bytes = self.read_blob(id)?;
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("config {id}"), e))
    }

    fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        fs::read(&p).map_err(io_err("read", &p))
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.inner.dir.join("blobs/sha256").join(d.hex())
    }

    fn root_path(&self, id: &ImageId) -> PathBuf {
        self.inner.dir.join("roots").join(id.hex())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.inner.dir.join("tmp")
    }

    fn read_index(&self) -> Result<IndexFile, StoreError> {
        let p = self.inner.dir.join("index.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| invalid("index.json".into(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(e) => Err(io_err("read", &p)(e)),
        }
    }

    /// Written to a temp file and renamed over `index.json` (caller holds the lock).
    fn write_index(&self, index: &IndexFile) -> Result<(), StoreError> {
        let p = self.inner.dir.join("index.json");
        let bytes =
            serde_json::to_vec_pretty(index).map_err(|e| invalid("index.json".into(), e))?;
        let tmp = self.tmp_dir();
        let mut f = tempfile::NamedTempFile::new_in(&tmp).map_err(io_err("create", &tmp))?;
        io::Write::write_all(&mut f, &bytes).map_err(io_err("write", &tmp))?;
        f.as_file().sync_all().map_err(io_err("sync", &tmp))?;
        f.persist(&p).map_err(|e| io_err("rename", &p)(e.error))?;
        Ok(())
    }

    /// Points `name` at `manifest`.
    fn tag(&self, name: &Reference, manifest: &Digest) -> Result<(), StoreError> {
        self.tag_key(name.to_string(), manifest)
    }

    fn tag_key(&self, key: String, manifest: &Digest) -> Result<(), StoreError> {
        let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.read_index()?;
        index.refs.insert(key, manifest.clone());
        self.write_index(&index)
    }
}

pub(crate) fn invalid(what: String, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        what,
        detail: detail.to_string(),
    }
}

/// Effective uid 0, from `/proc/self/status` (proc(5): `Uid:` real, effective, saved, fs).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
