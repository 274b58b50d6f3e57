//! What the managers ask of a node besides running tasks: a task's logs, a command run in a
//! task (`swarmctl task exec`), a network's balancer as the kernel has it. Answers are wire
//! types: this is where the worker meets the session.

use std::time::Duration;

use shoal_proto::pb::{self, LogLine};

use super::Worker;

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

    /// The logs a log request asks for, as this node publishes them.
    pub fn logs(&self, node_id: &str, lr: &pb::LogRequest) -> pb::PublishLogsRequest {
        let mut lines = Vec::new();
        let mut error = String::new();
        for id in &lr.task_ids {
            for stream in ["stdout", "stderr"] {
                match self.executor.read_log(id, stream, lr.tail) {
                    Ok(ls) => lines.extend(ls.into_iter().map(|data| LogLine {
                        task_id: id.clone(),
                        task_name: String::new(),
                        node_id: node_id.to_string(),
                        stream: stream.to_string(),
                        data,
                    })),
                    Err(e) => error = format!("reading logs of task {id}: {e}"),
                }
            }
        }
        pb::PublishLogsRequest {
            node_id: node_id.to_string(),
            request_id: lr.request_id.clone(),
            lines,
            error,
        }
    }
}
