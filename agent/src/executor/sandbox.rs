//! Starting a task inside its sandbox: the task's network namespace and a new PID namespace
//! are entered by a thread made for this one task (never a runtime worker); the child then makes
//! its own mount and UTS namespaces between `fork` and `exec`, with `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf` bound from the task's directory, `/proc` and `/sys`
//! mounted afresh
//! and the task id as host name.
//!
//! Sandboxed tasks outlive `swarmd` (no `PR_SET_PDEATHSIG`): a restarted agent adopts them.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use shoal_netlib::netns::{self, ChildSetup, Kind, NetNs};
use tokio::process::{Child, Command};

use crate::network::Sandbox;

/// Writes the task's `/etc` files into `dir` and returns the setup that binds them. A task on
/// the `host` network keeps the node's `/etc` files and host name, as Docker's do: `node_name`
/// (`swarmd --hostname`) when given, set in a UTS namespace of its own, else the machine's.
pub fn etc_files(
    dir: &Path,
    task_id: &str,
    sandbox: &Sandbox,
    node_name: Option<&str>,
) -> io::Result<ChildSetup> {
    if *sandbox == Sandbox::Host {
        let setup = ChildSetup::new().mount_proc();
        return Ok(match node_name {
            Some(n) => setup.hostname(n),
            None => setup,
        });
    }
    write_etc_files(dir, task_id, sandbox)?;
    let mut setup = ChildSetup::new().hostname(task_id).mount_proc_and_sys();
    for f in ETC_FILES {
        let target = Path::new("/etc").join(f);
        if target.exists() {
            setup = setup.bind(&dir.join(f), &target);
        }
    }
    Ok(setup)
}

/// The files [`write_etc_files`] writes, each bound over `/etc/<name>` in the task.
pub const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Writes a sandboxed task's `hosts`, `hostname` and `resolv.conf` into `dir` (its host name is
/// `task_id`; its resolver the embedded DNS at 127.0.0.11).
pub fn write_etc_files(dir: &Path, task_id: &str, sandbox: &Sandbox) -> io::Result<()> {
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(a) = sandbox.first_addr() {
        hosts.push_str(&format!("{a}\t{task_id}\n"));
    }
    std::fs::write(dir.join("hosts"), hosts)?;
    std::fs::write(dir.join("hostname"), format!("{task_id}\n"))?;
    // The embedded DNS, listening in the task's own namespace: service names first, then the
    // node's resolvers. `ndots:0`: `web` is asked as it is, not with a search domain appended.
    std::fs::write(
        dir.join("resolv.conf"),
        "nameserver 127.0.0.11\noptions ndots:0\n",
    )?;
    Ok(())
}

/// Spawns `cmd` in `sandbox` with `setup` applied in the child. The task does not die with
/// `swarmd`: a restarted `swarmd` adopts it (see [`super::adopt`]).
pub fn spawn(mut cmd: Command, sandbox: &Sandbox, setup: ChildSetup) -> io::Result<Child> {
    let ns = match sandbox {
        Sandbox::Netns { path, .. } => Some(NetNs::open(path).map_err(io::Error::other)?),
        Sandbox::Host => None,
    };
    set_child_setup(&mut cmd, setup);
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("task-spawn".into())
        .spawn(move || {
            let _rt = rt.enter();
            if let Some(ns) = &ns {
                netns::enter(ns.as_fd(), Kind::Net)?;
            }
            netns::unshare(&[Kind::Pid])?;
            cmd.spawn()
        })?
        .join()
        .map_err(|_| io::Error::other("the spawning thread panicked"))?
}

#[allow(unsafe_code)]
fn set_child_setup(cmd: &mut Command, setup: ChildSetup) {
    // SAFETY: the closure runs in the child between fork and exec; `ChildSetup::apply` makes
    // only system calls (its strings were built before the fork).
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }
}
