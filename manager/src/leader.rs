//! Leader-only actors. They start together when this manager becomes leader (after its store
//! has caught up with everything committed) and stop together when it loses leadership. Each
//! rebuilds its view from the store on every pass: no private mirror.

use crate::error::BoxError;
use crate::manager::Manager;
use crate::store::{Refusal, State};
use openraft::{BasicNode, ChangeMembers, ServerState};
use shoal_proto::model::{now_ms, Command, NodeRole};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// Watches raft metrics and starts/stops the leader actors.
pub async fn watch_leadership(m: Arc<Manager>) {
    let mut rx = m.raft.metrics();
    let mut leading = false;
    loop {
        let now_leader = {
            let metrics = rx.borrow_and_update();
            metrics.state == ServerState::Leader && metrics.current_leader == Some(m.cfg.raft_id)
        };
        if now_leader && !leading {
            // Apply everything committed before acting on the store.
            match m.raft.ensure_linearizable().await {
                Ok(_) => {
                    info!(node.id = %m.cfg.node_id, "became leader; starting orchestrator, allocator, scheduler, dispatcher");
                    m.dispatcher.on_leader_start();
                    m.set_leader_tasks(Some(spawn_actors(m.clone())));
                    leading = true;
                }
                Err(e) => {
                    debug!(error = %e, "not yet able to lead");
                    tokio::time::sleep(m.cfg.leadership_retry).await;
                    continue;
                }
            }
        } else if !now_leader && leading {
            info!(node.id = %m.cfg.node_id, "lost leadership; stopping leader actors");
            m.set_leader_tasks(None);
            m.dispatcher.on_leader_stop();
            leading = false;
        }
        if rx.changed().await.is_err() {
            m.set_leader_tasks(None);
            return;
        }
    }
}

fn spawn_actors(m: Arc<Manager>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(run_planner(m.clone(), "orchestrator", |s, now| {
        crate::orchestrator::plan(s, now, &mut shoal_proto::model::new_id)
    }));
    set.spawn(run_planner(
        m.clone(),
        "updater",
        crate::orchestrator::update::plan,
    ));
    set.spawn(run_planner(m.clone(), "allocator", crate::allocator::plan));
    set.spawn(run_planner(m.clone(), "scheduler", crate::scheduler::plan));
    set.spawn(reconcile_membership(m.clone()));
    set.spawn(crate::dispatcher::monitor_heartbeats(m.clone()));
    set.spawn(crate::dispatcher::write_statuses(m.clone()));
    set
}

/// Runs a planning function whenever the store changes (and every
/// [`resync_period`](crate::ManagerConfig::resync_period)), proposing what it returns, cut into
/// entries of bounded size ([`crate::chunk::split`]).
async fn run_planner(
    m: Arc<Manager>,
    name: &'static str,
    plan: impl Fn(&State, i64) -> Vec<Command>,
) {
    let mut rx = m.store.subscribe();
    loop {
        let cmds = {
            let state = m.store.read();
            plan(&state, now_ms())
        };
        // No entry carries more than `MAX_TASKS_PER_ENTRY` tasks; if only some parts get
        // written, the next pass plans the rest (see `chunk`).
        let cmds = cmds
            .into_iter()
            .flat_map(|c| crate::chunk::split(c, crate::chunk::MAX_TASKS_PER_ENTRY));
        for cmd in cmds {
            match m.raft.client_write(cmd).await {
                Ok(r) => match r.data.refusal {
                    Some(e @ Refusal::Conflict(_)) => {
                        debug!(actor = name, error = %e, "conflict; re-planning")
                    }
                    Some(e) => warn!(actor = name, error = %e, "store refused a command"),
                    None => {}
                },
                Err(e) => {
                    debug!(actor = name, error = %e, "write failed");
                    break;
                }
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(m.cfg.resync_period) => {}
        }
    }
}

/// Keeps raft membership equal to the set of manager nodes in the store: new managers are added
/// as learners, promoted to voters once caught up; demoted or removed ones leave.
async fn reconcile_membership(m: Arc<Manager>) {
    let mut rx = m.store.subscribe();
    loop {
        if let Err(e) = membership_pass(&m).await {
            debug!(error = %e, "membership change");
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(m.cfg.resync_period) => {}
        }
    }
}

async fn membership_pass(m: &Manager) -> Result<(), BoxError> {
    let desired: BTreeMap<u64, String> = {
        let s = m.store.read();
        s.nodes
            .values()
            .filter(|n| n.role == NodeRole::Manager && n.raft_id != 0)
            .map(|n| (n.raft_id, n.addr.clone()))
            .collect()
    };
    if desired.is_empty() {
        return Ok(()); // store not initialised yet
    }
    let metrics = m.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let learners: BTreeSet<u64> = membership.learner_ids().collect();
    let last = metrics.last_log_index.unwrap_or(0);
    for (id, addr) in &desired {
        if voters.contains(id) {
            continue;
        }
        if !learners.contains(id) {
            info!(raft.id = id, addr, "adding manager as raft learner");
            m.raft.add_learner(*id, BasicNode::new(addr), false).await?;
            continue;
        }
        let matched = metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(id).cloned().flatten())
            .map(|l| l.index)
            .unwrap_or(0);
        if matched + 100 >= last {
            info!(raft.id = id, "promoting caught-up learner to voter");
            m.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false)
                .await?;
        }
    }
    let gone_voters: BTreeSet<u64> = voters
        .iter()
        .filter(|id| !desired.contains_key(id))
        .copied()
        .collect();
    if !gone_voters.is_empty() && gone_voters.len() < voters.len() {
        info!(raft.ids = ?gone_voters, "removing demoted or removed managers from raft");
        m.raft
            .change_membership(ChangeMembers::RemoveVoters(gone_voters), false)
            .await?;
    }
    let gone_learners: BTreeSet<u64> = learners
        .iter()
        .filter(|id| !desired.contains_key(id))
        .copied()
        .collect();
    if !gone_learners.is_empty() {
        m.raft
            .change_membership(ChangeMembers::RemoveNodes(gone_learners), false)
            .await?;
    }
    Ok(())
}
