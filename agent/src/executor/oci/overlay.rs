//! A task's root file system: an overlay (Documentation/filesystems/overlayfs.rst) of the
//! image's read-only lower directory and an upper and work directory of the task's own, mounted
//! by the agent before `create` (`mount -t overlay overlay -o lowerdir=L,upperdir=U,workdir=W
//! ROOTFS`) and unmounted after `delete`. The image directory is shared by every task of the
//! image and never written; what a task writes lands in its upper directory, removed with it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why the overlay could not be mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path that the overlay's option string cannot carry (`,` `:` or a NUL byte).
    #[error("overlay: {} cannot be used in mount options (contains ',', ':' or a NUL byte)", path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
    },
    /// A directory could not be made.
    #[error("overlay: creating {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// mount(2) failed.
    #[error("overlay: mounting {} (lower {}): {source}", target.display(), lower.display())]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The image's directory.
        lower: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// umount2(2) failed.
    #[error("overlay: unmounting {}: {source}", target.display())]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
}

/// The directories of one task's overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// The image's directory (read-only).
    pub lower: PathBuf,
    /// Where the task's writes go.
    pub upper: PathBuf,
    /// The overlay's scratch directory (same file system as `upper`).
    pub work: PathBuf,
    /// The mount point: the container's root.
    pub target: PathBuf,
}

fn cstr(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::BadPath {
        path: path.to_path_buf(),
    })
}

fn option_safe(path: &Path) -> Result<&Path, Error> {
    let b = path.as_os_str().as_bytes();
    if b.iter().any(|c| matches!(c, b',' | b':' | 0)) {
        return Err(Error::BadPath {
            path: path.to_path_buf(),
        });
    }
    Ok(path)
}

impl Overlay {
    /// The option string for mount(2).
    pub fn options(&self) -> Result<String, Error> {
        Ok(format!(
            "lowerdir={},upperdir={},workdir={}",
            option_safe(&self.lower)?.display(),
            option_safe(&self.upper)?.display(),
            option_safe(&self.work)?.display()
        ))
    }

    /// Makes the upper, work and target directories and mounts the overlay. Mounting what is
    /// already mounted there (an earlier attempt) unmounts it first.
    #[allow(unsafe_code)]
    pub fn mount(&self) -> Result<(), Error> {
        for d in [&self.upper, &self.work, &self.target] {
            std::fs::create_dir_all(d).map_err(|source| Error::Dir {
                path: d.clone(),
                source,
            })?;
        }
        if is_mounted(&self.target) {
            unmount(&self.target)?;
        }
        let options = CString::new(self.options()?).map_err(|_| Error::BadPath {
            path: self.lower.clone(),
        })?;
        let target = cstr(&self.target)?;
        let fstype = c"overlay";
        // SAFETY: every pointer is a NUL-terminated string that outlives the call; mount(2)
        // only reads them.
        let r = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(Error::Mount {
                target: self.target.clone(),
                lower: self.lower.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

/// Unmounts whatever is mounted at `target` (nothing mounted is not an error). A busy mount is
/// detached (`MNT_DETACH`): the kernel frees it once its last user is gone.
#[allow(unsafe_code)]
pub fn unmount(target: &Path) -> Result<(), Error> {
    let c = cstr(target)?;
    let err = |source| Error::Unmount {
        target: target.to_path_buf(),
        source,
    };
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // EINVAL: not a mount point; ENOENT: no such directory.
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
        Some(libc::EBUSY) => {
            // SAFETY: as above.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                Ok(())
            } else {
                Err(err(io::Error::last_os_error()))
            }
        }
        _ => Err(err(e)),
    }
}

/// Whether `target` is a mount point in this process's mount namespace (field 5 of
/// `/proc/self/mountinfo`, proc(5); octal escapes as the kernel writes them).
pub fn is_mounted(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = escape(target);
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// A path as mountinfo writes it: space, tab, newline and backslash in octal.
fn escape(p: &Path) -> String {
    let mut s = String::new();
    for ch in p.to_string_lossy().chars() {
        match ch {
            ' ' => s.push_str("\\040"),
            '\t' => s.push_str("\\011"),
            '\n' => s.push_str("\\012"),
            '\\' => s.push_str("\\134"),
            c => s.push(c),
        }
    }
    s
}
