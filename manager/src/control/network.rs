//! `network create|ls|inspect|rm` (`network inspect --lb` is in [`super::relay`]).

use super::{network_name, ControlError, ControlService, R};
use crate::allocator::ipam::Subnet;
use shoal_proto::model::{new_id, now_ms, Command, Network, NetworkDriver};
use shoal_proto::pb;
use tonic::{Request, Response};

/// The model's driver for a `network create -d` request; `host` and `null` have one predefined
/// network each and are refused.
fn driver(d: pb::NetworkDriver) -> Result<NetworkDriver, ControlError> {
    match d {
        pb::NetworkDriver::Overlay => Ok(NetworkDriver::Overlay),
        pb::NetworkDriver::Bridge => Ok(NetworkDriver::Bridge),
        pb::NetworkDriver::Host => Err(ControlError::SingletonDriver {
            driver: "host",
            network: "host",
        }),
        pb::NetworkDriver::Null => Err(ControlError::SingletonDriver {
            driver: "null",
            network: "none",
        }),
    }
}

pub(super) async fn create(
    svc: &ControlService,
    req: Request<pb::CreateNetworkRequest>,
) -> R<pb::Network> {
    let r = req.into_inner();
    network_name(&svc.m.store.read(), &r.name)?;
    if !r.subnet.is_empty() {
        Subnet::parse(&r.subnet).map_err(ControlError::from)?;
    }
    let net = Network {
        id: new_id().into(),
        name: r.name.clone(),
        driver: driver(r.driver())?,
        subnet: r.subnet,
        attachable: r.attachable,
        labels: r.labels.into_iter().collect(),
        created_ms: now_ms(),
        ..Default::default()
    };
    let id = svc.write(Command::CreateNetwork(net)).await?.id;
    let s = svc.m.store.read();
    let n = s
        .networks
        .get(id.as_str())
        .ok_or(ControlError::Vanished("network"))?;
    Ok(Response::new(n.into()))
}

pub(super) async fn list(svc: &ControlService, _: Request<pb::Empty>) -> R<pb::NetworkList> {
    let s = svc.m.store.read();
    Ok(Response::new(pb::NetworkList {
        networks: s.networks.values().map(Into::into).collect(),
    }))
}

pub(super) async fn get(svc: &ControlService, req: Request<pb::IdRequest>) -> R<pb::Network> {
    let s = svc.m.store.read();
    let n = s.network(&req.get_ref().id)?;
    Ok(Response::new(n.into()))
}

pub(super) async fn remove(svc: &ControlService, req: Request<pb::IdRequest>) -> R<pb::Empty> {
    let id = svc.m.store.read().network(&req.get_ref().id)?.id.clone();
    svc.write(Command::RemoveNetwork { id }).await?;
    Ok(Response::new(pb::Empty {}))
}
