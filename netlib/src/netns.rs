//! Network namespaces kept as files under a caller-given directory, the way `ip netns` keeps
//! them under `/var/run/netns` (a bind mount of `/proc/<tid>/ns/net` onto an empty file).
//!
//! A namespace is only ever *entered* on a dedicated thread that this module spawns and that
//! ends with the work: never on a tokio worker (which would carry the namespace into unrelated
//! tasks), never by forking from async code. Sockets opened on such a thread belong to the
//! namespace for their whole life, so [`NetNs::socket`] hands them back as [`OwnedFd`]s that
//! any thread may use.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What went wrong with a namespace, with the path involved and the kernel's errno.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a namespace file failed.
    #[error("{op} {path}: {source}")]
    Sys {
        /// The operation, named like the command that would do it (`ip netns add`).
        op: &'static str,
        /// The namespace file or directory.
        path: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The namespace file already exists (use [`NetNs::ensure`] to reuse it).
    #[error("network namespace {0} already exists")]
    Exists(PathBuf),
    /// The namespace name is not a plain file name.
    #[error("bad network namespace name {0:?}: use letters, digits, '-' and '_' only")]
    BadName(String),
    /// The thread that entered the namespace panicked.
    #[error("the thread working inside {0} panicked")]
    Panicked(PathBuf),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn sys<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Sys {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn cstr(path: &Path) -> CString {
    // Paths from the OS never contain NUL; a caller-made one with a NUL is a bug.
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL bytes")
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mount(2)` with optional source and type.
fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let src = src.map(cstr);
    let target = cstr(target);
    let fstype = fstype.map(|t| CString::new(t).expect("fs type without NUL"));
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call;
    // `data` is null, which mount(2) accepts.
    check(unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            std::ptr::null(),
        )
    })
}

fn umount_detach(target: &Path) -> io::Result<()> {
    let target = cstr(target);
    // SAFETY: `target` is a valid NUL-terminated string for the duration of the call.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })
}

/// Makes `dir` a shared mount point, as `ip netns` does for `/var/run/netns`, so namespaces
/// created later are visible in mount namespaces (tasks) that were made before them and
/// deleting one propagates to those copies. Idempotent.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(sys("mkdir", dir))?;
    match mount(None, dir, None, libc::MS_SHARED | libc::MS_REC) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(e) => {
            return Err(Error::Sys {
                op: "mount --make-rshared",
                path: dir.into(),
                source: e,
            })
        }
    }
    // Not a mount point yet: bind it onto itself first.
    mount(Some(dir), dir, Some("none"), libc::MS_BIND | libc::MS_REC)
        .map_err(sys("mount --bind", dir))?;
    mount(None, dir, None, libc::MS_SHARED | libc::MS_REC).map_err(sys("mount --make-rshared", dir))
}

/// Undoes [`prepare_dir`]: unmounts the directory's self bind mount (namespace files inside
/// should be deleted first). Succeeds when the directory was never prepared.
pub fn release_dir(dir: &Path) -> Result<()> {
    match umount_detach(dir) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => Ok(()),
        Err(e) => Err(Error::Sys {
            op: "umount",
            path: dir.into(),
            source: e,
        }),
    }
}

/// Checks that `name` can be a namespace file name.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_string()))
    }
}

/// The kind of a namespace, as `setns(2)` and `unshare(2)` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Network (`CLONE_NEWNET`).
    Net,
    /// Mount (`CLONE_NEWNS`).
    Mount,
    /// Host and domain name (`CLONE_NEWUTS`).
    Uts,
    /// Process ids (`CLONE_NEWPID`; takes effect for children).
    Pid,
    /// System V IPC (`CLONE_NEWIPC`).
    Ipc,
}

impl Kind {
    /// The `CLONE_NEW*` flag.
    pub fn flag(self) -> libc::c_int {
        match self {
            Kind::Net => libc::CLONE_NEWNET,
            Kind::Mount => libc::CLONE_NEWNS,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Ipc => libc::CLONE_NEWIPC,
        }
    }

    /// The file name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Net => "net",
            Kind::Mount => "mnt",
            Kind::Uts => "uts",
            Kind::Pid => "pid",
            Kind::Ipc => "ipc",
        }
    }
}

/// `unshare(2)` for the calling thread (`unshare --net --uts …`). For the executor: call it in a
/// freshly spawned thread or in a child before `exec`, never on a shared worker thread.
pub fn unshare(kinds: &[Kind]) -> io::Result<()> {
    let flags = kinds.iter().fold(0, |acc, k| acc | k.flag());
    // SAFETY: unshare takes only an integer; it changes the calling thread's namespaces.
    check(unsafe { libc::unshare(flags) })
}

/// `setns(2)`: moves the calling thread into the namespace `fd` refers to (`nsenter`).
pub fn enter(fd: BorrowedFd<'_>, kind: Kind) -> io::Result<()> {
    // SAFETY: `fd` is a valid open descriptor for the duration of the call.
    check(unsafe { libc::setns(fd.as_raw_fd(), kind.flag()) })
}

/// Opens `/proc/<pid>/ns/<kind>` of a process (for `nsenter --target PID`).
pub fn open_of_pid(pid: u32, kind: Kind) -> io::Result<OwnedFd> {
    Ok(File::open(format!("/proc/{pid}/ns/{}", kind.proc_name()))?.into())
}

/// `hostname NAME` inside the calling thread's UTS namespace.
pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, valid during the call.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// `mount --make-rslave /`: mounts made later in the parent stop leaking into this mount
/// namespace while unmounts still propagate in (what a container runtime does after
/// `unshare --mount`).
pub fn make_mounts_slave() -> io::Result<()> {
    mount(None, Path::new("/"), None, libc::MS_SLAVE | libc::MS_REC)
}

/// `mount --bind SRC DST` (for per-task `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`).
pub fn bind_mount(src: &Path, dst: &Path) -> io::Result<()> {
    mount(Some(src), dst, Some("none"), libc::MS_BIND)
}

/// What a child process does to itself between `fork` and `exec` to become a task: a new mount
/// namespace whose mounts are slaves of the node's, files bound over others (`/etc/hosts`…), a
/// new UTS namespace with its own host name. Everything that allocates happens in the builder,
/// before the fork; [`ChildSetup::apply`] only makes system calls, as code running in a child of
/// a multi-threaded process must.
#[derive(Debug, Default)]
pub struct ChildSetup {
    hostname: Option<CString>,
    binds: Vec<(CString, CString)>,
    root: Option<CString>,
    fresh: Vec<(CString, CString, libc::c_ulong)>,
    cgroups: CgroupJoin,
}

impl ChildSetup {
    /// Nothing yet.
    pub fn new() -> ChildSetup {
        ChildSetup {
            root: Some(cstr(Path::new("/"))),
            ..Default::default()
        }
    }

    /// `hostname NAME` in a new UTS namespace.
    pub fn hostname(mut self, name: &str) -> ChildSetup {
        self.hostname = CString::new(name).ok();
        self
    }

    /// `mount -t proc proc /proc` and `mount -t sysfs -o ro sysfs /sys` in the new mount
    /// namespace, so that `/proc` shows the process's own PID namespace and `/sys/class/net`
    /// its own network namespace (each shows the namespaces of whoever mounts it).
    pub fn mount_proc_and_sys(self) -> ChildSetup {
        self.mount_proc().mount("sysfs", "/sys", libc::MS_RDONLY)
    }

    /// `mount -t proc proc /proc` only: for a process that keeps its parent's network namespace
    /// (a fresh sysfs there is refused with EBUSY).
    pub fn mount_proc(self) -> ChildSetup {
        self.mount("proc", "/proc", 0)
    }

    fn mount(mut self, fs: &str, target: &str, extra: libc::c_ulong) -> ChildSetup {
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | extra;
        self.fresh.push((
            CString::new(fs).expect("no NUL"),
            cstr(Path::new(target)),
            flags,
        ));
        self
    }

    /// `mount --bind SRC DST` in the new mount namespace (`DST` must exist).
    pub fn bind(mut self, src: &Path, dst: &Path) -> ChildSetup {
        self.binds.push((cstr(src), cstr(dst)));
        self
    }

    /// Moves the child into each cgroup whose `cgroup.procs` file is in `procs_files` (see
    /// [`CgroupJoin`]). Done first, before the fresh `/sys` would hide `/sys/fs/cgroup`.
    pub fn join_cgroups(mut self, procs_files: &[PathBuf]) -> ChildSetup {
        self.cgroups = CgroupJoin::new(procs_files);
        self
    }

    /// Applies the setup to the calling process. Call it only in a child between `fork` and
    /// `exec` (`CommandExt::pre_exec`): it changes the caller's namespaces.
    pub fn apply(&self) -> io::Result<()> {
        self.cgroups.apply()?;
        let mut flags = libc::CLONE_NEWNS;
        if self.hostname.is_some() {
            flags |= libc::CLONE_NEWUTS;
        }
        // SAFETY: plain integer argument.
        check(unsafe { libc::unshare(flags) })?;
        if let Some(root) = &self.root {
            // SAFETY: valid NUL-terminated strings or null pointers, per mount(2).
            check(unsafe {
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_SLAVE | libc::MS_REC,
                    std::ptr::null(),
                )
            })?;
        }
        for (src, dst) in &self.binds {
            // SAFETY: as above; the strings were made before the fork.
            check(unsafe {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            })?;
        }
        for (fs, target, flags) in &self.fresh {
            // SAFETY: as above.
            check(unsafe {
                libc::mount(
                    fs.as_ptr(),
                    target.as_ptr(),
                    fs.as_ptr(),
                    *flags,
                    std::ptr::null(),
                )
            })?;
        }
        if let Some(h) = &self.hostname {
            // SAFETY: pointer and length of a live C string.
            check(unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) })?;
        }
        Ok(())
    }
}

/// Cgroups a child process moves itself into between `fork` and `exec`, so that not one
/// instruction of the program it execs runs outside them: `echo 0 > DIR/cgroup.procs` for each.
/// Writing 0 moves the writing process, on cgroup v1 and v2 alike (`cgroup_procs_write_start`
/// in kernel/cgroup/cgroup.c takes `current` when the pid is 0). The paths become C strings in
/// [`CgroupJoin::new`], before the fork; [`CgroupJoin::apply`] only calls open, write and close.
#[derive(Debug, Default)]
pub struct CgroupJoin {
    procs: Vec<CString>,
}

impl CgroupJoin {
    /// Joins the cgroups whose `cgroup.procs` files are `procs_files` (none: does nothing).
    pub fn new(procs_files: &[PathBuf]) -> CgroupJoin {
        CgroupJoin {
            procs: procs_files.iter().map(|p| cstr(p)).collect(),
        }
    }

    /// Moves the calling process into every cgroup. Call it in a child between `fork` and
    /// `exec`: it allocates nothing and makes only async-signal-safe system calls.
    pub fn apply(&self) -> io::Result<()> {
        for path in &self.procs {
            // SAFETY: `path` is a NUL-terminated string made before the fork.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: writes one byte of a static buffer to the descriptor opened above.
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            let err = (n != 1).then(io::Error::last_os_error);
            // SAFETY: `fd` was opened above and is closed exactly once.
            unsafe { libc::close(fd) };
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Namespaces a child process joins between `fork` and `exec` (`nsenter --net --uts --mount`):
/// the descriptors are opened before the fork; [`NsJoin::apply`] only calls `setns(2)`, and
/// `chdir("/")` after joining a mount namespace.
#[derive(Debug, Default)]
pub struct NsJoin {
    fds: Vec<(OwnedFd, Kind)>,
    root: Option<OwnedFd>,
}

impl NsJoin {
    /// Nothing to join yet.
    pub fn new() -> NsJoin {
        NsJoin::default()
    }

    /// Joins the namespace `fd` refers to. Call the mount namespace last.
    pub fn join(mut self, fd: OwnedFd, kind: Kind) -> NsJoin {
        self.fds.push((fd, kind));
        self
    }

    /// After joining, makes `dir` (an open `/proc/<pid>/root`) the root, as `nsenter --root`
    /// does: joining a mount namespace sets the root to that namespace's own, which is not the
    /// process's when it runs chrooted.
    pub fn root(mut self, dir: OwnedFd) -> NsJoin {
        self.root = Some(dir);
        self
    }

    /// Joins every namespace. Call it only in a child between `fork` and `exec`.
    pub fn apply(&self) -> io::Result<()> {
        for (fd, kind) in &self.fds {
            // SAFETY: `fd` is open for the life of `self`; setns takes only integers.
            check(unsafe { libc::setns(fd.as_raw_fd(), kind.flag()) })?;
        }
        if let Some(root) = &self.root {
            // SAFETY: `root` is an open directory descriptor owned by `self`.
            check(unsafe { libc::fchdir(root.as_raw_fd()) })?;
            // SAFETY: a static NUL-terminated string.
            check(unsafe { libc::chroot(c".".as_ptr()) })?;
        }
        // SAFETY: a static NUL-terminated string.
        check(unsafe { libc::chdir(c"/".as_ptr()) })?;
        Ok(())
    }
}

/// A network namespace, held open by a descriptor (it lives while the file or the descriptor
/// does).
#[derive(Debug)]
pub struct NetNs {
    path: PathBuf,
    file: File,
}

impl NetNs {
    /// `ip netns add NAME`, with the file in `dir` instead of `/var/run/netns`. Fails with
    /// [`Error::Exists`] when the file is there already.
    pub fn create(dir: &Path, name: &str) -> Result<NetNs> {
        check_name(name)?;
        prepare_dir(dir)?;
        let path = dir.join(name);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::Exists(path.clone()),
                _ => Error::Sys {
                    op: "ip netns add",
                    path: path.clone(),
                    source: e,
                },
            })?;
        let target = path.clone();
        let made = std::thread::spawn(move || -> io::Result<()> {
            unshare(&[Kind::Net])?;
            mount(
                Some(Path::new("/proc/thread-self/ns/net")),
                &target,
                Some("none"),
                libc::MS_BIND,
            )
        })
        .join()
        .map_err(|_| Error::Panicked(path.clone()))?;
        if let Err(source) = made {
            let _ = fs::remove_file(&path);
            return Err(Error::Sys {
                op: "ip netns add",
                path,
                source,
            });
        }
        Self::open(&path)
    }

    /// Opens `dir/name` when it is a live namespace, or creates it. A stale file left by a crash
    /// (not a mount any more) is replaced.
    pub fn ensure(dir: &Path, name: &str) -> Result<NetNs> {
        check_name(name)?;
        let path = dir.join(name);
        match Self::open(&path) {
            Ok(ns) => Ok(ns),
            Err(Error::Sys { .. }) if path.exists() => {
                let _ = umount_detach(&path);
                fs::remove_file(&path).map_err(sys("rm", &path))?;
                Self::create(dir, name)
            }
            Err(_) => Self::create(dir, name),
        }
    }

    /// Opens an existing namespace file (a `dir/name` from [`NetNs::create`] or any
    /// `/proc/<pid>/ns/net`). Fails when the file is not a network namespace.
    pub fn open(path: &Path) -> Result<NetNs> {
        let file = File::open(path).map_err(sys("open", path))?;
        if !is_netns(&file) {
            return Err(Error::Sys {
                op: "open",
                path: path.into(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a network namespace"),
            });
        }
        Ok(NetNs {
            path: path.into(),
            file,
        })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<NetNs> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// The namespace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file name (`ip netns list` shows it).
    pub fn name(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).unwrap_or("")
    }

    /// `ip netns exec NAME …` for a closure: runs `f` on a new thread that entered this
    /// namespace, waits, and returns what `f` returned. Processes `f` spawns start in the
    /// namespace too.
    pub fn run<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let fd = self.file.as_fd();
        std::thread::scope(|s| {
            s.spawn(move || enter(fd, Kind::Net).map(|()| f()))
                .join()
                .map_err(|_| Error::Panicked(self.path.clone()))?
                .map_err(sys("setns", &self.path))
        })
    }

    /// [`NetNs::run`] for async callers: the work runs on its own thread (never a runtime
    /// worker) and the caller awaits the result.
    pub async fn run_async<F, T>(self: &Arc<Self>, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ns = Arc::clone(self);
        std::thread::spawn(move || {
            let _ = tx.send(ns.run(f));
        });
        rx.await.map_err(|_| Error::Panicked(self.path.clone()))?
    }

    /// Opens a socket inside the namespace (`socket(2)` on a thread in it) and hands it back.
    pub fn socket(
        &self,
        domain: libc::c_int,
        ty: libc::c_int,
        protocol: libc::c_int,
    ) -> Result<OwnedFd> {
        self.run(|| {
            // SAFETY: plain integer arguments; the returned descriptor is owned right away.
            let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        })?
        .map_err(sys("socket", &self.path))
    }

    /// `ip netns del NAME`: unmounts and removes the file. The namespace (and every device in
    /// it) is gone once no process and no descriptor holds it; `self` is consumed so this
    /// handle is not one of them.
    pub fn delete(self) -> Result<()> {
        let NetNs { path, file } = self;
        drop(file);
        delete_path(&path)
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// `ip netns del` by path, for leftovers found by name. Missing files are not an error.
pub fn delete_path(path: &Path) -> Result<()> {
    match umount_detach(path) {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {}
        Err(e) => {
            return Err(Error::Sys {
                op: "ip netns del",
                path: path.into(),
                source: e,
            })
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Sys {
            op: "ip netns del",
            path: path.into(),
            source: e,
        }),
    }
}

/// `ip netns list` for `dir`: the file names, sorted. A missing directory lists nothing.
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Sys {
                op: "ip netns list",
                path: dir.into(),
                source: e,
            })
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// True when `file` refers to a network namespace (`ioctl(NS_GET_NSTYPE)`).
fn is_netns(file: &File) -> bool {
    // NS_GET_NSTYPE = _IO(0xb7, 0x3), from include/uapi/linux/nsfs.h.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: the ioctl takes no argument and only reads the descriptor's namespace type.
    let ty = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    ty == libc::CLONE_NEWNET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("tk_0123456789ab").is_ok());
        assert!(check_name("lab-m1").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(matches!(check_name(bad), Err(Error::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn current_namespace_opens() {
        let ns = NetNs::current().expect("every thread has a network namespace");
        assert_eq!(ns.name(), "net");
    }

    #[test]
    fn a_regular_file_is_not_a_namespace() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(NetNs::open(f.path()).is_err());
    }

    #[test]
    fn listing_a_missing_dir_is_empty() {
        assert!(list(Path::new("/nonexistent/shoal-netns"))
            .unwrap()
            .is_empty());
    }
}
