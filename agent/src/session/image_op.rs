//! The agent's half of `swarmctl image …`: the leader asks with an `image_op` on the session
//! stream; the agent does it on its store (see [`crate::images`]) and answers with
//! `PublishImage`. For a load it first fetches the archive with `ImageUpload`, naming the
//! request, into a temporary file.

use crate::images::{receive, NodeImages};
use crate::worker::Worker;
use shoal_proto::pb;
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use std::sync::Arc;
use tonic::transport::Channel;
use tracing::{info, warn};

/// The node's images, or why it has none (it cannot run containers).
pub(super) type Images = Result<Arc<NodeImages>, String>;

/// Does `op` and publishes the answer.
pub(super) async fn serve(
    mut client: DispatcherClient<Channel>,
    images: Images,
    worker: Worker,
    node: String,
    op: pb::ImageOp,
) {
    let mut rep = match images {
        Ok(images) => answer(&mut client, &images, &worker, &node, &op).await,
        Err(why) => pb::ImageNodeReport {
            error: format!("this node has no image store: {why}"),
            ..Default::default()
        },
    };
    rep.request_id = op.request_id;
    rep.node_id = node;
    if let Err(e) = client.publish_image(rep).await {
        warn!(error = %e, "could not publish an image report");
    }
}

async fn answer(
    client: &mut DispatcherClient<Channel>,
    images: &NodeImages,
    worker: &Worker,
    node: &str,
    op: &pb::ImageOp,
) -> pb::ImageNodeReport {
    let mut rep = pb::ImageNodeReport::default();
    let kind = pb::ImageOpKind::try_from(op.kind).unwrap_or(pb::ImageOpKind::ImageOpList);
    info!(?kind, images = ?op.images, "image operation");
    let res: Result<(), String> = match kind {
        pb::ImageOpKind::ImageOpList => images
            .list(&worker.task_images())
            .map(|l| rep.images = l)
            .map_err(|e| e.to_string()),
        pb::ImageOpKind::ImageOpPull => match op.images.first() {
            Some(image) => images
                .pull(image)
                .await
                .map(|s| rep.images = vec![s])
                .map_err(|e| e.to_string()),
            None => Err("no image to pull".into()),
        },
        pb::ImageOpKind::ImageOpRemove => images
            .remove(&op.images, op.force, &worker.task_images())
            .await
            .map(|(deleted, reclaimed, errors)| {
                rep.deleted = deleted;
                rep.reclaimed = reclaimed;
                rep.errors = errors;
            })
            .map_err(|e| e.to_string()),
        pb::ImageOpKind::ImageOpPrune => images
            .prune(op.all, &worker.task_images())
            .await
            .map(|(deleted, reclaimed)| {
                rep.deleted = deleted;
                rep.reclaimed = reclaimed;
            })
            .map_err(|e| e.to_string()),
        pb::ImageOpKind::ImageOpLoad => {
            load(client, images, node, op).await.map(|l| rep.images = l)
        }
    };
    if let Err(e) = res {
        rep.error = e;
    }
    rep
}

async fn load(
    client: &mut DispatcherClient<Channel>,
    images: &NodeImages,
    node: &str,
    op: &pb::ImageOp,
) -> Result<Vec<pb::ImageSummary>, String> {
    let req = pb::ImageUploadRequest {
        request_id: op.request_id.clone(),
        node_id: node.to_string(),
    };
    let chunks = client
        .image_upload(req)
        .await
        .map_err(|s| format!("could not fetch the archive: {}", s.message()))?
        .into_inner();
    let dir = images.store().dir().join("tmp");
    let path = receive(chunks, &dir, op.max_bytes)
        .await
        .map_err(|e| e.to_string())?;
    images.load(&path).await.map_err(|e| e.to_string())
}
