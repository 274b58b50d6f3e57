//! Asking a lab's managers how its nodes are: `ListNodes` from whichever manager answers, and
//! the wait of `lab start` / `lab restart` until a node is Ready again.

use super::config::Role;
use super::state::{LabDir, LabFile, NodeRecord};
use crate::client::{self, ClientConfig, RpcResultExt};
use anyhow::bail;
use shoal_proto::pb;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Time between two looks at the cluster while waiting.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a node must stay Ready, with no other sign that the new swarmd is the one the
/// managers see, before [`ReadyWatch`] believes it: longer than the grace a manager gives a
/// swarmd whose session closed (one heartbeat period) or a new leader gives every node (two
/// heartbeat expiries), at the default 500 ms × 3.
pub const STEADY: Duration = Duration::from_secs(5);
/// What the agent logs (at `info`) once a manager has accepted its session
/// (`agent/src/session.rs`).
pub const SESSION_LINE: &str = "session established";
/// Part of what a manager restarted while autolock is on logs once at start
/// (`shoal_manager::autolock::LOCKED_MESSAGE`): it waits for `swarmctl swarm unlock`, and will
/// not be Ready before.
pub const LOCKED_LINE: &str = "needs to be unlocked before it can be used";

/// `ListNodes` from the first node of the lab whose control socket answers (managers, and
/// promoted workers once they serve one), trying `last` after the others: a node being
/// restarted answers late, and as a follower just back its view may lag. Returns the name of
/// the node that answered and the nodes it listed; the error says why none did.
pub async fn list_nodes(
    dir: &LabDir,
    file: &LabFile,
    last: &str,
) -> Result<(String, Vec<pb::Node>), String> {
    let cfg = ClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let mut order: Vec<&NodeRecord> = file
        .nodes
        .iter()
        .filter(|n| n.name != last && dir.socket(&n.name).exists())
        .collect();
    order.extend(
        file.nodes
            .iter()
            .filter(|n| n.name == last && dir.socket(&n.name).exists()),
    );
    let mut why = Vec::new();
    for n in order {
        let r = match client::connect_with(&dir.host(&n.name), &cfg).await {
            Ok(mut c) => c.list_nodes(pb::Empty {}).await.rpc(),
            Err(e) => Err(e),
        };
        match r {
            Ok(list) => return Ok((n.name.clone(), list.nodes)),
            Err(e) => why.push(format!("{}: {e:#}", n.name)),
        }
    }
    if why.is_empty() {
        return Err("no manager of the lab has a control socket".into());
    }
    Err(format!("no manager answers ({})", why.join("; ")))
}

/// Whether `name` is listed Ready (and, for a manager, Leader or Reachable); otherwise the node
/// to blame and why.
pub fn check_node(nodes: &[pb::Node], name: &str, role: Role) -> Result<(), (String, String)> {
    let n = nodes
        .iter()
        .find(|n| n.hostname == name)
        .ok_or_else(|| (name.to_string(), format!("{name} is not listed yet")))?;
    if n.state() != pb::NodeState::Ready {
        return Err((
            name.to_string(),
            format!(
                "{name} is {}",
                crate::ctl::names::node_state(n.state()).to_lowercase()
            ),
        ));
    }
    if role == Role::Manager && !matches!(n.manager_status.as_str(), "Leader" | "Reachable") {
        return Err((
            name.to_string(),
            format!(
                "manager {name} is {:?} (raft)",
                if n.manager_status.is_empty() {
                    "not a raft member yet"
                } else {
                    n.manager_status.as_str()
                }
            ),
        ));
    }
    Ok(())
}

/// Decides when a node whose swarmd was started again is Ready *again*. A manager gives a
/// swarmd whose session closed one heartbeat period to come back before it marks the node Down
/// (`monitor_heartbeats` in `manager/src/dispatcher/mod.rs`), so across a quick restart
/// `ListNodes` may say Ready throughout, about the old process. A Ready counts once one of
/// these shows it is the new swarmd's:
/// - the node was seen not Ready since the start (it went Down and came back);
/// - the new swarmd logged [`SESSION_LINE`];
/// - it stayed Ready for `steady` (a log level above `info` hides that line).
#[derive(Debug, Clone)]
pub struct ReadyWatch {
    steady: Duration,
    seen_not_ready: bool,
    ready_since: Option<Instant>,
}

impl ReadyWatch {
    /// A watch that believes a Ready seen for `steady` without other evidence.
    pub fn new(steady: Duration) -> ReadyWatch {
        ReadyWatch {
            steady,
            seen_not_ready: false,
            ready_since: None,
        }
    }

    /// One look at `now`: `ready` when a manager lists the node Ready, `None` when no manager
    /// answered; `session_logged` when the new swarmd has logged its session. True once the
    /// node is Ready again.
    pub fn observe(&mut self, now: Instant, ready: Option<bool>, session_logged: bool) -> bool {
        match ready {
            None => false,
            Some(false) => {
                self.seen_not_ready = true;
                self.ready_since = None;
                false
            }
            Some(true) => {
                let since = *self.ready_since.get_or_insert(now);
                self.seen_not_ready
                    || session_logged
                    || now.saturating_duration_since(since) >= self.steady
            }
        }
    }
}

/// Whether `path` holds `needle` past byte `from` (what a process appended since).
pub fn logged_since(path: &Path, from: u64, needle: &str) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return false;
    }
    String::from_utf8_lossy(&buf).contains(needle)
}

/// Waits until `node`, whose swarmd `child` was just started (its log then `log_from` bytes
/// long), is Ready again as seen by a live manager of the lab (see [`ReadyWatch`]). Fails when
/// the swarmd exits or at `deadline`. Returns the manager that saw it, or `None` when the node
/// is a locked manager (autolock), which cannot be Ready until an operator unlocks it.
pub async fn wait_ready(
    dir: &LabDir,
    file: &LabFile,
    node: &NodeRecord,
    child: &mut Child,
    log_from: u64,
    deadline: Instant,
) -> anyhow::Result<Option<String>> {
    let mut watch = ReadyWatch::new(STEADY);
    let log = dir.log(&node.name);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("swarmd on {} exited ({status})", node.name);
        }
        let (ready, last) = match list_nodes(dir, file, &node.name).await {
            Ok((manager, nodes)) => match check_node(&nodes, &node.name, node.role) {
                Ok(()) => (Some(true), (manager, format!("{} is ready", node.name))),
                Err((_, why)) => (Some(false), (manager, why)),
            },
            Err(why) => (None, (String::new(), why)),
        };
        if logged_since(&log, log_from, LOCKED_LINE) {
            return Ok(None);
        }
        let logged = logged_since(&log, log_from, SESSION_LINE);
        if watch.observe(Instant::now(), ready, logged) {
            return Ok(Some(last.0));
        }
        if Instant::now() > deadline {
            let by = if last.0.is_empty() {
                String::new()
            } else {
                format!(" (as {} sees it)", last.0)
            };
            bail!(
                "timed out waiting for {} to be Ready again; last seen{by}: {}",
                node.name,
                last.1
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
