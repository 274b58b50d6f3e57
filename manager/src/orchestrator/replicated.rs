//! Replicated services: `replicas` occupied slots, numbered from 1 (SK
//! `orchestrator/replicated/services.go`).

use super::slot::{self, Place};
use super::update::Gate;
use super::{newest_first, Plan};
use shoal_proto::model::{Service, Task, TaskState};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Scales `svc` to `replicas` occupied slots and reconciles each kept slot.
pub(crate) fn reconcile(
    p: &mut Plan<'_, '_>,
    svc: &Service,
    replicas: u64,
    tasks: &[&Task],
    gate: &mut Gate,
) {
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for &t in tasks {
        if t.desired_state >= TaskState::Remove {
            continue; // leaving; the reaper deletes it once it has stopped
        }
        if t.slot == 0 {
            p.set_desired(t, TaskState::Remove); // not a replicated task (left from a mode change)
            continue;
        }
        slots.entry(t.slot).or_default().push(t);
    }
    let occupied: Vec<u64> = slots
        .iter()
        .filter(|(_, ts)| slot::occupied(svc, ts))
        .map(|(s, _)| *s)
        .collect();
    let mut keep: BTreeSet<u64> = occupied.iter().copied().collect();
    let count = occupied.len() as u64;
    if count > replicas {
        for s in removals(&slots, &occupied, (count - replicas) as usize) {
            keep.remove(&s);
            for t in &slots[&s] {
                p.set_desired(t, TaskState::Remove);
            }
        }
    }
    for s in &keep {
        slot::reconcile(
            p,
            svc,
            Place {
                slot: *s,
                node_id: "",
            },
            &slots[s],
            gate,
        );
    }
    let mut next = 1;
    for _ in count..replicas {
        while keep.contains(&next) {
            next += 1;
        }
        p.create(svc, next, "", 0);
        next += 1;
    }
}

/// The `n` slots to remove on scale-down: slots with nothing running first, then slots on the
/// nodes that hold the most tasks of the service, then the highest slot numbers. Like SwarmKit,
/// "most tasks on the node" is a copy rank: a node's slots are numbered 1, 2, … and the highest
/// ranks go first, so the survivors stay spread.
fn removals(slots: &BTreeMap<u64, Vec<&Task>>, occupied: &[u64], n: usize) -> Vec<u64> {
    let mut per_node: HashMap<&str, u32> = HashMap::new();
    let mut order: Vec<(bool, Reverse<u32>, Reverse<u64>)> = occupied
        .iter()
        .map(|s| {
            let mut live: Vec<&Task> = slots[s]
                .iter()
                .copied()
                .filter(|t| t.desired_state <= TaskState::Running && !t.status.state.is_terminal())
                .collect();
            live.sort_by(newest_first);
            let running = live.iter().any(|t| t.status.state == TaskState::Running);
            let node = live.first().map(|t| t.node_id.as_str()).unwrap_or("");
            let rank = per_node.entry(node).or_default();
            *rank += 1;
            (running, Reverse(*rank), Reverse(*s))
        })
        .collect();
    order.sort();
    order
        .into_iter()
        .take(n)
        .map(|(_, _, Reverse(s))| s)
        .collect()
}
