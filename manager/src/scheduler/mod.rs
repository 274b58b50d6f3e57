//! Scheduler: places PENDING tasks on nodes.
//!
//! [`plan`] is a pure function over the store: it filters nodes (ready, active, constraints) and
//! spreads each service's tasks over them like SwarmKit's spread strategy (SK `scheduler.go`):
//! fewest tasks of the same service on the node, then fewest tasks overall, then node id. A task
//! that fits nowhere stays PENDING with a message that says why, SwarmKit's `Explain()` style.
//! Global tasks arrive with their node preset; the scheduler only checks that node.

pub mod constraint;
#[cfg(test)]
mod tests;

use crate::store::State;
use constraint::Constraint;
use shoal_proto::model::{Availability, Command, Node, NodeState, Task, TaskState};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Status message of a task the scheduler placed.
pub const SCHEDULED: &str = "scheduled";

/// Whether new tasks may go to `node` at all (SwarmKit's `ReadyFilter`).
pub fn accepts_new_tasks(node: &Node) -> bool {
    node.state == NodeState::Ready && node.availability == Availability::Active
}

/// Places every PENDING task (desired state RUNNING or lower) that has no node yet, and checks the
/// preset node of global tasks. Returns one `PutTasks` with the placed tasks (ASSIGNED,
/// "scheduled") and the unplaceable ones whose explanation changed; nothing when all is placed.
pub fn plan(state: &State, now_ms: i64) -> Vec<Command> {
    let mut groups: BTreeMap<(&str, u64), Vec<&Task>> = BTreeMap::new();
    let mut preset: Vec<&Task> = Vec::new();
    for t in state.tasks.values() {
        if t.status.state != TaskState::Pending || t.desired_state > TaskState::Running {
            continue;
        }
        if t.node_id.is_empty() {
            // Tasks of one service and spec version share constraints, so they share one heap.
            groups
                .entry((t.service_id.as_str(), t.spec_version))
                .or_default()
                .push(t);
        } else {
            preset.push(t);
        }
    }
    if groups.is_empty() && preset.is_empty() {
        return Vec::new(); // the common case: nothing to count
    }
    let mut sched = Scheduler::new(state);
    let mut out = Vec::new();
    for t in preset {
        out.extend(sched.check_preset(t, now_ms));
    }
    for tasks in groups.into_values() {
        sched.place_group(tasks, now_ms, &mut out);
    }
    if out.is_empty() {
        Vec::new()
    } else {
        vec![Command::PutTasks(out)]
    }
}

/// The pass's view of the nodes, with task counts that include this pass's placements.
struct Scheduler<'a> {
    /// Nodes in id order: an index is as good as the id for tie-breaking.
    nodes: Vec<&'a Node>,
    by_id: HashMap<&'a str, usize>,
    /// Live tasks per node.
    total: Vec<u32>,
    /// Live tasks per service per node.
    per_service: HashMap<&'a str, HashMap<usize, u32>>,
}

impl<'a> Scheduler<'a> {
    fn new(state: &'a State) -> Scheduler<'a> {
        let nodes: Vec<&Node> = state.nodes.values().collect();
        let by_id: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut total = vec![0u32; nodes.len()];
        let mut per_service: HashMap<&str, HashMap<usize, u32>> = HashMap::new();
        for (node_id, ids) in &state.tasks_by_node {
            let Some(&i) = by_id.get(node_id.as_str()) else {
                continue;
            };
            for t in ids
                .iter()
                .filter_map(|id| state.tasks.get(id))
                .filter(|t| t.is_live())
            {
                total[i] += 1;
                *per_service
                    .entry(t.service_id.as_str())
                    .or_default()
                    .entry(i)
                    .or_default() += 1;
            }
        }
        Scheduler {
            nodes,
            by_id,
            total,
            per_service,
        }
    }

    fn count(&mut self, service_id: &'a str, i: usize) {
        self.total[i] += 1;
        *self
            .per_service
            .entry(service_id)
            .or_default()
            .entry(i)
            .or_default() += 1;
    }

    /// A global task: its node is chosen; assign it if the node can take it.
    fn check_preset(&mut self, t: &'a Task, now_ms: i64) -> Option<Task> {
        let why = match (
            self.by_id.get(t.node_id.as_str()),
            Constraint::parse_all(&t.spec.constraints),
        ) {
            (_, Err(e)) => e.to_string(),
            (None, _) => format!("node {} not found", t.node_id),
            (Some(&i), Ok(cs)) => {
                let node = self.nodes[i];
                if !accepts_new_tasks(node) {
                    format!("node {} not available for new tasks", node.hostname)
                } else if let Some(c) = Constraint::first_failing(&cs, node) {
                    format!("node {} does not satisfy constraint {c}", node.hostname)
                } else {
                    self.count(&t.service_id, i);
                    return Some(assigned(t, &t.node_id, now_ms));
                }
            }
        };
        unplaced(t, &format!("no suitable node ({why})"))
    }

    /// Places the tasks of one service and spec version.
    fn place_group(&mut self, tasks: Vec<&'a Task>, now_ms: i64, out: &mut Vec<Task>) {
        let first = tasks[0];
        let service_id = first.service_id.as_str();
        let constraints = match Constraint::parse_all(&first.spec.constraints) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("no suitable node ({e})");
                out.extend(tasks.iter().filter_map(|t| unplaced(t, &msg)));
                return;
            }
        };
        let mut unavailable = 0usize;
        let mut failing: Vec<usize> = vec![0; constraints.len()];
        let mut candidates = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !accepts_new_tasks(node) {
                unavailable += 1;
            } else if let Some(c) = constraints.iter().position(|c| !c.matches(node)) {
                failing[c] += 1;
            } else {
                candidates.push(i);
            }
        }
        if candidates.is_empty() {
            let msg = explain(self.nodes.len(), unavailable, &constraints, &failing);
            out.extend(tasks.iter().filter_map(|t| unplaced(t, &msg)));
            return;
        }
        let svc_counts = self.per_service.get(service_id);
        let mut heap: BinaryHeap<Reverse<(u32, u32, usize)>> = candidates
            .into_iter()
            .map(|i| {
                let same = svc_counts.and_then(|m| m.get(&i)).copied().unwrap_or(0);
                Reverse((same, self.total[i], i))
            })
            .collect();
        let mut tasks = tasks;
        tasks.sort_by(|a, b| (a.slot, &a.id).cmp(&(b.slot, &b.id)));
        for t in tasks {
            let Some(Reverse((same, total, i))) = heap.pop() else {
                break;
            };
            out.push(assigned(t, &self.nodes[i].id, now_ms));
            self.count(service_id, i);
            heap.push(Reverse((same + 1, total + 1, i)));
        }
    }
}

/// The task placed on `node_id`.
fn assigned(t: &Task, node_id: &str, now_ms: i64) -> Task {
    let mut t = t.clone();
    t.node_id = node_id.to_string().into();
    t.status.state = TaskState::Assigned;
    t.status.message = SCHEDULED.to_string();
    t.status.timestamp_ms = now_ms;
    t
}

/// The task with its explanation, or `None` when it already says so (no write loops).
fn unplaced(t: &Task, message: &str) -> Option<Task> {
    if t.status.message == message {
        return None;
    }
    let mut t = t.clone();
    t.status.message = message.to_string();
    Some(t)
}

fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".to_string()
    } else {
        format!("{n} nodes")
    }
}

/// `no suitable node (3 nodes not available for new tasks; 2 nodes do not satisfy constraint …)`.
fn explain(
    total: usize,
    unavailable: usize,
    constraints: &[Constraint],
    failing: &[usize],
) -> String {
    if total == 0 {
        return "no suitable node (the cluster has no nodes)".to_string();
    }
    let mut parts = Vec::new();
    if unavailable > 0 {
        parts.push(format!(
            "{} not available for new tasks",
            nodes(unavailable)
        ));
    }
    for (c, &n) in constraints.iter().zip(failing).filter(|(_, n)| **n > 0) {
        let verb = if n == 1 { "does" } else { "do" };
        parts.push(format!("{} {verb} not satisfy constraint {c}", nodes(n)));
    }
    format!("no suitable node ({})", parts.join("; "))
}
