//! Secrets and configs in tasks (Docker's `/run/secrets`): the node's [`DataBook`] holds the
//! data of the secrets and configs its tasks use, in memory only, as the managers last sent
//! it; [`files_of`] turns a task's references into the [`TaskFile`]s to give it, and
//! [`mount`] writes them into an in-memory file system (tmpfs) of the task's own, from which
//! the runtime binds each, read-only, at its target in the container. The agent unmounts that
//! tmpfs from the node as soon as the container exists ([`unmount`]): from then on the data
//! lives only in the container's mount namespace and goes with it. Nothing here touches a
//! disk, logs the data, or puts it in an error.

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{fchown, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use shoal_proto::model::{DataReference, Task};
use zeroize::Zeroizing;

/// Where a secret's relative target lives in a container (Docker's path).
pub const SECRETS_DIR: &str = "/run/secrets";

/// A secret or a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataKind {
    /// `swarmctl secret create`.
    Secret,
    /// `swarmctl config create`.
    Config,
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataKind::Secret => "secret",
            DataKind::Config => "config",
        })
    }
}

/// The secrets' and configs' data this node's tasks use, by kind and id: exactly what the
/// managers' last assignments listed (see [`DataBook::replace`]). Dropped data is zeroed.
#[derive(Clone, Default)]
pub struct DataBook {
    inner: Arc<RwLock<Held>>,
}

/// Data by kind and id.
type Held = HashMap<(DataKind, String), Zeroizing<Vec<u8>>>;

impl fmt::Debug for DataBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.inner.read().map(|m| m.len()).unwrap_or_default();
        write!(f, "DataBook({n} objects, data redacted)")
    }
}

impl DataBook {
    /// Holds exactly `data` from now on: what is not in it is forgotten (and zeroed).
    pub fn replace(&self, data: impl IntoIterator<Item = (DataKind, String, Vec<u8>)>) {
        let new = data
            .into_iter()
            .map(|(k, id, d)| ((k, id), Zeroizing::new(d)))
            .collect();
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// How many secrets and configs are held.
    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or_default()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, kind: DataKind, id: &str) -> Option<Zeroizing<Vec<u8>>> {
        let m = self.inner.read().unwrap_or_else(|e| e.into_inner());
        m.get(&(kind, id.to_string())).cloned()
    }
}

/// One file a task gets: a secret at `/run/secrets/<target>` or a config at its target.
#[derive(Clone)]
pub struct TaskFile {
    /// Secret or config.
    pub kind: DataKind,
    /// Its name (for messages).
    pub name: String,
    /// Where it appears in the container (absolute).
    pub path: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// The data.
    pub data: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for TaskFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFile")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("path", &self.path)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field(
                "data",
                &format_args!("<{} bytes redacted>", self.data.len()),
            )
            .finish()
    }
}

/// Why a task's files could not be given to it. No variant carries data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The managers did not send the data of a secret or config the task uses.
    #[error("{kind} {name} is not available on this node (the managers did not send it)")]
    Missing {
        /// Secret or config.
        kind: DataKind,
        /// Its name.
        name: String,
    },
    /// A target that is not a plain absolute path (the managers check; older ones may not).
    #[error("{kind} {name}: target {path:?} is not a plain absolute path")]
    BadTarget {
        /// Secret or config.
        kind: DataKind,
        /// Its name.
        name: String,
        /// The target.
        path: String,
    },
    /// The in-memory file system could not be made, written or unmounted.
    #[error("secrets and configs: {what} {}: {source}", path.display())]
    Io {
        /// What was done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A task of the `process` runtime uses secrets or configs (the managers refuse such a
    /// service; one made by an older manager fails here).
    #[error("--secret and --config need a container (--runtime container)")]
    NeedsContainer,
}

/// A reference's name, uid, gid and mode.
fn owner<Id>(r: &DataReference<Id>) -> (&String, u32, u32, u32) {
    (&r.name, r.uid, r.gid, r.mode)
}

/// The files `task` gets from `book`, in the order of its references (secrets first).
pub fn files_of(task: &Task, book: &DataBook) -> Result<Vec<TaskFile>, FilesError> {
    let mut out = Vec::new();
    let secrets = task.spec.secrets.iter().map(|r| {
        let path = format!("{SECRETS_DIR}/{}", r.target.trim_start_matches('/'));
        (DataKind::Secret, r.id.as_str(), path, owner(r))
    });
    let configs = (task.spec.configs.iter())
        .map(|r| (DataKind::Config, r.id.as_str(), r.target.clone(), owner(r)));
    for (kind, id, path, (name, uid, gid, mode)) in secrets.chain(configs) {
        let plain = path.starts_with('/')
            && !path.contains('\0')
            && path[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !plain {
            return Err(FilesError::BadTarget {
                kind,
                name: name.clone(),
                path,
            });
        }
        let data = book.get(kind, id).ok_or_else(|| FilesError::Missing {
            kind,
            name: name.clone(),
        })?;
        out.push(TaskFile {
            kind,
            name: name.clone(),
            path,
            uid,
            gid,
            mode: mode & 0o7777,
            data,
        });
    }
    Ok(out)
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FilesError + 'a {
    move |source| FilesError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Mounts a tmpfs of its own at `dir` (made if needed; mode 0700: only root on the node
/// reaches it) and writes `files` there, one per entry, with their owner and mode; returns
/// what to bind where: (file on the node, path in the container). Nothing when `files` is
/// empty.
#[allow(unsafe_code)]
pub fn mount(dir: &Path, files: &[TaskFile]) -> Result<Vec<(PathBuf, String)>, FilesError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    unmount(dir)?; // an earlier attempt's
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let size: usize = files.iter().map(|f| f.data.len() + 4096).sum::<usize>() + 64 * 1024;
    let target = CString::new(dir.as_os_str().as_bytes()).map_err(|_| FilesError::Io {
        what: "mounting",
        path: dir.to_path_buf(),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    let options = CString::new(format!("mode=0700,size={size}")).unwrap_or_default();
    let fstype = c"tmpfs";
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; mount(2) only
    // reads them.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io_err("mounting a tmpfs at", dir)(
            io::Error::last_os_error(),
        ));
    }
    let written = write_files(dir, files);
    if written.is_err() {
        let _ = unmount(dir);
    }
    written
}

fn write_files(dir: &Path, files: &[TaskFile]) -> Result<Vec<(PathBuf, String)>, FilesError> {
    let mut binds = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let p = dir.join(format!("{}-{i}", f.kind));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(io_err("creating", &p))?;
        file.write_all(&f.data).map_err(io_err("writing", &p))?;
        fchown(&file, Some(f.uid), Some(f.gid)).map_err(io_err("changing the owner of", &p))?;
        file.set_permissions(std::fs::Permissions::from_mode(f.mode))
            .map_err(io_err("changing the mode of", &p))?;
        binds.push((p, f.path.clone()));
    }
    Ok(binds)
}

/// Unmounts the tmpfs at `dir` (its data is freed once no container holds a bind of it) and
/// removes the directory. Nothing there is not an error.
#[allow(unsafe_code)]
pub fn unmount(dir: &Path) -> Result<(), FilesError> {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: `c` is a NUL-terminated path that outlives the call. MNT_DETACH: a file a
    // runtime still holds open does not keep the mount on the node.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a mount point; ENOENT: no such directory.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(io_err("unmounting", dir)(e));
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::{ConfigReference, SecretReference, ServiceSpec};

    fn task() -> Task {
        Task {
            id: "t1".into(),
            spec: ServiceSpec {
                secrets: vec![SecretReference {
                    id: "s1".into(),
                    name: "db_pass".into(),
                    target: "db/pass".into(),
                    uid: 70,
                    gid: 71,
                    mode: 0o400,
                }],
                configs: vec![ConfigReference {
                    id: "c1".into(),
                    name: "conf".into(),
                    target: "/etc/app.conf".into(),
                    mode: 0o444,
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_tasks_files_come_from_the_book_at_their_targets() {
        let book = DataBook::default();
        book.replace([
            (DataKind::Secret, "s1".into(), b"pw-marker".to_vec()),
            (DataKind::Config, "c1".into(), b"conf".to_vec()),
            (DataKind::Secret, "other".into(), b"x".to_vec()),
        ]);
        let files = files_of(&task(), &book).unwrap();
        let got: Vec<(&str, u32, u32, u32, &[u8])> = files
            .iter()
            .map(|f| (f.path.as_str(), f.uid, f.gid, f.mode, f.data.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/run/secrets/db/pass", 70, 71, 0o400, &b"pw-marker"[..]),
                ("/etc/app.conf", 0, 0, 0o444, &b"conf"[..]),
            ]
        );
        let debug = format!("{files:?} {book:?}");
        assert!(
            !debug.contains("pw-marker") && !debug.contains("112, 119"),
            "{debug}"
        );
    }

    #[test]
    fn missing_data_and_bad_targets_are_refused_without_the_data() {
        let book = DataBook::default();
        book.replace([(DataKind::Config, "c1".into(), b"conf".to_vec())]);
        let e = files_of(&task(), &book).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret db_pass is not available on this node (the managers did not send it)"
        );
        book.replace([
            (DataKind::Secret, "s1".into(), b"pw".to_vec()),
            (DataKind::Config, "c1".into(), b"conf".to_vec()),
        ]);
        let mut t = task();
        t.spec.configs[0].target = "/etc/../shadow".into();
        let e = files_of(&t, &book).unwrap_err();
        assert!(matches!(e, FilesError::BadTarget { .. }), "{e}");
        book.replace([]);
        assert!(book.is_empty());
    }
}
