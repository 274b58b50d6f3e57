//! Global services: one task on every eligible node (SK `orchestrator/global/global.go`).
//!
//! Eligible = ready, active and satisfying the constraints. A paused (or not yet ready) node keeps
//! what it runs but gets nothing new; tasks on drained, down or removed nodes and on nodes that no
//! longer satisfy the constraints are stopped and removed (desired REMOVE), not moved. Tasks
//! carry their node from the start (slot 0); the scheduler only checks it.

use super::slot::{self, Place};
use super::update::Gate;
use super::{node_invalid, Plan};
use crate::scheduler::{accepts_new_tasks, constraint::Constraint};
use shoal_proto::model::{Service, Task, TaskState};
use std::collections::BTreeMap;

/// One live task per eligible node for `svc`.
pub(crate) fn reconcile(p: &mut Plan<'_, '_>, svc: &Service, tasks: &[&Task], gate: &mut Gate) {
    // A spec with a bad constraint was refused at create time; should one get here, change
    // nothing rather than shut everything down.
    let constraints = Constraint::parse_all(&svc.spec.constraints).ok();
    let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for &t in tasks {
        if t.desired_state >= TaskState::Remove {
            continue;
        }
        if t.node_id.is_empty() || t.slot != 0 {
            p.set_desired(t, TaskState::Remove); // not a global task (left from a mode change)
            continue;
        }
        by_node.entry(t.node_id.as_str()).or_default().push(t);
    }
    let state = p.state;
    for (node_id, ts) in &by_node {
        let unfit = match (state.nodes.get(*node_id), &constraints) {
            (Some(n), Some(cs)) => Constraint::first_failing(cs, n).is_some(),
            _ => false,
        };
        if node_invalid(state, node_id) || unfit {
            // REMOVE, not SHUTDOWN: the task is not replaced, its node left the service (like a
            // scale-down). A SHUTDOWN task would stay behind as the node's history and, under
            // restart `none`, would read as "finished" and keep the node from getting a task
            // again when it comes back.
            for t in ts.iter().filter(|t| t.desired_state <= TaskState::Running) {
                p.set_desired(t, TaskState::Remove);
            }
        }
    }
    let Some(constraints) = constraints else {
        return;
    };
    for node in state.nodes.values() {
        if node_invalid(state, &node.id)
            || !accepts_new_tasks(node)
            || Constraint::first_failing(&constraints, node).is_some()
        {
            continue;
        }
        let ts = by_node
            .get(node.id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !slot::reconcile(
            p,
            svc,
            Place {
                slot: 0,
                node_id: &node.id,
            },
            ts,
            gate,
        ) {
            p.create(svc, 0, &node.id, 0);
        }
    }
}
