//! The node's identity on disk (`<state-dir>/node.json`): written once at init or join, read on
//! every restart so the node comes back as itself.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use shoal_security::{Credentials, Transport};
use std::path::Path;
use tracing::warn;

/// What a node remembers about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    /// Node id.
    pub node_id: String,
    /// `manager` or `worker` at the last change.
    pub manager: bool,
    /// Raft member id (managers).
    pub raft_id: u64,
    /// Cluster id.
    pub cluster_id: String,
    /// Joined or made with `--insecure-plaintext` (no certificates).
    #[serde(default)]
    pub plaintext: bool,
    /// The listen address the node had when it made or joined the swarm (`IP:PORT`): used on
    /// restart when `--listen-addr` is left at its default.
    #[serde(default)]
    pub listen_addr: String,
    /// Its advertised address then: used on restart without `--advertise-addr`.
    #[serde(default)]
    pub advertise_addr: String,
}

const FILE: &str = "node.json";

impl Identity {
    /// Reads the identity, if this state dir has one.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Identity>> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("corrupt {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the identity atomically and durably (a power cut leaves the old file or the new).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(FILE);
        shoal_security::durable::write(&path, &serde_json::to_vec_pretty(self)?, 0o600)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The transport of a node restarting with this identity: its saved certificates in
    /// `certs_dir` (none for a cluster made with `--insecure-plaintext`, which `insecure_flag`
    /// should then repeat).
    pub fn transport(&self, certs_dir: &Path, insecure_flag: bool) -> anyhow::Result<Transport> {
        if self.plaintext {
            if !insecure_flag {
                warn!("this node belongs to a cluster without TLS (--insecure-plaintext)");
            }
            return Ok(Transport::Plain);
        }
        let dir = certs_dir;
        let creds = Credentials::load(dir)
            .with_context(|| format!("cannot read the node's certificates in {}", dir.display()))?
            .ok_or_else(|| anyhow::anyhow!("no certificates in {}: this state dir's node cannot prove who it is; clear the state dir and join again with a token", dir.display()))?;
        let id = creds.identity();
        if id.node_id != self.node_id || id.cluster_id != self.cluster_id {
            bail!(
                "the certificate in {} is for node {} of cluster {}, not this node ({} of {})",
                dir.display(),
                id.node_id,
                id.cluster_id,
                self.node_id,
                self.cluster_id
            );
        }
        Ok(Transport::Node(creds))
    }
}

/// Managers remembered by the agent (`managers.json`), if any.
pub fn load_managers(dir: &Path) -> Vec<String> {
    std::fs::read(dir.join("managers.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
