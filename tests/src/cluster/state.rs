//! Reading the cluster's state: the leader, tasks and their processes.

use super::{Cluster, CONVERGE};
use crate::views::{ServiceView, TaskView};
use crate::wait::wait_for;
use std::time::Duration;

impl Cluster {
    // ----- cluster state -----

    pub(super) fn try_leader(&self) -> Result<usize, String> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for i in self.managers() {
            if !self.is_running(i) {
                continue;
            }
            let Ok(nodes) = self.try_nodes(i) else {
                continue;
            };
            let leader = nodes
                .iter()
                .find(|n| n.manager_status == "Leader")
                .map(|n| n.hostname.clone())
                .unwrap_or_default();
            seen.push((self.nodes[i].hostname.clone(), leader));
        }
        let first = seen.first().map(|(_, l)| l.clone()).unwrap_or_default();
        if first.is_empty() || seen.iter().any(|(_, l)| *l != first) {
            return Err(format!(
                "managers' view of the leader (manager, leader): {seen:?}"
            ));
        }
        let i = self
            .index_of_hostname(&first)
            .ok_or_else(|| format!("unknown leader {first}"))?;
        if !self.is_running(i) {
            return Err(format!(
                "the managers still name {first}, which is not running, as leader"
            ));
        }
        Ok(i)
    }

    /// The leader's index, once every running manager that answers agrees on one that is running.
    pub fn leader(&self) -> usize {
        wait_for(
            "the running managers to agree on a running leader",
            CONVERGE,
            || {
                self.check_alive();
                self.try_leader()
            },
        )
    }

    /// A running manager that answers (the leader if possible).
    pub fn any_manager(&self) -> usize {
        if let Ok(i) = self.try_leader() {
            return i;
        }
        wait_for("a running manager that answers", CONVERGE, || {
            self.managers()
                .into_iter()
                .find(|&i| self.is_running(i) && self.ctl(i, &["node", "ls", "-q"]).success())
                .ok_or_else(|| "no manager answers".to_string())
        })
    }

    /// Whether the process of task `t` is alive on the node the task is placed on: its pid
    /// exists and its working directory is that task's directory in that node's state dir.
    pub fn task_process(&self, t: &TaskView) -> Result<(), String> {
        let i = self
            .index_of(&t.node_id)
            .ok_or_else(|| format!("task {} is on unknown node {:?}", t.name, t.node_id))?;
        if t.pid == 0 {
            return Err(format!("task {} reports no pid", t.name));
        }
        let want = self.nodes[i].dir.join("tasks").join(&t.id);
        match std::fs::read_link(format!("/proc/{}/cwd", t.pid)) {
            Ok(cwd) if cwd == want => Ok(()),
            Ok(cwd) => Err(format!(
                "pid {} of task {} runs in {} instead of {}",
                t.pid,
                t.name,
                cwd.display(),
                want.display()
            )),
            Err(e) => Err(format!(
                "no process {} for task {} on {}: {e}",
                t.pid, t.name, self.nodes[i].hostname
            )),
        }
    }

    /// Waits until service `service` has exactly `n` tasks, all running with their processes
    /// alive on their nodes, every task it no longer wants has stopped, and `service ls` says
    /// `n/n`. Returns the running tasks.
    pub fn wait_running(&self, via: usize, service: &str, n: usize) -> Vec<TaskView> {
        self.wait_running_within(via, service, n, CONVERGE)
    }

    /// [`Cluster::wait_running`] with another deadline.
    pub fn wait_running_within(
        &self,
        via: usize,
        service: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<TaskView> {
        wait_for(&format!("{n} running tasks of {service}"), timeout, || {
            self.check_alive();
            let tasks = TaskView::list(&self.try_json(via, &["service", "ps", service])?);
            let running: Vec<TaskView> = tasks.iter().filter(|t| t.is_running()).cloned().collect();
            let live = tasks.iter().filter(|t| t.is_live()).count();
            if running.len() != n || live != n {
                return Err(format!(
                    "{} running, {live} wanted: {}",
                    running.len(),
                    brief(&tasks)
                ));
            }
            for t in &running {
                self.task_process(t)?;
            }
            for t in tasks.iter().filter(|t| !t.is_live() && t.pid != 0) {
                if self.task_process(t).is_ok() {
                    return Err(format!(
                        "task {} is no longer wanted but its process {} still runs",
                        t.name, t.pid
                    ));
                }
            }
            let svc = ServiceView::list(&self.try_json(via, &["service", "ls"])?)
                .into_iter()
                .find(|s| s.name == service)
                .ok_or_else(|| format!("service {service} not in service ls"))?;
            if (svc.running, svc.desired) != (n as u64, n as u64) {
                return Err(format!("service ls shows {}/{}", svc.running, svc.desired));
            }
            Ok(running)
        })
    }
}

/// `web.1@node state/desired` for each task, for messages.
fn brief(tasks: &[TaskView]) -> String {
    tasks
        .iter()
        .map(|t| {
            format!(
                "{}.{}@{} {}/{}",
                t.service,
                t.slot,
                t.node_id.chars().take(6).collect::<String>(),
                t.state,
                t.desired
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
