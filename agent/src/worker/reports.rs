//! What the managers ask of a node besides running tasks: a task's logs, a command run in a
//! task (`swarmctl task exec`), a network's balancer as the kernel has it. Answers are wire
//! types: this is where the worker meets the session.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::pb;

use super::{Local, Worker};
use crate::logs::{follow, Phase, Tasks};

impl Worker {
    /// Runs `cmd` inside the running task `id` (`swarmctl task exec`).
    pub async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> pb::ExecResult {
        match self.exec_in(id, cmd, timeout).await {
            Some(Ok(out)) => pb::ExecResult {
                stdout: out.stdout,
                stderr: out.stderr,
                exit_code: out.exit_code,
                ..Default::default()
            },
            Some(Err(e)) => pb::ExecResult {
                error: e.to_string(),
                exit_code: -1,
                ..Default::default()
            },
            None => pb::ExecResult {
                error: format!("task {id} is not running on this node"),
                exit_code: -1,
                ..Default::default()
            },
        }
    }

    /// The balancer of network `net` on this node, as the kernel has it.
    pub async fn lb_report(&self, net: &str) -> pb::LbNodeReport {
        let r = match &self.data_plane {
            Some(dp) => dp.lb_report(net).await.map_err(|e| e.to_string()),
            None => Err("this node runs with --data-plane none: no balancers".to_string()),
        };
        r.unwrap_or_else(|error| pb::LbNodeReport {
            error,
            ..Default::default()
        })
    }

    /// Connection counters of this node's balancers (none with `--data-plane none`).
    pub async fn lb_connections(&self) -> Vec<crate::network::BackendConnections> {
        match &self.data_plane {
            Some(dp) => dp.lb_connections().await,
            None => Vec::new(),
        }
    }

    /// What serving a log request needs of this node (see [`crate::logs::follow`]).
    pub fn log_ctx(&self, node_id: &str) -> follow::Ctx {
        follow::Ctx {
            book: self.logs.clone(),
            tasks: Arc::new(self.clone()),
            node_id: node_id.to_string(),
            timings: follow::Timings {
                keepalive: self.timings.log_keepalive,
                ..follow::Timings::default()
            },
        }
    }
}

impl Tasks for Worker {
    fn log_dir(&self, task_id: &str) -> PathBuf {
        self.executor.log_dir(task_id)
    }

    fn phase(&self, task_id: &str) -> Phase {
        // Live from its start until its supervisor saw it end, also while it stops after the
        // managers dropped it from the assignments (and the worker forgot it).
        if self.logs.is_live(task_id) {
            return Phase::Running;
        }
        match self.lock().get(task_id) {
            Some(Local::Running { .. }) => Phase::Running,
            Some(Local::Done(_)) => Phase::Ended,
            None => Phase::Unknown,
        }
    }
}
