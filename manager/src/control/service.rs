//! `service create|update|scale|inspect|ls|rm`.

use super::{service_spec, ControlError, ControlService, R};
use crate::manager::ManagerError;
use crate::orchestrator::update;
use crate::store::{Refusal, State, Versioned};
use shoal_proto::convert::service_to_pb;
use shoal_proto::model::{
    new_id, now_ms, Command, Service, ServiceMode, ServiceSpec, Task, TaskState,
};
use shoal_proto::pb;
use tonic::{Request, Response};
use tracing::instrument;

/// Attempts of `service scale` when the service keeps changing under it.
const SCALE_ATTEMPTS: usize = 5;

/// A service as the Control API shows it, with its running and desired task counts.
fn service_pb(s: &State, svc: &Service) -> pb::Service {
    let live = |t: &&Task| t.service_id == svc.id && t.desired_state <= TaskState::Running;
    let running = s
        .tasks
        .values()
        .filter(live)
        .filter(|t| t.status.state == TaskState::Running)
        .count() as u64;
    let desired = match svc.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::Global => s.tasks.values().filter(live).count() as u64,
    };
    service_to_pb(svc, running, desired)
}

/// Service `id` as it is in the store now.
fn shown(svc: &ControlService, id: &str) -> R<pb::Service> {
    let s = svc.m.store.read();
    let found = s.service(id)?;
    Ok(Response::new(service_pb(&s, found)))
}

/// The spec of a create or update request in the model's form (not yet checked against the
/// store: see [`service_spec`]).
fn convert(spec: Option<pb::ServiceSpec>) -> Result<ServiceSpec, ControlError> {
    let spec = spec.ok_or(ControlError::NoSpec)?;
    ServiceSpec::try_from(&spec).map_err(ControlError::Spec)
}

#[instrument(skip_all, fields(service = %req.get_ref().spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")))]
pub(super) async fn create(
    svc: &ControlService,
    req: Request<pb::CreateServiceRequest>,
) -> R<pb::Service> {
    let mut spec = convert(req.into_inner().spec)?;
    {
        let s = svc.m.store.read();
        service_spec(&s, &mut spec)?;
        if s.services.values().any(|o| o.spec.name == spec.name) {
            return Err(ControlError::ServiceExists(spec.name).into());
        }
    }
    let now = now_ms();
    let created = Service {
        id: new_id().into(),
        spec,
        spec_version: 1,
        created_ms: now,
        updated_ms: now,
        ..Default::default()
    };
    let id = svc.write(Command::CreateService(created)).await?.id;
    let s = svc.m.store.read();
    let created = s
        .services
        .get(id.as_str())
        .ok_or(ControlError::Vanished("service"))?;
    Ok(Response::new(service_pb(&s, created)))
}

#[instrument(skip_all, fields(service.id = %req.get_ref().id, rollback = req.get_ref().rollback))]
pub(super) async fn update(
    svc: &ControlService,
    req: Request<pb::UpdateServiceRequest>,
) -> R<pb::Service> {
    let r = req.into_inner();
    if r.version == 0 {
        return Err(ControlError::NoVersion.into());
    }
    let now = now_ms();
    let mut next = {
        let s = svc.m.store.read();
        let current = s.service(&r.id)?;
        if r.rollback {
            update::start_rollback(current, now)
                .ok_or_else(|| ControlError::NoPreviousSpec(current.spec.name.clone()))?
        } else {
            let mut spec = convert(r.spec)?;
            service_spec(&s, &mut spec)?;
            if matches!(current.spec.mode, ServiceMode::Global)
                != matches!(spec.mode, ServiceMode::Global)
            {
                return Err(ControlError::ModeChange.into());
            }
            if r.skip_unchanged && spec == current.spec {
                if current.version != r.version {
                    return Err(ManagerError::Refused(Refusal::Conflict(Versioned::Service {
                        name: current.spec.name.clone(),
                    }))
                    .into());
                }
                let id = current.id.clone();
                drop(s);
                return shown(svc, &id);
            }
            update::start(current, spec, now)
        }
    };
    // The version the client read, not the current one: a service changed since is refused
    // (`update out of sequence`) and the client re-reads and re-applies its change.
    next.version = r.version;
    let id = next.id.clone();
    svc.write(Command::UpdateService(next)).await?;
    shown(svc, &id)
}

pub(super) async fn scale(svc: &ControlService, req: Request<pb::ScaleRequest>) -> R<pb::Service> {
    let r = req.into_inner();
    if r.replicas > crate::MAX_REPLICAS {
        return Err(ControlError::ScaleTooLarge {
            replicas: r.replicas,
            max: crate::MAX_REPLICAS,
        }
        .into());
    }
    for _ in 0..SCALE_ATTEMPTS {
        let mut current = svc.m.store.read().service(&r.id)?.clone();
        if matches!(current.spec.mode, ServiceMode::Global) {
            return Err(ControlError::ScaleGlobal(current.spec.name).into());
        }
        current.spec.mode = ServiceMode::Replicated {
            replicas: r.replicas,
        };
        current.updated_ms = now_ms();
        let id = current.id.clone();
        match svc.write(Command::UpdateService(current)).await {
            Ok(_) => return shown(svc, &id),
            Err(ManagerError::Refused(Refusal::Conflict(_))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ControlError::KeptChanging.into())
}

pub(super) async fn get(svc: &ControlService, req: Request<pb::IdRequest>) -> R<pb::Service> {
    shown(svc, &req.get_ref().id)
}

pub(super) async fn list(svc: &ControlService, _: Request<pb::Empty>) -> R<pb::ServiceList> {
    let s = svc.m.store.read();
    let services = s.services.values().map(|x| service_pb(&s, x)).collect();
    Ok(Response::new(pb::ServiceList { services }))
}

pub(super) async fn remove(svc: &ControlService, req: Request<pb::IdRequest>) -> R<pb::Empty> {
    let id = svc.m.store.read().service(&req.get_ref().id)?.id.clone();
    svc.write(Command::RemoveService { id }).await?;
    Ok(Response::new(pb::Empty {}))
}
