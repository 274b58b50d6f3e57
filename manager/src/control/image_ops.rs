//! `swarmctl image ls|pull|rm|prune|load`: each node's image store, asked through the leader's
//! relay (see [`crate::dispatcher`]'s `image_relay`). A node is named by id, name or unique
//! prefix; no node means every ready node (`load` needs one). Each node answers for itself:
//! one that is not connected, or fails, gets an error in its report and the others go on.

use super::relay::leader;
use super::{ControlError, ControlService, R};
use crate::dispatcher::{ChunkStream, LoadError, RelayError};
use crate::route::forwarded;
use shoal_image::reference::Reference;
use shoal_proto::model::{Node, NodeState};
use shoal_proto::pb;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use tracing::instrument;

/// The nodes `query` names: one by id, name or prefix; every ready node when empty.
fn nodes(svc: &ControlService, query: &str) -> Result<Vec<Node>, crate::ManagerError> {
    let s = svc.m.store.read();
    let mut nodes: Vec<Node> = match query {
        "" => s
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Ready)
            .cloned()
            .collect(),
        want => vec![s.node(want)?.clone()],
    };
    nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(nodes)
}

/// The node's answer, or its failure as the report's error; named either way.
fn named(n: &Node, r: Result<pb::ImageNodeReport, String>) -> pb::ImageNodeReport {
    let mut rep = r.unwrap_or_else(|error| pb::ImageNodeReport {
        error,
        ..Default::default()
    });
    rep.node_id = n.id.to_string();
    rep.hostname = n.hostname.clone();
    rep
}

fn relay_error(e: RelayError) -> String {
    match e {
        RelayError::NotConnected { .. } => {
            "the node is not connected to the managers; retry when it is Ready".into()
        }
        e => e.to_string(),
    }
}

/// Asks `op` of the nodes `query` names, all at once.
async fn ask(
    svc: &ControlService,
    query: &str,
    op: pb::ImageOp,
    waited: Duration,
) -> R<pb::ImageReport> {
    let nodes = nodes(svc, query)?;
    let asks = nodes
        .iter()
        .map(|n| svc.m.dispatcher.image_op(&n.id, op.clone(), waited));
    let answers = futures_util::future::join_all(asks).await;
    let nodes = nodes
        .iter()
        .zip(answers)
        .map(|(n, a)| named(n, a.map_err(relay_error)))
        .collect();
    Ok(Response::new(pb::ImageReport { nodes }))
}

fn op(kind: pb::ImageOpKind, r: &pb::ImageRequest) -> pb::ImageOp {
    pb::ImageOp {
        kind: kind as i32,
        images: r.images.clone(),
        force: r.force,
        all: r.all,
        ..Default::default()
    }
}

#[instrument(skip_all, fields(node = %req.get_ref().node))]
pub(super) async fn list(
    svc: &ControlService,
    req: Request<pb::ImageRequest>,
) -> R<pb::ImageReport> {
    if let Some(mut leader) = leader(svc, &req)? {
        return leader.list_images(forwarded(req.into_inner(), None)).await;
    }
    let r = req.into_inner();
    let waited = svc.m.cfg.relay_timeout;
    ask(svc, &r.node, op(pb::ImageOpKind::ImageOpList, &r), waited).await
}

#[instrument(skip_all, fields(node = %req.get_ref().node))]
pub(super) async fn pull(
    svc: &ControlService,
    req: Request<pb::ImageRequest>,
) -> R<pb::ImageReport> {
    if let Some(mut leader) = leader(svc, &req)? {
        return leader.pull_image(forwarded(req.into_inner(), None)).await;
    }
    let r = req.into_inner();
    let [image] = r.images.as_slice() else {
        return Err(ControlError::ImageArgs("image pull takes exactly one image reference").into());
    };
    Reference::parse(image).map_err(ControlError::Reference)?;
    let waited = svc.m.cfg.image_op_timeout;
    ask(svc, &r.node, op(pb::ImageOpKind::ImageOpPull, &r), waited).await
}

#[instrument(skip_all, fields(node = %req.get_ref().node))]
pub(super) async fn remove(
    svc: &ControlService,
    req: Request<pb::ImageRequest>,
) -> R<pb::ImageReport> {
    if let Some(mut leader) = leader(svc, &req)? {
        return leader.remove_image(forwarded(req.into_inner(), None)).await;
    }
    let r = req.into_inner();
    if r.images.is_empty() {
        return Err(ControlError::ImageArgs("image rm needs at least one image").into());
    }
    let waited = svc.m.cfg.image_op_timeout;
    ask(svc, &r.node, op(pb::ImageOpKind::ImageOpRemove, &r), waited).await
}

#[instrument(skip_all, fields(node = %req.get_ref().node))]
pub(super) async fn prune(
    svc: &ControlService,
    req: Request<pb::ImageRequest>,
) -> R<pb::ImageReport> {
    if let Some(mut leader) = leader(svc, &req)? {
        return leader.prune_images(forwarded(req.into_inner(), None)).await;
    }
    let r = req.into_inner();
    let waited = svc.m.cfg.image_op_timeout;
    ask(svc, &r.node, op(pb::ImageOpKind::ImageOpPrune, &r), waited).await
}

#[instrument(skip_all)]
pub(super) async fn load(
    svc: &ControlService,
    req: Request<tonic::Streaming<pb::ImageLoadChunk>>,
) -> R<pb::ImageReport> {
    if let Some(mut leader) = leader(svc, &req)? {
        // A broken client stream ends the forwarded one early; the archive is then short and
        // the node refuses it.
        let chunks = req.into_inner().map_while(Result::ok);
        return leader.load_image(forwarded(chunks, None)).await;
    }
    let mut chunks = req.into_inner();
    let waited = svc.m.cfg.relay_timeout;
    let first = tokio::time::timeout(waited, chunks.message())
        .await
        .map_err(|_| Status::deadline_exceeded("the image load stream sent nothing"))??
        .ok_or(ControlError::LoadNeedsNode)?;
    if first.node.is_empty() {
        return Err(ControlError::LoadNeedsNode.into());
    }
    let node = nodes(svc, &first.node)?.remove(0);
    let op = pb::ImageOp {
        kind: pb::ImageOpKind::ImageOpLoad as i32,
        max_bytes: svc.m.cfg.image_load_max_bytes,
        ..Default::default()
    };
    let rest: ChunkStream = Box::pin(tokio_stream::once(Ok(first)).chain(chunks));
    let answer = svc
        .m
        .dispatcher
        .image_load(&node.id, op, rest, svc.m.cfg.image_op_timeout)
        .await;
    let rep = match answer {
        Ok(r) => Ok(r),
        Err(LoadError::Relay(e)) => Err(relay_error(e)),
        Err(LoadError::AgentLeft) => Err(LoadError::AgentLeft.to_string()),
        Err(e) => return Err(ControlError::ImageLoad(e).into()),
    };
    Ok(Response::new(pb::ImageReport {
        nodes: vec![named(&node, rep)],
    }))
}
