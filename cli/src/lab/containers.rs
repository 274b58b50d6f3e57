//! Containers a lab's nodes leave behind. A container outlives its `swarmd` on purpose (a
//! restart adopts it), so `lab down`, after stopping the swarmds, deletes each node's
//! containers with the OCI runtime that node used (`--root <state>/oci`) and unmounts their
//! root file systems, before the namespaces and the directory go.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The runtime a node's swarmd was started with (`--oci-runtime`, else runc).
pub fn runtime_of(args: &[String]) -> String {
    let spaced = args
        .iter()
        .position(|a| a == "--oci-runtime")
        .and_then(|i| args.get(i + 1).cloned());
    let joined = || {
        args.iter()
            .find_map(|a| a.strip_prefix("--oci-runtime=").map(str::to_string))
    };
    spaced.or_else(joined).unwrap_or_else(|| "runc".to_string())
}

/// Deletes (`delete --force`: killed, cgroups removed) every container under `state/oci` with
/// `runtime`; returns their ids. A runtime that is missing or fails is skipped: the processes
/// are then found by the lab's leftover sweep and the mounts by [`unmount_roots`].
pub fn delete_all(runtime: &str, state: &Path) -> Vec<String> {
    let root = state.join("oci");
    if !root.is_dir() {
        return Vec::new();
    }
    let run = |args: &[&str]| {
        Command::new(runtime)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let Some(list) = run(&["list", "-q"]) else {
        return Vec::new();
    };
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    ids.into_iter()
        .filter(|id| run(&["delete", "--force", id]).is_some())
        .collect()
}

/// Unmounts (lazily) the container roots (`…/bundle/rootfs`) and the tmpfs a task's secrets
/// are written to before its container exists (`…/tasks/<id>/files`, left by a node killed in
/// between) among `mounts`; returns them.
pub fn unmount_roots(mounts: &[PathBuf]) -> Vec<PathBuf> {
    mounts
        .iter()
        .filter(|m| m.ends_with("bundle/rootfs") || is_task_files(m))
        .filter(|m| nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH).is_ok())
        .cloned()
        .collect()
}

/// `…/tasks/<id>/files`.
fn is_task_files(m: &std::path::Path) -> bool {
    m.ends_with("files")
        && m.parent()
            .and_then(|p| p.parent())
            .is_some_and(|p| p.ends_with("tasks"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_runtime_from_its_arguments() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(runtime_of(&a(&["--state-dir", "/x"])), "runc");
        assert_eq!(runtime_of(&a(&["--oci-runtime", "crun"])), "crun");
        assert_eq!(
            runtime_of(&a(&["--oci-runtime=/usr/bin/crun"])),
            "/usr/bin/crun"
        );
    }

    #[test]
    fn only_container_roots_are_unmounted() {
        // Nothing here is mounted: the filter alone is under test (umount2 fails, nothing kept).
        let m = [PathBuf::from("/nonexistent/lab/nodes/w1/netns/t1")];
        assert!(unmount_roots(&m).is_empty());
        assert!(is_task_files(std::path::Path::new(
            "/lab/nodes/w1/tasks/abc/files"
        )));
        assert!(!is_task_files(std::path::Path::new("/lab/nodes/w1/files")));
    }
}
