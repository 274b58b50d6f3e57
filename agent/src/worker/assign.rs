//! Assignments in: the data plane's tables handed on, each task reconciled with what runs.

use std::collections::HashSet;

use shoal_proto::model::{Runtime, Task, TaskState};
use shoal_proto::pb;
use tracing::warn;

use super::{Command, Final, Local, Worker};
use crate::executor::files::DataKind;
use crate::executor::oci::images::pinned;
use crate::network::Peer;

impl Worker {
    /// Applies one assignments message.
    pub fn apply(&self, a: &pb::Assignments) {
        // Before the tasks: a task the message brings finds its secrets.
        if a.data_full {
            self.data.replace(a.data.iter().map(|d| {
                let kind = match d.kind() {
                    pb::task_data::Kind::Secret => DataKind::Secret,
                    pb::task_data::Kind::Config => DataKind::Config,
                };
                (kind, d.id.clone(), d.data.clone())
            }));
        }
        if let (true, Some(tx)) = (a.lb_full, &self.lb) {
            tx.send_replace(a.lb.clone());
        }
        if let (true, Some(dp)) = (a.dns_full, &self.data_plane) {
            dp.set_dns(&a.dns);
        }
        if let (true, Some(tx)) = (a.peers_full, &self.peers) {
            let peers: Vec<Peer> = a
                .peers
                .iter()
                .filter_map(|p| {
                    Some((
                        p.network_id.clone(),
                        p.ip.parse().ok()?,
                        p.node_ip.parse().ok()?,
                    ))
                })
                .collect();
            tx.send_replace(peers);
        }
        let tasks: Vec<Task> = a
            .tasks
            .iter()
            .filter_map(|t| Task::try_from(t).ok())
            .collect();
        let mut gone: Vec<String> = a.removed.clone();
        if a.full {
            let keep: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
            gone.extend(
                self.lock()
                    .keys()
                    .filter(|id| !keep.contains(id.as_str()))
                    .cloned(),
            );
        }
        self.record_images(a.full, &tasks, &gone);
        {
            let mut assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
            if a.full {
                assigned.clear();
            }
            for id in &gone {
                assigned.remove(id);
            }
            for t in &a.tasks {
                assigned.insert(t.id.clone(), t.clone());
            }
        }
        for id in gone {
            self.stop_task(&id);
            self.lock().remove(&id);
        }
        for t in tasks {
            self.reconcile(t);
        }
        if let (true, Some(dp)) = (a.full, self.data_plane.clone()) {
            // Overlay sandboxes left by tasks that ended while no agent ran (their ports are
            // gone by now): see DataPlane::sweep_overlays.
            self.background
                .spawn(async move { dp.sweep_overlays().await });
        }
    }

    /// Keeps [`Worker::task_images`]'s table in step with the assignments.
    fn record_images(&self, full: bool, tasks: &[Task], gone: &[String]) {
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        if full {
            images.clear();
        }
        for id in gone {
            images.remove(id);
        }
        for t in tasks {
            if t.spec.runtime == Runtime::Container {
                let image = pinned(&t.spec.image, &t.spec.image_digest);
                let task = t.name();
                images.insert(t.id.to_string(), super::TaskImage { task, image });
            }
        }
    }

    /// Asks a running task's supervisor to stop it. With a data plane the stop waits the
    /// task's drain (its service's `--stop-drain`, else [`super::Timings::lb_drain`]): the
    /// managers took the task out of every balancer and DNS answer when they asked for its stop
    /// and the nodes reprogram within milliseconds, so no new connection is balanced to a task
    /// already gone, and the connections it has keep working meanwhile.
    pub(super) fn stop_task(&self, id: &str) {
        if let Some(Local::Running { cmd, drain, .. }) = self.lock().get(id) {
            let drain = match self.data_plane {
                Some(_) => *drain,
                None => std::time::Duration::ZERO,
            };
            let _ = cmd.send(Command::Stop { drain });
        }
    }

    /// The drain of a task of `spec` (see [`Worker::stop_task`]).
    pub(super) fn drain_of(&self, spec: &shoal_proto::model::ServiceSpec) -> std::time::Duration {
        spec.stop_drain_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(self.timings.lb_drain)
    }

    /// Records a task's end and reports it.
    pub(super) fn finish(&self, id: &str, f: Final, insert: bool) {
        {
            let mut map = self.lock();
            match map.get_mut(id) {
                Some(e) => *e = Local::Done(f.clone()),
                // A task dropped from the assignments while it stopped stays dropped.
                None if !insert => {}
                None => {
                    map.insert(id.to_string(), Local::Done(f.clone()));
                }
            }
        }
        self.reporter.report_status(id, f.status());
    }

    fn reconcile(&self, t: Task) {
        let done = match self.lock().get(t.id.as_str()) {
            Some(Local::Done(f)) => Some(f.clone()),
            _ => None,
        };
        if let Some(f) = done {
            // The managers still think it runs: our report was lost (e.g. a leader change).
            if !t.status.state.is_terminal() {
                self.reporter.report_status(&t.id, f.status());
            }
            return;
        }
        let known = self.lock().contains_key(t.id.as_str());
        if t.desired_state > TaskState::Running {
            if known {
                self.stop_task(&t.id);
            } else if !t.status.state.is_terminal() {
                // Never started here (or lost in an agent restart): nothing to stop.
                self.finish(&t.id, Final::shutdown(None), true);
            }
            return;
        }
        if known {
            // Adopted after a restart: the data plane learns the task's networks again (its
            // namespaces are there; `prepare` only records them).
            let adopted = matches!(
                self.lock().get(t.id.as_str()),
                Some(Local::Running { adopted: true, .. })
            );
            if adopted {
                // Its supervisor learns the task's stop grace and health check; a stop waits
                // its service's drain.
                let drain = self.drain_of(&t.spec);
                if let Some(Local::Running {
                    adopted,
                    drain: d,
                    cmd,
                    ..
                }) = self.lock().get_mut(t.id.as_str())
                {
                    *adopted = false;
                    *d = drain;
                    let _ = cmd.send(Command::Adopted(Box::new(t.clone())));
                }
            }
            if let (true, Some(dp)) = (adopted, self.data_plane.clone()) {
                self.background.spawn(async move {
                    if let Err(e) = dp.prepare(&t).await {
                        warn!(task.id = %t.id, "re-registering an adopted task's networks: {e}");
                    }
                });
            }
            return;
        }
        if t.status.state >= TaskState::Accepted {
            // We accepted it before, but this agent has no record: swarmd restarted and the
            // task's process went with it. Report it so the orchestrator replaces it.
            let f = Final {
                state: TaskState::Failed,
                message: "task lost",
                err: "the task's process ended when swarmd restarted".into(),
                exit_code: None,
                health: shoal_proto::model::TaskHealth::None,
            };
            self.finish(&t.id, f, true);
            return;
        }
        if t.desired_state < TaskState::Running {
            return; // waiting for a restart delay
        }
        self.start(t);
    }
}
