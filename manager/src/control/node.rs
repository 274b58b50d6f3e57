//! `node ls`, `node inspect`, `node update|promote|demote`, `node rm`.

use super::{ControlError, ControlService, R};
use crate::manager::Manager;
use crate::route::{forwarded, Route};
use shoal_proto::convert::node_to_pb;
use shoal_proto::model::{now_ms, Availability, Command, Node, NodeRole, NodeState};
use shoal_proto::pb;
use shoal_proto::pb::control_client::ControlClient;
use tonic::{Request, Response};
use tracing::instrument;

/// The MANAGER STATUS column: only the leader sees which managers answer raft; a follower
/// shows the managers it knows to be up as Reachable.
fn manager_status(m: &Manager, n: &Node) -> &'static str {
    if n.role != NodeRole::Manager {
        return "";
    }
    match m.leader() {
        Some((id, _)) if id == n.raft_id => "Leader",
        _ if m.is_leader() && m.raft_reachable(n.raft_id) => "Reachable",
        _ if !m.is_leader() && n.state == NodeState::Ready => "Reachable",
        _ => "Unreachable",
    }
}

/// A client of the leader's Control API when this manager is a follower that can reach it.
/// A follower that cannot answers `node ls` and `node inspect` from its own store.
fn leader_client<T>(
    svc: &ControlService,
    req: &Request<T>,
) -> Option<ControlClient<tonic::transport::Channel>> {
    match svc.m.route(req) {
        Ok(Route::Leader(ch)) => Some(ControlClient::new(ch)),
        Ok(Route::Here) | Err(_) => None,
    }
}

pub(super) async fn list(svc: &ControlService, req: Request<pb::Empty>) -> R<pb::NodeList> {
    if let Some(mut leader) = leader_client(svc, &req) {
        let timeout = Some(svc.m.cfg.forward_read_timeout);
        if let Ok(r) = leader.list_nodes(forwarded(pb::Empty {}, timeout)).await {
            return Ok(r);
        }
    }
    let s = svc.m.store.read();
    let nodes = s
        .nodes
        .values()
        .map(|n| node_to_pb(n, manager_status(&svc.m, n)))
        .collect();
    Ok(Response::new(pb::NodeList { nodes }))
}

pub(super) async fn get(svc: &ControlService, req: Request<pb::IdRequest>) -> R<pb::Node> {
    if let Some(mut leader) = leader_client(svc, &req) {
        let timeout = Some(svc.m.cfg.forward_read_timeout);
        match leader
            .get_node(forwarded(req.get_ref().clone(), timeout))
            .await
        {
            Ok(r) => return Ok(r),
            Err(s) if s.code() == tonic::Code::NotFound => return Err(s),
            Err(_) => {}
        }
    }
    let s = svc.m.store.read();
    let n = s.node(&req.get_ref().id)?;
    Ok(Response::new(node_to_pb(n, manager_status(&svc.m, n))))
}

#[instrument(skip_all, fields(node = %req.get_ref().id))]
pub(super) async fn update(
    svc: &ControlService,
    req: Request<pb::UpdateNodeRequest>,
) -> R<pb::Node> {
    let r = req.into_inner();
    let (mut node, managers) = {
        let s = svc.m.store.read();
        let n = s.node(&r.id)?.clone();
        let managers = s
            .nodes
            .values()
            .filter(|n| n.role == NodeRole::Manager)
            .count();
        (n, managers)
    };
    if r.set_availability {
        node.availability = Availability::from(r.availability());
    }
    if r.set_role {
        let role: NodeRole = r.role().into();
        if role == NodeRole::Worker && node.role == NodeRole::Manager && managers <= 1 {
            return Err(ControlError::LastManager.into());
        }
        if role == NodeRole::Manager && node.raft_id == 0 {
            node.raft_id = rand::random::<u64>() | 1;
        }
        node.role = role;
    }
    for (k, v) in r.add_labels {
        node.labels.insert(k, v);
    }
    for k in r.rm_labels {
        node.labels.remove(&k);
    }
    node.updated_ms = now_ms();
    if r.version != 0 {
        // The node as the client read it: changed since, the write is refused.
        node.version = r.version;
    }
    // A conflict is ABORTED: "update out of sequence".
    svc.write(Command::PutNode(node.clone())).await?;
    let n = svc
        .m
        .store
        .read()
        .nodes
        .get(&node.id)
        .cloned()
        .unwrap_or(node);
    Ok(Response::new(node_to_pb(&n, manager_status(&svc.m, &n))))
}

pub(super) async fn remove(
    svc: &ControlService,
    req: Request<pb::RemoveNodeRequest>,
) -> R<pb::Empty> {
    let r = req.into_inner();
    let node = svc.m.store.read().node(&r.id)?.clone();
    if node.role == NodeRole::Manager {
        return Err(ControlError::RemoveManager(node.hostname).into());
    }
    if node.state == NodeState::Ready && !r.force {
        return Err(ControlError::NodeUp(node.hostname).into());
    }
    svc.write(Command::RemoveNode { id: node.id }).await?;
    svc.m.finish_ca_rotation().await;
    Ok(Response::new(pb::Empty {}))
}
