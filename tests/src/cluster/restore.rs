//! A cluster restored from a state dir made earlier, by another version of `swarmd`.

use super::{Cluster, NodeProc, Timings};
use crate::ports::FixedPort;
use std::path::Path;
use std::sync::Mutex;

impl Cluster {
    /// Starts the current `swarmd` on a copy of `state_dir`, the state dir of a single manager
    /// made earlier (by another version), as node `hostname` listening on `port` — the address
    /// baked into its raft membership — with `timings`, and waits until `node ls` shows it
    /// Ready and leading.
    pub fn restore(state_dir: &Path, hostname: &str, port: FixedPort, timings: Timings) -> Cluster {
        let mut c = Cluster::empty(timings);
        let dir = c.root.join(hostname);
        copy_dir(state_dir, &dir);
        c.nodes.push(NodeProc {
            hostname: hostname.to_string(),
            dir,
            addr: format!("127.0.0.1:{}", port.port),
            manager: true,
            child: Mutex::new(None),
        });
        c.fixed_port = Some(port);
        c.spawn(0, None);
        c.wait_member(0, 0);
        c
    }
}

/// Copies the directory `from` to `to` (files and directories only).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
    for e in entries.flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", src.display()));
        }
    }
}
