//! One slot of a replicated service, or one node of a global service: keep exactly one live
//! task there, replacing it when its node fails, its spec is outdated or it ended and the
//! restart policy says so.

use super::update::Gate;
use super::{newest_first, restart, Plan};
use shoal_proto::model::{Service, ServiceSpec, Task, TaskState, UpdateOrder};

/// Where a slot's tasks go: a slot number (replicated) or a node (global, slot 0).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    /// Slot number; 0 for global services.
    pub slot: u64,
    /// Preset node for global services; empty for replicated ones.
    pub node_id: &'a str,
}

/// Whether `t` was made from an older spec that runs differently from the service's current one
/// (SwarmKit's `IsTaskDirty`): a new spec version alone is not enough, since scaling or relabelling
/// a service bumps it without changing what its tasks run.
pub(crate) fn outdated(svc: &Service, t: &Task) -> bool {
    t.spec_version < svc.spec_version && !runs_the_same(&t.spec, &svc.spec)
}

/// Equal but for the fields that do not reach the tasks (replica count, service labels, update
/// and rollback policies).
/// Destructured in full so that a new spec field has to be sorted into one kind or the other.
pub fn runs_the_same(a: &ServiceSpec, b: &ServiceSpec) -> bool {
    let ServiceSpec {
        name,
        mode: _,
        image,
        args,
        env,
        ports,
        networks,
        endpoint_mode,
        restart,
        constraints,
        labels: _,
        stop_grace_ms,
        limit_memory_bytes,
        limit_cpus,
        force_update,
        runtime,
        image_digest,
        entrypoint,
        user,
        workdir,
        tty,
        init,
        update: _,
        rollback: _,
        healthcheck,
        stop_drain_ms,
        secrets,
        configs,
        container_labels,
    } = a;
    *name == b.name
        && *image == b.image
        && *args == b.args
        && *env == b.env
        && same_ports(ports, &b.ports)
        && *networks == b.networks
        && *endpoint_mode == b.endpoint_mode
        && *restart == b.restart
        && *constraints == b.constraints
        && *force_update == b.force_update
        && *stop_grace_ms == b.stop_grace_ms
        && *limit_memory_bytes == b.limit_memory_bytes
        && *limit_cpus == b.limit_cpus
        && *runtime == b.runtime
        && *image_digest == b.image_digest
        && *entrypoint == b.entrypoint
        && *user == b.user
        && *workdir == b.workdir
        && *tty == b.tty
        && *init == b.init
        // The agent probes, and drains, by the task's own spec.
        && *healthcheck == b.healthcheck
        && *stop_drain_ms == b.stop_drain_ms
        // The files a task gets (rotation is `--secret-rm old --secret-add src=new,…`).
        && *secrets == b.secrets
        && *configs == b.configs
        // Docker replaces a task whose container labels changed.
        && *container_labels == b.container_labels
}

/// A task's ports (published numbers filled in by the allocator) against a spec's (0 = any).
fn same_ports(
    task: &[shoal_proto::model::PortConfig],
    spec: &[shoal_proto::model::PortConfig],
) -> bool {
    task.len() == spec.len()
        && task.iter().zip(spec).all(|(t, s)| {
            t.protocol == s.protocol
                && t.target == s.target
                && t.mode == s.mode
                && (s.published == 0 || t.published == s.published)
        })
}

/// Tasks the orchestrator still wants running (desired RUNNING or lower).
fn active<'t>(tasks: &[&'t Task]) -> Vec<&'t Task> {
    let mut v: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.desired_state <= TaskState::Running)
        .collect();
    v.sort_by(newest_first);
    v
}

/// The slot is done for good: nothing is wanted running in it and a task of the current spec
/// ended in a way the restart policy does not replace (`none`, `on-failure` after exit 0, or
/// attempts used up). Such a slot stays empty instead of counting as missing. An update that
/// changes what tasks run makes the slot live again (the ended task is outdated).
///
/// This needs no memory because the orchestrator never leaves a slot without a wanted task for
/// any other reason: a task it stops for a node failure or an update comes with its
/// replacement, and a slot (or global node) that goes away has its tasks marked REMOVE.
pub(crate) fn finished(svc: &Service, tasks: &[&Task]) -> bool {
    let retired =
        |t: &&&Task| t.desired_state > TaskState::Running && t.desired_state < TaskState::Remove;
    active(tasks).is_empty()
        && tasks.iter().filter(retired).any(|t| {
            !outdated(svc, t)
                && t.status.state.is_terminal()
                && !restart::allowed(&svc.spec.restart, t)
        })
}

/// Whether the slot counts toward the service's replicas: something is (or will be) running in
/// it, it waits for a restart, or it is finished. `tasks` excludes tasks marked REMOVE.
pub(crate) fn occupied(svc: &Service, tasks: &[&Task]) -> bool {
    !active(tasks).is_empty() || finished(svc, tasks)
}

/// Reconciles one slot whose place can keep tasks (for global services: a node that can take
/// new tasks). `tasks` excludes tasks marked REMOVE. `gate` says whether an outdated task may be
/// replaced now, and how (see [`super::update`]). Returns [`occupied`] for the slot; when it is
/// false the caller decides whether to start a fresh task there.
pub(crate) fn reconcile(
    p: &mut Plan<'_, '_>,
    svc: &Service,
    place: Place<'_>,
    tasks: &[&Task],
    gate: &mut Gate,
) -> bool {
    let active = active(tasks);
    if active.is_empty() {
        return finished(svc, tasks);
    }
    let (live, ended): (Vec<&Task>, Vec<&Task>) = active
        .into_iter()
        .partition(|t| !t.status.state.is_terminal());
    let mut keep: Option<&Task> = None;
    let mut old: Vec<&Task> = Vec::new();
    let mut replace_attempt: Option<u64> = None;
    for t in live {
        if !t.node_id.is_empty() && p.node_invalid(&t.node_id) {
            // Node down, drained or gone: replace at once, elsewhere; this is not a failure of
            // the task, so the attempt count stays.
            p.shut_down(t);
            replace_attempt.get_or_insert(t.attempt);
        } else if outdated(svc, t) {
            old.push(t);
        } else if keep.is_none() {
            keep = Some(t);
        } else {
            // Two live tasks of the current spec in one slot (a race with another writer):
            // keep the newest.
            p.shut_down(t);
        }
    }
    // Tasks of an older spec (newest first): the newest waits for its turn in the update, the
    // others are leftovers.
    let mut old = old.into_iter();
    if let Some(newest_old) = old.next() {
        for t in old {
            p.shut_down(t);
        }
        match keep {
            // Its replacement runs (start-first done, or a leftover): retire it. Until then it
            // keeps serving.
            Some(k) if k.status.state == TaskState::Running => p.shut_down(newest_old),
            Some(_) => {}
            // The new task's node failed: its replacement is on the way. Start-first keeps the
            // old task serving until a new one runs; stop-first (and no update) retires it.
            None if replace_attempt.is_some() => {
                if gate.order == UpdateOrder::StopFirst {
                    p.shut_down(newest_old)
                }
            }
            None => match next_attempt(svc, &ended, p.now_ms) {
                Some(attempt) if gate.take() => {
                    if gate.order == UpdateOrder::StopFirst {
                        p.shut_down(newest_old);
                    }
                    // A new spec is a new deployment: its attempts start over (unless its
                    // tasks already failed in this slot).
                    replace_attempt = Some(attempt);
                }
                // Not its turn, or its new task failed and may not (yet) be retried: the old
                // one keeps running.
                _ => keep = Some(newest_old),
            },
        }
    }
    if keep.is_some() || replace_attempt.is_some() {
        for t in &ended {
            p.shut_down(t);
        }
        if keep.is_none() {
            p.create(svc, place.slot, place.node_id, replace_attempt.unwrap_or(0));
        }
        return true;
    }
    // Only ended tasks are left: the newest decides.
    let last = ended[0];
    let policy = &svc.spec.restart;
    if restart::allowed(policy, last) {
        if !restart::due(policy, last, p.now_ms) {
            return true; // the actor re-runs; nothing to write until the delay has passed
        }
        p.create(svc, place.slot, place.node_id, last.attempt + 1);
    }
    for t in &ended {
        p.shut_down(t);
    }
    true
}

/// The attempt of the task that replaces an outdated one in a slot whose `ended` tasks (newest
/// first) are given: 0, or after a task of the current spec failed there, the restart policy's
/// next one once its delay passed; `None` when the policy allows no (or no further) retry yet.
fn next_attempt(svc: &Service, ended: &[&Task], now_ms: i64) -> Option<u64> {
    match ended.iter().find(|t| !outdated(svc, t)) {
        None => Some(0),
        Some(last) => {
            let policy = &svc.spec.restart;
            (restart::allowed(policy, last) && restart::due(policy, last, now_ms))
                .then_some(last.attempt + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::{HealthConfig, HealthTest};

    #[test]
    fn a_health_check_or_drain_change_replaces_tasks_a_label_does_not() {
        let base = ServiceSpec {
            name: "web".into(),
            image: "whoami".into(),
            ..Default::default()
        };
        let health = ServiceSpec {
            healthcheck: Some(HealthConfig {
                test: HealthTest::Shell("test -e /ok".into()),
                ..Default::default()
            }),
            ..base.clone()
        };
        let retries = ServiceSpec {
            healthcheck: Some(HealthConfig {
                retries: 5,
                ..health.healthcheck.clone().unwrap()
            }),
            ..health.clone()
        };
        let drain = ServiceSpec {
            stop_drain_ms: Some(5000),
            ..base.clone()
        };
        let label = ServiceSpec {
            labels: [("a".into(), "b".into())].into_iter().collect(),
            ..base.clone()
        };
        assert!(!runs_the_same(&base, &health));
        assert!(!runs_the_same(&health, &retries));
        assert!(!runs_the_same(&base, &drain));
        assert!(runs_the_same(&base, &label));
        assert!(runs_the_same(&health, &health.clone()));
    }

    #[test]
    fn a_secret_or_config_change_replaces_tasks() {
        let base = ServiceSpec {
            name: "web".into(),
            image: "whoami".into(),
            ..Default::default()
        };
        let secret = ServiceSpec {
            secrets: vec![shoal_proto::model::SecretReference {
                id: "s1".into(),
                name: "db".into(),
                target: "db".into(),
                mode: 0o444,
                ..Default::default()
            }],
            ..base.clone()
        };
        let rotated = ServiceSpec {
            secrets: vec![shoal_proto::model::SecretReference {
                id: "s2".into(),
                name: "db2".into(),
                ..secret.secrets[0].clone()
            }],
            ..base.clone()
        };
        let config = ServiceSpec {
            configs: vec![shoal_proto::model::ConfigReference {
                id: "c1".into(),
                name: "app".into(),
                target: "/app".into(),
                ..Default::default()
            }],
            ..base.clone()
        };
        assert!(!runs_the_same(&base, &secret));
        assert!(!runs_the_same(&secret, &rotated));
        assert!(!runs_the_same(&base, &config));
        assert!(runs_the_same(&secret, &secret.clone()));
    }
}
