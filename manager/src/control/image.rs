//! `ResolveImage`: the digest a registry gives an image's tag now, which `swarmctl service
//! create|update` pins in the spec (as the Docker CLI does through `/distribution/…/json`), so
//! every replica on every node runs the same bytes. Answered by whichever manager is asked,
//! with the node's registry settings (mirrors, insecure registries, credentials).

use super::{ControlError, ControlService, R};
use crate::manager::ManagerError;
use shoal_image::reference::Reference;
use shoal_image::registry::{Client, RegistryError};
use shoal_proto::pb;
use tonic::{Request, Response};
use tracing::instrument;

#[instrument(skip_all, fields(image = %req.get_ref().image))]
pub(super) async fn resolve(
    svc: &ControlService,
    req: Request<pb::ResolveImageRequest>,
) -> R<pb::ResolveImageResponse> {
    let image = req.into_inner().image;
    let r = Reference::parse(&image).map_err(ControlError::Reference)?;
    let digest = match r.digest() {
        // Already pinned by the user: nothing to ask.
        Some(d) => d.clone(),
        None => {
            let cfg = &svc.m.cfg;
            let client = Client::new(cfg.registry.clone()).map_err(ManagerError::Registry)?;
            match tokio::time::timeout(cfg.image_resolve_timeout, client.resolve(&r)).await {
                Ok(res) => res.map_err(ManagerError::Registry)?,
                Err(_) => {
                    return Err(ManagerError::Registry(RegistryError::Timeout {
                        registry: r.domain().to_string(),
                        after: cfg.image_resolve_timeout,
                    })
                    .into())
                }
            }
        }
    };
    Ok(Response::new(pb::ResolveImageResponse {
        digest: digest.to_string(),
        canonical: r.to_string(),
    }))
}
