//! Writing verified blobs and unpacking roots: temp file or directory first, rename last.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{invalid, io_err, Store, StoreError};
use crate::digest::{Digest, ImageId};
use crate::unpack;

/// A blob being written: a temp file under `tmp/` and the running hash.
pub(crate) struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    pub(crate) written: u64,
}

impl BlobWriter {
    pub(crate) fn new(store: &Store) -> Result<Self, StoreError> {
        let tmp = store.tmp_dir();
        let file = tempfile::NamedTempFile::new_in(&tmp).map_err(io_err("create", &tmp))?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            written: 0,
        })
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(data);
        self.written += data.len() as u64;
        let p = self.file.path().to_path_buf();
        self.file.write_all(data).map_err(io_err("write", &p))
    }

    /// Renames the blob into place if it hashes to `expected` (or, with `None`, to whatever it
    /// hashes to); otherwise the temp file is deleted and the mismatch returned.
    pub(crate) fn commit(
        self,
        store: &Store,
        expected: Option<&Digest>,
    ) -> Result<Digest, StoreError> {
        let actual = Digest::from_hasher(self.hasher);
        if let Some(e) = expected {
            if *e != actual {
                tracing::warn!(expected = %e, %actual, "blob digest mismatch: discarded");
                return Err(StoreError::DigestMismatch {
                    expected: e.clone(),
                    actual,
                });
            }
        }
        let dst = store.blob_path(&actual);
        let p = self.file.path().to_path_buf();
        self.file.as_file().sync_all().map_err(io_err("sync", &p))?;
        self.file
            .persist(&dst)
            .map_err(|e| io_err("rename", &dst)(e.error))?;
        Ok(actual)
    }
}

impl Store {
    /// Stores `data` as a blob, verified against `expected` when given.
    pub(crate) fn put_blob(
        &self,
        data: &[u8],
        expected: Option<&Digest>,
    ) -> Result<Digest, StoreError> {
        if let Some(e) = expected {
            if self.has_blob(e) {
                return Ok(e.clone());
            }
        }
        let mut w = BlobWriter::new(self)?;
        w.write(data)?;
        w.commit(self, expected)
    }

    /// Copies a file into the store as a blob, verified against `expected` when given.
    pub(crate) fn put_blob_from(
        &self,
        src: &Path,
        expected: Option<&Digest>,
    ) -> Result<Digest, StoreError> {
        if let Some(e) = expected {
            if self.has_blob(e) {
                return Ok(e.clone());
            }
        }
        let mut f = fs::File::open(src).map_err(io_err("open", src))?;
        let mut w = BlobWriter::new(self)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(io_err("read", src))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n])?;
        }
        w.commit(self, expected)
    }

    pub(crate) fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Unpacks the image's layers into `roots/<id>` unless it is there already. Blocking: call
    /// from a blocking thread in async code.
    pub(crate) fn ensure_root(&self, id: &ImageId, layers: &[Digest]) -> Result<(), StoreError> {
        let dst = self.root_path(id);
        if dst.is_dir() {
            return Ok(());
        }
        let config = self.config_file(id)?;
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(invalid(
                format!("config {id}"),
                format!(
                    "{} diff_ids for {} layers",
                    config.rootfs.diff_ids.len(),
                    layers.len()
                ),
            ));
        }
        let roots = self.inner.dir.join("roots");
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&roots)
            .map_err(io_err("create", &roots))?;
        let _span = tracing::info_span!("unpack", image.id = %id.short()).entered();
        for (i, (layer, expected)) in layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
            let p = self.blob_path(layer);
            let f = fs::File::open(&p).map_err(io_err("open", &p))?;
            let report = unpack::apply_layer(tmp.path(), io::BufReader::new(f), &self.inner.unpack)
                .map_err(|source| StoreError::Unpack {
                    image: id.clone(),
                    source,
                })?;
            for w in &report.warnings {
                tracing::info!(layer = %layer, warning = ?w, "layer entry skipped");
            }
            if &report.diff_id != expected {
                return Err(StoreError::DiffId {
                    image: id.clone(),
                    index: i,
                    expected: expected.clone(),
                    actual: report.diff_id,
                });
            }
        }
        fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(io_err("chmod", tmp.path()))?;
        let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        if dst.is_dir() {
            return Ok(()); // Another task finished first; ours is dropped.
        }
        let path = tmp.keep();
        fs::rename(&path, &dst).map_err(io_err("rename", &dst))?;
        Ok(())
    }
}

/// Removes a file or a whole tree, making read-only directories writable first (an unpacked
/// root may hold `0555` directories that a non-root user could not empty).
pub(crate) fn remove_tree(p: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(p)?;
    if !m.file_type().is_dir() {
        return fs::remove_file(p);
    }
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(p);
            fs::remove_dir_all(p)
        }
        Err(e) => Err(e),
    }
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = fs::symlink_metadata(p) {
        if m.file_type().is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}
