//! `swarmctl lab down`: removes everything a lab made. Idempotent and crash-proof: processes are
//! found from `lab.json` and from `/proc` (by their state dir), namespaces by listing the lab's
//! netns directory, the host link by its exact name; so it works with `lab.json` missing or
//! half-written, and a second run finds nothing to do.

use super::config::{check_name, host_link};
use super::state::{self, LabDir};
use super::{net, procs, require_root, Printer};
use anyhow::{bail, Context};
use serde_json::json;
use shoal_netlib::netns;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long swarmd gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs `lab down --name NAME`.
pub async fn down(name: &str, p: &mut Printer) -> anyhow::Result<()> {
    check_name(name).map_err(anyhow::Error::msg)?;
    require_root("down")?;
    let dir = LabDir::new(&state::root(), name);
    // The browser UI and its terminals first: they are shells into the nodes.
    super::ui::stop(name);
    let removed = remove(&dir, p).await?;
    if p.json {
        p.out
            .json(&json!({ "name": name, "removed": removed, "dir": dir.dir }));
    } else if removed.is_empty() {
        p.say(&format!("lab {name}: nothing to remove"));
    } else {
        p.say(&format!("lab {name} removed"));
    }
    Ok(())
}

/// Removes the lab in `dir`, reporting each step through `p`; returns what was removed.
pub async fn remove(dir: &LabDir, p: &mut Printer) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut note = |p: &mut Printer, what: String| {
        p.say(&format!("  {what}"));
        removed.push(what);
    };
    // A lab.json that cannot be read is no reason to stop: everything is found without it.
    let file = dir.load().ok().flatten();
    let pids: Vec<u32> = file
        .iter()
        .flat_map(|f| f.nodes.iter().filter_map(|n| n.pid))
        .collect();
    let nodes = dir.nodes();
    for (pid, node, how) in procs::stop_swarmds(&pids, &nodes, STOP_GRACE) {
        note(p, format!("stopped swarmd of {node} (pid {pid}, {how})"));
    }
    for pid in procs::kill_leftovers(&nodes) {
        note(p, format!("killed leftover process {pid}"));
    }

    let link = host_link(&dir.name);
    if net::del_host_endpoint(&dir.name)
        .await
        .with_context(|| format!("deleting link {link}"))?
    {
        note(p, format!("deleted link {link}"));
    }

    // Each node's task sandboxes (its data plane keeps them under its state dir).
    for node_dir in std::fs::read_dir(dir.nodes())
        .into_iter()
        .flatten()
        .flatten()
    {
        let task_ns = node_dir.path().join("netns");
        let tasks = netns::list(&task_ns)?;
        for n in &tasks {
            netns::delete_path(&task_ns.join(n))?;
        }
        if !tasks.is_empty() {
            note(
                p,
                format!(
                    "deleted {} task namespace(s) of {}",
                    tasks.len(),
                    node_dir.file_name().to_string_lossy()
                ),
            );
        }
        netns::release_dir(&task_ns)?;
    }

    let ns_dir = dir.netns();
    let names = netns::list(&ns_dir)?;
    for n in &names {
        netns::delete_path(&ns_dir.join(n))?;
    }
    if !names.is_empty() {
        note(p, format!("deleted namespaces {}", names.join(" ")));
    }
    netns::release_dir(&ns_dir)?;

    if dir.dir.exists() {
        let mounts = mounts_under(&dir.dir);
        if !mounts.is_empty() {
            bail!(
                "not removing {}: still mounted there: {} (unmount them and run lab down again)",
                dir.dir.display(),
                mounts
                    .iter()
                    .map(|m| m.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        std::fs::remove_dir_all(&dir.dir)
            .with_context(|| format!("cannot remove {}", dir.dir.display()))?;
        note(p, format!("removed {}", dir.dir.display()));
    }
    Ok(removed)
}

/// Mount points at or below `dir`, from `/proc/self/mountinfo`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mount_points(&text)
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// The mount points (fifth field) of a mountinfo text, octal escapes (`\040`) decoded.
pub fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: &u8| (b'0'..=b'3').contains(c);
        if b[i] == b'\\'
            && i + 3 < b.len()
            && octal(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
