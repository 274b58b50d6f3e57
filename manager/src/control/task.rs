//! `task ls` (also `service ps` and `node ps`) and `task inspect`.

use super::{ControlService, R};
use shoal_proto::model::TaskState;
use shoal_proto::pb;
use tonic::{Request, Response};

pub(super) async fn list(svc: &ControlService, req: Request<pb::TaskFilter>) -> R<pb::TaskList> {
    let f = req.into_inner();
    let s = svc.m.store.read();
    let service = match f.service.as_str() {
        "" => None,
        q => Some(s.service(q)?.id.clone()),
    };
    let node = match f.node.as_str() {
        "" => None,
        // `swarmctl node ps` without a node: the node this manager runs on.
        "self" => Some(svc.m.cfg.node_id.clone()),
        q => Some(s.node(q)?.id.to_string()),
    };
    let tasks = s
        .tasks
        .values()
        .filter(|t| service.as_ref().is_none_or(|id| t.service_id == *id))
        .filter(|t| node.as_ref().is_none_or(|id| t.node_id == *id))
        .filter(|t| f.all || t.desired_state <= TaskState::Running || !t.status.state.is_terminal())
        .filter(|t| {
            !f.up_to_date
                || s.services
                    .get(t.service_id.as_str())
                    .is_some_and(|svc| !crate::orchestrator::outdated(svc, t))
        })
        .map(Into::into)
        .collect();
    Ok(Response::new(pb::TaskList { tasks }))
}

pub(super) async fn get(svc: &ControlService, req: Request<pb::IdRequest>) -> R<pb::Task> {
    let s = svc.m.store.read();
    let t = s.task(&req.get_ref().id)?;
    Ok(Response::new(t.into()))
}
