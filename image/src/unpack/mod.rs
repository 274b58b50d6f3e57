//! The layer unpacker: applies one layer archive (tar, optionally gzip-compressed) onto a root
//! directory, the way Docker's `archive.ApplyLayer` does, and refuses anything that could write
//! outside that directory.
//!
//! Rules (the "Bad input"):
//! - an entry whose path is absolute or has a `..` component is refused;
//! - nothing is written through a symlink: every parent component is checked with
//!   `symlink_metadata` (a symlink there refuses the entry), files are created with
//!   `O_CREAT|O_EXCL` (which does not follow a final symlink), and an entry replacing an
//!   existing one first removes it (removing a symlink removes the link, not its target);
//! - a hard link must name an already-unpacked regular file inside the root;
//! - a relative symlink whose target, resolved lexically from the link's directory, climbs
//!   above the root is refused; absolute targets are kept (at run time they resolve inside the
//!   container's root, since the runtime chroots/pivots there first);
//! - character and block devices are refused (a container gets its `/dev` from the runtime, and
//!   a device node in a layer is how an image would reach the host's disks); fifos are skipped
//!   with an [`UnpackWarning`] (harmless, but this unpacker makes no special files);
//! - whiteouts: `.wh.<name>` deletes `<name>` from the lower layers, `.wh..wh..opq` clears the
//!   directory's content from the lower layers (entries of the same layer stay).
//!
//! Ownership is kept when the options say so (the store sets it when running as root);
//! modes, mtimes and `SCHILY.xattr.*` extended attributes are applied (xattrs the filesystem
//! refuses with `ENOTSUP`/`EPERM` become warnings). Directory modes and mtimes are set at the end
//! of the layer so that writing children neither fails nor bumps them.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::digest::Digest;

mod error;
#[cfg(test)]
mod tests;

pub use error::{UnpackError, UnpackOptions, UnpackWarning};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What applying one layer produced.
#[derive(Debug, Clone)]
pub struct LayerReport {
    /// The digest of the uncompressed tar (the image config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// What was skipped.
    pub warnings: Vec<UnpackWarning>,
}

/// Applies one layer read from `archive` (gzip or plain tar, detected from its first bytes)
/// onto `root`, which must exist.
pub fn apply_layer(
    root: &Path,
    archive: impl Read,
    opts: &UnpackOptions,
) -> Result<LayerReport, UnpackError> {
    let mut buf = BufReader::new(archive);
    let head = buf.fill_buf().map_err(UnpackError::Read)?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(UnpackError::Compression("zstd"));
    } else if head.starts_with(b"BZh") {
        return Err(UnpackError::Compression("bzip2"));
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return Err(UnpackError::Compression("xz"));
    } else {
        Box::new(buf)
    };
    let mut hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let mut layer = Layer {
        root,
        opts,
        written: HashSet::new(),
        dirs: Vec::new(),
        warnings: Vec::new(),
    };
    {
        let mut ar = tar::Archive::new(&mut hashing);
        for entry in ar.entries().map_err(UnpackError::Read)? {
            let entry = entry.map_err(UnpackError::Read)?;
            layer.apply(entry)?;
        }
    }
    // The tar's trailing blocks count in the diff id.
    io::copy(&mut hashing, &mut io::sink()).map_err(UnpackError::Read)?;
    layer.finish_dirs()?;
    Ok(LayerReport {
        diff_id: Digest::from_hasher(hashing.hasher),
        warnings: layer.warnings,
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

struct Layer<'a> {
    root: &'a Path,
    opts: &'a UnpackOptions,
    /// Relative paths this layer wrote (an opaque whiteout keeps them).
    written: HashSet<PathBuf>,
    /// Directories (relative) whose mode and mtime are set when the layer is done.
    dirs: Vec<(Vec<OsString>, u32, u64)>,
    warnings: Vec<UnpackWarning>,
}

/// The entry's path as normal components, or `None` when it is absolute or has `..`.
pub(crate) fn clean(path: &Path) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn rel(comps: &[OsString]) -> PathBuf {
    comps.iter().collect()
}

impl Layer<'_> {
    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
        let name = raw.display().to_string();
        // `/` (umoci writes it first) or `./`: the root itself, which the store made. Any other
        // absolute path is refused below.
        if raw
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::CurDir))
            && entry.header().entry_type() == EntryType::Directory
        {
            return Ok(());
        }
        let comps = clean(&raw).ok_or_else(|| UnpackError::Escape {
            entry: name.clone(),
        })?;
        let Some((last, parents)) = comps.split_last() else {
            return Ok(()); // "./": the root itself, which the store made.
        };
        let io_err = |source| UnpackError::Io {
            entry: name.clone(),
            source,
        };
        let last_str = last.to_string_lossy();
        if let Some(target) = last_str.strip_prefix(WHITEOUT) {
            self.ensure_parents(&name, parents, false)?;
            let dir = self.root.join(rel(parents));
            if last_str == OPAQUE {
                return self.clear_opaque(&dir, parents).map_err(io_err);
            }
            if target.starts_with(".wh.") || target.is_empty() || target == "." || target == ".." {
                return Ok(()); // aufs metadata (.wh..wh.plnk and friends): nothing to apply.
            }
            return remove_any(&dir.join(target)).map_err(io_err);
        }
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Char | EntryType::Block) {
            return Err(UnpackError::Device { entry: name });
        }
        if kind == EntryType::Fifo {
            self.warnings
                .push(UnpackWarning::SkippedFifo { entry: name });
            return Ok(());
        }
        self.ensure_parents(&name, parents, true)?;
        let relpath = rel(&comps);
        let dst = self.root.join(&relpath);
        let header = entry.header().clone();
        let mode = header.mode().map_err(UnpackError::Read)?;
        let mtime = header.mtime().unwrap_or(0);
        let existing = fs::symlink_metadata(&dst).ok();
        let is_dir_entry = kind == EntryType::Directory;
        if let Some(m) = &existing {
            if !(is_dir_entry && m.file_type().is_dir()) {
                remove_any(&dst).map_err(io_err)?;
            }
        }
        match kind {
            EntryType::Directory => {
                if !existing.as_ref().is_some_and(|m| m.file_type().is_dir()) {
                    fs::create_dir(&dst).map_err(io_err)?;
                }
                self.chown(&dst, &header).map_err(io_err)?;
                self.dirs.push((comps.clone(), mode, mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&dst)
                    .map_err(io_err)?;
                io::copy(&mut entry, &mut f).map_err(UnpackError::Read)?;
                f.flush().map_err(io_err)?;
                drop(f);
                self.chown(&dst, &header).map_err(io_err)?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(io_err)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| UnpackError::SymlinkEscape {
                        entry: name.clone(),
                        target: String::new(),
                    })?
                    .into_owned();
                if target.is_relative() && escapes(parents, &target) {
                    return Err(UnpackError::SymlinkEscape {
                        entry: name,
                        target: target.display().to_string(),
                    });
                }
                std::os::unix::fs::symlink(&target, &dst).map_err(io_err)?;
                self.chown(&dst, &header).map_err(io_err)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .map(|t| t.into_owned());
                let bad = || UnpackError::HardLink {
                    entry: name.clone(),
                    target: target
                        .as_ref()
                        .map(|t| t.display().to_string())
                        .unwrap_or_default(),
                };
                let tcomps = target
                    .as_deref()
                    .and_then(clean)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(bad)?;
                let (_, tparents) = tcomps.split_last().ok_or_else(bad)?;
                if !self.parents_are_dirs(tparents) {
                    return Err(bad());
                }
                let tpath = self.root.join(rel(&tcomps));
                match fs::symlink_metadata(&tpath) {
                    Ok(m) if m.file_type().is_file() => {}
                    _ => return Err(bad()),
                }
                fs::hard_link(&tpath, &dst).map_err(io_err)?;
            }
            other => {
                return Err(UnpackError::Unsupported {
                    entry: name,
                    kind: other.as_byte(),
                });
            }
        }
        if !matches!(kind, EntryType::Link) {
            self.xattrs(&mut entry, &dst, &name)?;
            if !is_dir_entry {
                let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
                filetime::set_symlink_file_times(&dst, t, t).map_err(io_err)?;
            }
        }
        self.written.insert(relpath);
        Ok(())
    }

    /// Every parent must be a real directory (never a symlink); missing ones are created
    /// (mode 0755, as Docker's unpacker does) when `create` is set.
    fn ensure_parents(
        &self,
        entry: &str,
        parents: &[OsString],
        create: bool,
    ) -> Result<(), UnpackError> {
        let mut p = self.root.to_path_buf();
        for (i, c) in parents.iter().enumerate() {
            p.push(c);
            let err = || UnpackError::Parent {
                entry: entry.to_string(),
                parent: rel(&parents[..=i]).display().to_string(),
            };
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => return Err(err()),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&p).map_err(|source| UnpackError::Io {
                        entry: entry.to_string(),
                        source,
                    })?;
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).map_err(
                        |source| UnpackError::Io {
                            entry: entry.to_string(),
                            source,
                        },
                    )?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(source) => {
                    return Err(UnpackError::Io {
                        entry: entry.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn parents_are_dirs(&self, parents: &[OsString]) -> bool {
        let mut p = self.root.to_path_buf();
        parents.iter().all(|c| {
            p.push(c);
            fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_dir())
        })
    }

    fn clear_opaque(&self, dir: &Path, parents: &[OsString]) -> io::Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for child in rd {
            let child = child?;
            let relchild = rel(parents).join(child.file_name());
            if !self.written.contains(&relchild) {
                remove_any(&child.path())?;
            }
        }
        Ok(())
    }

    fn chown(&self, path: &Path, h: &tar::Header) -> io::Result<()> {
        if !self.opts.preserve_owner {
            return Ok(());
        }
        let uid = h.uid().map_err(io::Error::other)? as u32;
        let gid = h.gid().map_err(io::Error::other)? as u32;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    }

    fn xattrs<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dst: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? else {
            return Ok(());
        };
        for ext in exts {
            let ext = ext.map_err(UnpackError::Read)?;
            let Ok(key) = ext.key() else { continue };
            let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if let Err(e) = xattr::set(dst, attr, ext.value_bytes()) {
                match e.raw_os_error() {
                    Some(libc::ENOTSUP) | Some(libc::EPERM) | Some(libc::EACCES) => {
                        tracing::debug!(entry = name, attr, error = %e, "extended attribute not applied");
                        self.warnings.push(UnpackWarning::Xattr {
                            entry: name.to_string(),
                            name: attr.to_string(),
                        });
                    }
                    _ => {
                        return Err(UnpackError::Io {
                            entry: name.to_string(),
                            source: e,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Directory modes and mtimes, deepest first, once their children are written.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, mode, mtime) in dirs.into_iter().rev() {
            // A later entry of this layer may have removed the directory or replaced it (or a
            // parent) with a symlink: only a path that is still all real directories is touched.
            if !self.parents_are_dirs(&comps) {
                continue;
            }
            let path = self.root.join(rel(&comps));
            let err = |source| UnpackError::Io {
                entry: path.display().to_string(),
                source,
            };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(err)?;
            let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
            filetime::set_symlink_file_times(&path, t, t).map_err(err)?;
        }
        Ok(())
    }
}

/// Whether a relative symlink target, read from the directory `parents`, climbs above the root.
fn escapes(parents: &[OsString], target: &Path) -> bool {
    let mut depth = parents.len() as isize;
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    false
}

/// Removes a file, symlink (the link itself) or directory tree (`remove_dir_all` does not
/// follow symlinks inside it); a missing path is not an error.
fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
