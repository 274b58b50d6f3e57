//! A simulated cluster for the planners' tests: the store, the three leader actors run in a
//! loop until quiet, and agents that run and stop what they are told to.

use crate::store::State;
use shoal_proto::model::*;

/// The store plus a log index, a clock and an id counter.
pub(crate) struct Sim {
    pub state: State,
    pub index: u64,
    pub now: i64,
    ids: u64,
}

/// Which planners a convergence loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Actor {
    Orchestrator,
    Allocator,
    Scheduler,
    /// The updater's pass (pauses, rolls back, completes updates).
    Updater,
    /// Not a planner: every node that is ready starts its assigned tasks and stops the ones
    /// that should stop.
    Agents,
}

/// Orchestrator, allocator and scheduler.
pub(crate) const LEADER: [Actor; 3] = [Actor::Orchestrator, Actor::Allocator, Actor::Scheduler];
/// The leader's actors plus the agents.
pub(crate) const CLUSTER: [Actor; 4] = [
    Actor::Orchestrator,
    Actor::Allocator,
    Actor::Scheduler,
    Actor::Agents,
];

impl Sim {
    pub fn new() -> Sim {
        let mut sim = Sim {
            state: State::default(),
            index: 0,
            now: 1_000_000,
            ids: 0,
        };
        sim.apply(&[Command::InitCluster(Cluster {
            id: "c".into(),
            default_addr_pool: "10.0.0.0/8".into(),
            subnet_size: 24,
            ..Default::default()
        })]);
        sim
    }

    /// Applies `cmds` at the next indexes; panics on a refused command or a version conflict
    /// (a planner that writes stale objects is a bug).
    pub fn apply(&mut self, cmds: &[Command]) {
        for c in cmds {
            self.index += 1;
            let r = self.state.apply(self.index, c);
            assert!(r.refusal.is_none() && r.skipped == 0, "{c:?} gave {r:?}");
        }
    }

    /// A ready, active node named `hostname` (id `node-<hostname>`).
    pub fn node(&mut self, hostname: &str, role: NodeRole) -> String {
        let id = format!("node-{hostname}");
        self.apply(&[Command::PutNode(Node {
            id: id.clone().into(),
            hostname: hostname.into(),
            role,
            state: NodeState::Ready,
            ..Default::default()
        })]);
        id
    }

    /// Changes a node.
    pub fn update_node(&mut self, id: &str, f: impl FnOnce(&mut Node)) {
        let mut n = self.state.nodes[id].clone();
        f(&mut n);
        self.apply(&[Command::PutNode(n)]);
    }

    /// An overlay network; returns its id.
    pub fn network(&mut self, name: &str, subnet: &str, ingress: bool) -> String {
        let id = format!("net-{name}");
        self.apply(&[Command::CreateNetwork(Network {
            id: id.clone().into(),
            name: name.into(),
            subnet: subnet.into(),
            ingress,
            ..Default::default()
        })]);
        id
    }

    /// Creates a service from `spec`; returns its id.
    pub fn service(&mut self, spec: ServiceSpec) -> String {
        let id = format!("svc-{}", spec.name);
        self.apply(&[Command::CreateService(Service {
            id: id.clone().into(),
            spec,
            spec_version: 1,
            ..Default::default()
        })]);
        id
    }

    /// Changes a service's spec.
    pub fn update_service(&mut self, id: &str, f: impl FnOnce(&mut ServiceSpec)) {
        let mut s = self.state.services[id].clone();
        f(&mut s.spec);
        self.apply(&[Command::UpdateService(s)]);
    }

    /// Changes a service's spec as `service update` does: a rolling update when what the tasks
    /// run changes.
    pub fn roll_out(&mut self, id: &str, f: impl FnOnce(&mut ServiceSpec)) {
        let cur = self.state.services[id].clone();
        let mut spec = cur.spec.clone();
        f(&mut spec);
        let next = super::update::start(&cur, spec, self.now);
        self.apply(&[Command::UpdateService(next)]);
    }

    /// Reports an observed state for a task, as an agent would, at the current time.
    pub fn report(&mut self, task_id: &str, state: TaskState) {
        let mut status = self.state.tasks[task_id].status.clone();
        status.state = state;
        status.timestamp_ms = self.now;
        status.message = format!("reported {}", state.display());
        self.apply(&[Command::TaskStatuses(vec![TaskStatusUpdate {
            task_id: task_id.to_string().into(),
            status,
        }])]);
    }

    /// One planner's commands against the current state.
    pub fn plan(&mut self, actor: Actor) -> Vec<Command> {
        let now = self.now;
        match actor {
            Actor::Orchestrator => {
                let ids = &mut self.ids;
                let mut new_id = || {
                    *ids += 1;
                    format!("task{:05}", *ids)
                };
                super::plan(&self.state, now, &mut new_id)
            }
            Actor::Allocator => crate::allocator::plan(&self.state, now),
            Actor::Scheduler => crate::scheduler::plan(&self.state, now),
            Actor::Updater => super::update::plan(&self.state, now),
            Actor::Agents => self.agents(),
        }
    }

    fn agents(&self) -> Vec<Command> {
        let mut out = Vec::new();
        for t in self.state.tasks.values() {
            let ready = self
                .state
                .nodes
                .get(&t.node_id)
                .is_some_and(|n| n.state == NodeState::Ready);
            if !ready || t.status.state < TaskState::Assigned || t.status.state.is_terminal() {
                continue;
            }
            let next = if t.desired_state > TaskState::Running {
                TaskState::Shutdown
            } else if t.status.state < TaskState::Running {
                TaskState::Running
            } else {
                continue;
            };
            let status = TaskStatus {
                state: next,
                timestamp_ms: self.now,
                ..t.status.clone()
            };
            out.push(TaskStatusUpdate {
                task_id: t.id.clone(),
                status,
            });
        }
        if out.is_empty() {
            Vec::new()
        } else {
            vec![Command::TaskStatuses(out)]
        }
    }

    /// Runs `actors` round-robin, applying what they plan, until none has anything to do.
    /// Returns the number of rounds that wrote something; panics after 50 (a write loop).
    pub fn converge(&mut self, actors: &[Actor]) -> usize {
        for round in 0..50 {
            let mut wrote = false;
            for &a in actors {
                let cmds = self.plan(a);
                wrote |= !cmds.is_empty();
                self.apply(&cmds);
            }
            if !wrote {
                return round;
            }
        }
        panic!(
            "planners did not converge: {:?}",
            actors.iter().map(|a| self.plan(*a)).collect::<Vec<_>>()
        );
    }

    /// Asserts that no planner has anything left to do.
    pub fn assert_quiet(&mut self) {
        for a in LEADER {
            assert_eq!(self.plan(a), vec![], "{a:?} should have nothing to do");
        }
    }

    /// Tasks of a service, sorted by slot then creation.
    pub fn tasks(&self, service_id: &str) -> Vec<&Task> {
        let mut v: Vec<&Task> = self
            .state
            .tasks
            .values()
            .filter(|t| t.service_id == service_id)
            .collect();
        v.sort_by_key(|t| (t.slot, t.created_ms, t.attempt, t.id.clone()));
        v
    }

    /// Live tasks of a service (desired running, not ended).
    pub fn live(&self, service_id: &str) -> Vec<&Task> {
        self.tasks(service_id)
            .into_iter()
            .filter(|t| t.is_live())
            .collect()
    }
}

/// A replicated spec running `sleep`, with no restart delay.
pub(crate) fn spec(name: &str, replicas: u64) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        mode: ServiceMode::Replicated { replicas },
        image: "sleep".into(),
        restart: RestartPolicy {
            delay_ms: 0,
            ..Default::default()
        },
        ..Default::default()
    }
}
