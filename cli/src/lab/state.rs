//! Where a lab keeps its state, and `lab.json`, the record of what was made.
//!
//! ```text
//! <root>/<lab>/            root = $SHOAL_LAB_DIR or /var/lib/shoal/labs
//!   lab.json               this module's LabFile
//!   netns/                 namespace files: ul, manager1, …, worker2
//!   nodes/<node>/          the node's swarmd --state-dir, with swarmd.log and swarmd.sock
//!   registry/              the lab's image registry: config.yml, registry.log, data/
//! ```

use super::config::{
    deserialize_subnet, host_link, LabSpec, NodePlan, Role, HOST_PEER, UNDERLAY_BRIDGE, UNDERLAY_NS,
};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use shoal_proto::model::Ipv4Net;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

/// Where labs live unless `SHOAL_LAB_DIR` says otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/shoal/labs";

/// The directory holding every lab: `$SHOAL_LAB_DIR`, else [`DEFAULT_ROOT`]; made absolute and
/// canonical when it exists, so paths compared with `/proc/<pid>/cwd` match.
pub fn root() -> PathBuf {
    let p = std::env::var_os("SHOAL_LAB_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let p = if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    };
    p.canonicalize().unwrap_or(p)
}

/// The paths of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabDir {
    /// The lab's name.
    pub name: String,
    /// `<root>/<name>`.
    pub dir: PathBuf,
}

impl LabDir {
    /// Lab `name` under `root`.
    pub fn new(root: &Path, name: &str) -> LabDir {
        LabDir {
            name: name.to_string(),
            dir: root.join(name),
        }
    }

    /// `lab.json`.
    pub fn file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }

    /// The namespace files' directory.
    pub fn netns(&self) -> PathBuf {
        self.dir.join("netns")
    }

    /// The directory of every node's state dir.
    pub fn nodes(&self) -> PathBuf {
        self.dir.join("nodes")
    }

    /// Node `node`'s `--state-dir`.
    pub fn node(&self, node: &str) -> PathBuf {
        self.nodes().join(node)
    }

    /// Node `node`'s swarmd log (its stdout and stderr).
    pub fn log(&self, node: &str) -> PathBuf {
        self.node(node).join("swarmd.log")
    }

    /// Node `node`'s control socket (managers serve one).
    pub fn socket(&self, node: &str) -> PathBuf {
        self.node(node).join("swarmd.sock")
    }

    /// Node `node`'s certificates (its `--state-dir`'s), for `--cert-dir` / `SWARM_CERT_DIR`.
    pub fn certs(&self, node: &str) -> PathBuf {
        self.node(node).join("certificates")
    }

    /// `unix://…/swarmd.sock` of node `node`, for `--host` / `SWARM_HOST`.
    pub fn host(&self, node: &str) -> String {
        format!("unix://{}", self.socket(node).display())
    }

    /// The lab's image registry's directory (see [`super::registry`]).
    pub fn registry(&self) -> PathBuf {
        self.dir.join("registry")
    }

    /// The registry's config file: the argument of its `serve`, by which it is recognised.
    pub fn registry_config(&self) -> PathBuf {
        self.registry().join("config.yml")
    }

    /// Reads `lab.json`; `Ok(None)` when there is none.
    pub fn load(&self) -> anyhow::Result<Option<LabFile>> {
        let p = self.file();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .with_context(|| format!("{} is not a lab record", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Writes `lab.json` (to a temporary file renamed over it, so a crash leaves the old or the
    /// new record, never half of one).
    pub fn save(&self, lab: &LabFile) -> anyhow::Result<()> {
        let p = self.file();
        let tmp = self.dir.join(".lab.json.tmp");
        let body = serde_json::to_vec_pretty(lab).context("encoding lab.json")?;
        std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("cannot write {}", p.display()))
    }
}

/// The underlay namespace and its bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Underlay {
    /// Namespace file.
    pub netns: PathBuf,
    /// Bridge every node's veth is a port of.
    pub bridge: String,
}

/// The host's own leg on the underlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEndpoint {
    /// Its veth in the host namespace (`swlab-<name>`).
    pub link: String,
    /// The veth's other end, in the underlay namespace.
    pub peer: String,
    /// Its address (`.254`).
    pub address: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
}

/// One node as made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `manager1`, `worker2`.
    pub name: String,
    /// Manager or worker (as started; promotions are not tracked).
    pub role: Role,
    /// Address of its `eth0`.
    pub address: Ipv4Addr,
    /// Namespace file.
    pub netns: PathBuf,
    /// `--state-dir`.
    pub state_dir: PathBuf,
    /// Its veth's end in the underlay namespace.
    pub link: String,
    /// Pid of its swarmd, once started; `None` after `lab stop`.
    pub pid: Option<u32>,
    /// Its swarmd's arguments without `--join`/`--token` (its state dir holds its identity):
    /// what `lab start` and `lab restart` run. Empty in a `lab.json` written before they were
    /// recorded; see [`NodeRecord::swarmd_args`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl NodeRecord {
    /// The node as planned (for [`super::procs::swarmd_args`]).
    pub fn plan(&self) -> NodePlan {
        NodePlan {
            name: self.name.clone(),
            role: self.role,
            address: self.address,
            link: self.link.clone(),
        }
    }

    /// The arguments to start its swarmd again: the recorded ones, or for a `lab.json` that
    /// has none, those `lab up` gives (with `extra`, the flags of `SHOAL_LAB_SWARMD_ARGS` now)
    /// minus `--join`/`--token`.
    pub fn swarmd_args(&self, dir: &LabDir, extra: &[String]) -> Vec<String> {
        if self.args.is_empty() {
            super::procs::swarmd_args(dir, &self.plan(), None, extra)
        } else {
            self.args.clone()
        }
    }
}

/// The lab's image registry as started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRecord {
    /// Where it listens: the host endpoint, port 5000.
    pub address: SocketAddrV4,
    /// Its pid, once started.
    pub pid: Option<u32>,
    /// The images pushed into it by `lab up` (`shoal/whoami:latest`, …).
    #[serde(default)]
    pub images: Vec<String>,
}

/// `lab.json`: everything a lab made, written as it is made so that `lab down` can undo a
/// partial `lab up` (it also finds namespaces and processes without it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabFile {
    /// Lab name.
    pub name: String,
    /// The underlay subnet.
    #[serde(deserialize_with = "deserialize_subnet")]
    pub subnet: Ipv4Net,
    /// When `lab up` began (ms since the epoch).
    pub created_ms: i64,
    /// The underlay namespace.
    pub underlay: Underlay,
    /// The host endpoint.
    pub host_endpoint: HostEndpoint,
    /// Nodes, managers first.
    pub nodes: Vec<NodeRecord>,
    /// The image registry, once started (absent in a `lab.json` from before labs had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryRecord>,
}

impl LabFile {
    /// The record of a lab about to be built from `spec` in `dir` (no pids yet).
    pub fn plan(spec: &LabSpec, dir: &LabDir, created_ms: i64) -> LabFile {
        LabFile {
            name: spec.name.clone(),
            subnet: spec.subnet,
            created_ms,
            underlay: Underlay {
                netns: dir.netns().join(UNDERLAY_NS),
                bridge: UNDERLAY_BRIDGE.into(),
            },
            host_endpoint: HostEndpoint {
                link: host_link(&spec.name),
                peer: HOST_PEER.into(),
                address: spec.host_address(),
                prefix: spec.subnet.prefix(),
            },
            nodes: spec
                .nodes()
                .into_iter()
                .map(|n| NodeRecord {
                    netns: dir.netns().join(&n.name),
                    state_dir: dir.node(&n.name),
                    name: n.name,
                    role: n.role,
                    address: n.address,
                    link: n.link,
                    pid: None,
                    args: Vec::new(),
                })
                .collect(),
            registry: None,
        }
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// How many managers and workers.
    pub fn counts(&self) -> (usize, usize) {
        let m = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Manager)
            .count();
        (m, self.nodes.len() - m)
    }
}

/// The names of the labs under `root` (directories with a valid lab name), sorted.
pub fn list(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| super::config::check_name(n).is_ok())
        .collect();
    names.sort();
    names
}
