//! `swarmctl lab down`: removes everything a lab made, and ends the `lab shell` / `lab exec`
//! sessions still open in its namespaces. Idempotent and crash-proof: processes are
//! found from `lab.json` and from `/proc` (by their state dir), namespaces by listing the lab's
//! netns directory, the host link by its exact name; so it works with `lab.json` missing or
//! half-written, and a second run finds nothing to do.

use super::config::{check_name, host_link, UNDERLAY_NS};
use super::state::{self, LabDir};
use super::{containers, net, procs, registry, require_root, sessions, Printer};
use anyhow::{bail, Context};
use serde_json::json;
use shoal_netlib::netns;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long swarmd gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a `lab shell` / `lab exec` session gets to end after SIGHUP before it is killed.
pub const SHELL_GRACE: Duration = Duration::from_secs(2);

/// Runs `lab down --name NAME`.
pub async fn down(name: &str, p: &mut Printer) -> anyhow::Result<()> {
    check_name(name).map_err(anyhow::Error::msg)?;
    require_root("down")?;
    let root = state::root();
    let dir = LabDir::new(&root, name);
    // The browser UI and its terminals first: they are shells into the nodes.
    super::ui::stop(name);
    let removed = remove(&dir).await?;
    if p.json {
        p.out
            .json(&json!({ "name": name, "removed": removed.items, "dir": dir.dir }));
    } else if removed.is_empty() {
        // Nothing to do is no failure (`down` is idempotent), but a mistyped name should show.
        p.say(&format!(
            "lab {name}: nothing to remove; {}",
            super::describe_labs(&super::labs_here(&root))
        ));
    } else {
        p.say(&removed.summary(name));
    }
    Ok(())
}

/// What [`remove`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// One line per thing removed (`--format json` lists them).
    pub items: Vec<String>,
    /// The swarmds stopped: pid, node, and `SIGTERM` or `SIGKILL`.
    pub swarmds: Vec<(u32, String, String)>,
    /// The lab's image registry stopped: pid and `SIGTERM` or `SIGKILL`.
    pub registry: Option<(u32, String)>,
    /// Task processes that outlived their swarmd, killed.
    pub task_processes: usize,
    /// Containers (which outlive swarmd) deleted with the node's OCI runtime.
    pub containers: usize,
    /// `lab shell` / `lab exec` sessions ended.
    pub shells: usize,
    /// Node namespaces deleted.
    pub node_namespaces: usize,
    /// Whether the underlay namespace was deleted.
    pub underlay: bool,
    /// Task sandboxes (namespaces under the nodes' state dirs) deleted.
    pub task_sandboxes: usize,
    /// The host link deleted.
    pub link: Option<String>,
    /// Whether the lab's directory was removed.
    pub dir: bool,
}

impl Removal {
    /// Whether nothing was there.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One line for `lab down`: `lab demo removed: 5 swarmd stopped (SIGTERM), 12 task processes
    /// and 2 shells ended, 5 node namespaces and the underlay, 23 task sandboxes, link
    /// swlab-demo`.
    pub fn summary(&self, name: &str) -> String {
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if !self.swarmds.is_empty() {
            let killed = self.swarmds.iter().filter(|s| s.2 == "SIGKILL").count();
            let how = match killed {
                0 => "SIGTERM".to_string(),
                k if k == self.swarmds.len() => "SIGKILL".to_string(),
                k => format!("{} SIGTERM, {k} SIGKILL", self.swarmds.len() - k),
            };
            parts.push(format!("{} swarmd stopped ({how})", self.swarmds.len()));
        }
        if let Some((pid, how)) = &self.registry {
            parts.push(format!("registry stopped (pid {pid}, {how})"));
        }
        let ended: Vec<String> = [
            (self.task_processes, "task process", "task processes"),
            (self.shells, "shell", "shells"),
        ]
        .into_iter()
        .filter(|(n, ..)| *n > 0)
        .map(|(n, one, many)| count(n, one, many))
        .collect();
        if !ended.is_empty() {
            parts.push(format!("{} ended", ended.join(" and ")));
        }
        match (self.node_namespaces, self.underlay) {
            (0, false) => {}
            (0, true) => parts.push("the underlay namespace".into()),
            (n, u) => parts.push(format!(
                "{}{}",
                count(n, "node namespace", "node namespaces"),
                if u { " and the underlay" } else { "" }
            )),
        }
        if self.containers > 0 {
            parts.push(count(self.containers, "container", "containers"));
        }
        if self.task_sandboxes > 0 {
            parts.push(count(self.task_sandboxes, "task sandbox", "task sandboxes"));
        }
        if let Some(link) = &self.link {
            parts.push(format!("link {link}"));
        }
        if parts.is_empty() && self.dir {
            parts.push("its directory".into());
        }
        format!("lab {name} removed: {}", parts.join(", "))
    }
}

/// Removes the lab in `dir`; returns what was removed.
pub async fn remove(dir: &LabDir) -> anyhow::Result<Removal> {
    let mut r = Removal::default();
    // A lab.json that cannot be read is no reason to stop: everything is found without it.
    let file = dir.load().ok().flatten();
    let pids: Vec<u32> = file
        .iter()
        .flat_map(|f| f.nodes.iter().filter_map(|n| n.pid))
        .collect();
    let nodes = dir.nodes();
    for (pid, node, how) in procs::stop_swarmds(&pids, &nodes, STOP_GRACE) {
        r.items
            .push(format!("stopped swarmd of {node} (pid {pid}, {how})"));
        r.swarmds.push((pid, node, how));
    }
    // Containers outlive their swarmd (a restart adopts them): delete them with each node's
    // runtime, then unmount their roots.
    for node_dir in std::fs::read_dir(&nodes).into_iter().flatten().flatten() {
        let node = node_dir.file_name().to_string_lossy().to_string();
        let args = file
            .iter()
            .flat_map(|f| f.nodes.iter())
            .find(|n| n.name == node)
            .map(|n| n.args.clone())
            .unwrap_or_default();
        let deleted = containers::delete_all(&containers::runtime_of(&args), &node_dir.path());
        if !deleted.is_empty() {
            r.items
                .push(format!("deleted {} container(s) of {node}", deleted.len()));
            r.containers += deleted.len();
        }
    }
    for pid in procs::kill_leftovers(&nodes) {
        r.items.push(format!("killed leftover process {pid}"));
        r.task_processes += 1;
    }
    for m in containers::unmount_roots(&mounts_under(&dir.dir)) {
        r.items.push(format!("unmounted {}", m.display()));
    }
    // Whatever still runs in the lab's namespaces was started there by `lab shell` or `lab
    // exec` (the swarmds and their tasks are gone).
    let ns_dir = dir.netns();
    let names = netns::list(&ns_dir)?;
    // Never the host's namespace (init's), whatever a file there turned out to be.
    let host = sessions::ns_id(Path::new("/proc/1/ns/net"));
    let ids: Vec<(u64, u64)> = names
        .iter()
        .filter_map(|n| sessions::ns_id(&ns_dir.join(n)))
        .filter(|id| Some(*id) != host)
        .collect();
    let ended = sessions::end_sessions(&ids, &nodes, SHELL_GRACE);
    // The registry last of the processes: the nodes pull from it until they are gone. The one
    // lab.json records, and any other serving this lab's config (a record lost in a crash).
    let config = dir.registry_config();
    let mut registries: Vec<u32> = file
        .iter()
        .filter_map(|f| f.registry.as_ref()?.pid)
        .collect();
    for pid in registry::running(&config) {
        if !registries.contains(&pid) {
            registries.push(pid);
        }
    }
    for pid in registries {
        if let Some(how) = registry::stop(pid, &config) {
            r.items
                .push(format!("stopped the registry (pid {pid}, {how})"));
            r.registry = Some((pid, how.to_string()));
        }
    }
    for pid in &ended.pids {
        r.items
            .push(format!("ended process {pid} of a lab shell or exec"));
    }
    r.shells = ended.sessions;

    let link = host_link(&dir.name);
    if net::del_host_endpoint(&dir.name)
        .await
        .with_context(|| format!("deleting link {link}"))?
    {
        r.items.push(format!("deleted link {link}"));
        r.link = Some(link);
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
            r.items.push(format!(
                "deleted {} task namespace(s) of {}",
                tasks.len(),
                node_dir.file_name().to_string_lossy()
            ));
            r.task_sandboxes += tasks.len();
        }
        netns::release_dir(&task_ns)?;
    }

    for n in &names {
        netns::delete_path(&ns_dir.join(n))?;
    }
    if !names.is_empty() {
        r.items
            .push(format!("deleted namespaces {}", names.join(" ")));
        r.underlay = names.iter().any(|n| n == UNDERLAY_NS);
        r.node_namespaces = names.iter().filter(|n| *n != UNDERLAY_NS).count();
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
        r.items.push(format!("removed {}", dir.dir.display()));
        r.dir = true;
    }
    Ok(r)
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
