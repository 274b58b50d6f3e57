//! `swarm inspect`, `swarm update` (autolock included), `swarm ca --rotate`, `swarm join-token`,
//! `swarm unlock-key`.

use super::{ControlError, ControlService, R};
use crate::manager::ManagerError;
use crate::raft::storage::unlock::UnlockKey;
use crate::store::{Refusal, State};
use shoal_proto::model::{new_id, Cluster, Command, NodeRole, Secret};
use shoal_proto::pb;
use tonic::{Request, Response};

/// The cluster object, or [`ManagerError::NotInitialised`].
fn current(s: &State) -> Result<Cluster, ManagerError> {
    s.cluster.clone().ok_or(ManagerError::NotInitialised)
}

/// A version conflict on the cluster during a rotation, as the rotation's own error.
fn rotation_conflict(e: ManagerError) -> ManagerError {
    match e {
        ManagerError::Refused(Refusal::Conflict(_)) => ControlError::RotationConflict.into(),
        e => e,
    }
}

/// The cluster as the Control API shows it (never its CA key).
fn cluster_pb(svc: &ControlService) -> Result<pb::Cluster, ManagerError> {
    let m = &svc.m;
    let s = m.store.read();
    let c = current(&s)?;
    let metrics = m.raft.metrics().borrow().clone();
    let leader = metrics
        .current_leader
        .and_then(|id| s.nodes.values().find(|n| n.raft_id == id))
        .map(|n| n.hostname.clone())
        .unwrap_or_default();
    let count = |role| s.nodes.values().filter(|n| n.role == role).count() as u32;
    let rotating = !c.ca_cross_pem.is_empty();
    Ok(pb::Cluster {
        id: c.id,
        default_addr_pool: c.default_addr_pool,
        subnet_size: c.subnet_size.into(),
        created_ms: c.created_ms,
        raft_leader: leader,
        raft_term: metrics.current_term,
        raft_last_applied: metrics.last_applied.map(|l| l.index).unwrap_or(0),
        managers: count(NodeRole::Manager),
        workers: count(NodeRole::Worker),
        heartbeat_period_ms: m.dispatcher.period().as_millis() as u64,
        ca_digest: if c.ca_cert_pem.is_empty() {
            String::new()
        } else {
            c.digest.clone()
        },
        cert_expiry_ms: c.cert_expiry_ms,
        ca_rotating: rotating,
        ca_rotation_pending: if rotating {
            crate::ca::pending(&s) as u32
        } else {
            0
        },
        autolock: c.autolock,
    })
}

/// A fresh unlock key, as the cluster object keeps it.
fn new_unlock_key() -> Secret {
    Secret(UnlockKey::generate().to_text().to_string())
}

pub(super) async fn get(svc: &ControlService, _: Request<pb::Empty>) -> R<pb::Cluster> {
    Ok(Response::new(cluster_pb(svc)?))
}

pub(super) async fn update(
    svc: &ControlService,
    req: Request<pb::UpdateClusterRequest>,
) -> R<pb::Cluster> {
    let r = req.into_inner();
    let mut c = current(&svc.m.store.read())?;
    if r.cert_expiry_ms > 0 {
        let min = crate::ca::MIN_CERT_EXPIRY.as_millis() as u64;
        if r.cert_expiry_ms < min {
            return Err(ControlError::CertExpiry {
                min_secs: min / 1000,
            }
            .into());
        }
        c.cert_expiry_ms = r.cert_expiry_ms;
    }
    match r.autolock {
        // Turning it on makes a key; leaving it on keeps the one operators hold.
        Some(true) if !c.autolock => {
            c.autolock = true;
            c.unlock_key = new_unlock_key();
        }
        Some(false) => {
            c.autolock = false;
            c.unlock_key = Secret::default();
        }
        _ => {}
    }
    // A conflict is ABORTED: "the cluster changed concurrently; retry".
    svc.write(Command::PutCluster(c)).await?;
    Ok(Response::new(cluster_pb(svc)?))
}

pub(super) async fn rotate_ca(svc: &ControlService, _: Request<pb::Empty>) -> R<pb::Cluster> {
    let c = current(&svc.m.store.read())?;
    let n = crate::ca::rotated(&c)?;
    svc.write(Command::PutCluster(n))
        .await
        .map_err(rotation_conflict)?;
    Ok(Response::new(cluster_pb(svc)?))
}

/// `swarm unlock-key [--rotate]`: the unlock key (a new one first with `rotate`); every
/// manager re-wraps its key file under it (`crate::autolock`).
pub(super) async fn unlock_key(
    svc: &ControlService,
    req: Request<pb::UnlockKeyRequest>,
) -> R<pb::UnlockKeyResponse> {
    let mut c = current(&svc.m.store.read())?;
    if !c.autolock || c.unlock_key.is_empty() {
        return Err(ManagerError::from(ControlError::NoUnlockKey).into());
    }
    if req.into_inner().rotate {
        c.unlock_key = new_unlock_key();
        svc.write(Command::PutCluster(c.clone()))
            .await
            .map_err(rotation_conflict)?;
    }
    Ok(Response::new(pb::UnlockKeyResponse {
        key: c.unlock_key.0,
    }))
}

pub(super) async fn join_token(
    svc: &ControlService,
    req: Request<pb::JoinTokenRequest>,
) -> R<pb::JoinTokenResponse> {
    let r = req.into_inner();
    let role: NodeRole = r.role().into();
    let mut c = current(&svc.m.store.read())?;
    if r.rotate {
        let secret = new_id();
        match role {
            NodeRole::Worker => c.worker_secret = secret,
            NodeRole::Manager => c.manager_secret = secret,
        }
        svc.write(Command::PutCluster(c.clone()))
            .await
            .map_err(rotation_conflict)?;
    }
    let manager_addr = svc
        .m
        .leader()
        .map(|(_, a)| a)
        .unwrap_or_else(|| svc.m.cfg.advertise_addr.clone());
    Ok(Response::new(pb::JoinTokenResponse {
        token: c.token(role),
        manager_addr,
    }))
}
