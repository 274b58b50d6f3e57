//! The calls the leader answers by asking agents over their sessions (see
//! [`crate::dispatcher`]'s relay): `task exec`, `network inspect --lb` (and, in `logs`,
//! `service logs`). Agents
//! hold their sessions with the leader, so a follower forwards these, and fails rather than
//! answering from its own (empty) dispatcher.

use super::{ControlError, ControlService, R};
use crate::dispatcher::RelayError;
use crate::route::{forwarded, Route};
use shoal_proto::model::{NetworkDriver, Node, TaskState};
use shoal_proto::pb;
use shoal_proto::pb::control_client::ControlClient;
use tonic::{Request, Response};

/// The leader's Control API when this manager is not the leader.
pub(super) fn leader<T>(
    svc: &ControlService,
    req: &Request<T>,
) -> Result<Option<ControlClient<tonic::transport::Channel>>, crate::ManagerError> {
    Ok(match svc.m.route(req)? {
        Route::Leader(ch) => Some(ControlClient::new(ch)),
        Route::Here => None,
    })
}

pub(super) async fn exec(
    svc: &ControlService,
    req: Request<pb::ExecTaskRequest>,
) -> R<pb::ExecResult> {
    if let Some(mut leader) = leader(svc, &req)? {
        return leader.exec_task(forwarded(req.into_inner(), None)).await;
    }
    let r = req.into_inner();
    if r.cmd.is_empty() {
        return Err(ControlError::NoCommand.into());
    }
    let (task_id, node) = running_task(svc, &r.task)?;
    let timeout = match r.timeout_ms {
        0 => svc.m.dispatcher.exec_default_timeout(),
        ms => std::time::Duration::from_millis(u64::from(ms)),
    };
    let out = svc
        .m
        .dispatcher
        .exec(&node, &task_id, r.cmd, timeout)
        .await
        .map_err(exec_relay_error)?;
    Ok(Response::new(out))
}

/// What a failed relay of an exec (plain or interactive) tells the client.
pub(super) fn exec_relay_error(e: RelayError) -> ControlError {
    match e {
        RelayError::Timeout { after } => ControlError::ExecNoAnswer {
            secs: after.as_secs(),
        },
        _ => ControlError::TaskUnreachable,
    }
}

/// The id of running task `task` (id, prefix or name) and the node it runs on. A task whose
/// health check has not passed yet runs too (STARTING with its pid), as `docker exec` reaches a
/// container whose health is `starting`.
pub(super) fn running_task(
    svc: &ControlService,
    task: &str,
) -> Result<(String, String), crate::ManagerError> {
    let s = svc.m.store.read();
    let t = s.task(task)?;
    let started = t.status.state == TaskState::Running
        || (t.status.state == TaskState::Starting && t.status.pid != 0);
    if !started {
        return Err(ControlError::TaskNotRunning {
            name: t.name(),
            state: t.status.state,
        }
        .into());
    }
    Ok((t.id.to_string(), t.node_id.to_string()))
}

pub(super) async fn inspect_lb(
    svc: &ControlService,
    req: Request<pb::InspectLbRequest>,
) -> R<pb::LbReport> {
    if let Some(mut leader) = leader(svc, &req)? {
        return leader.inspect_lb(forwarded(req.into_inner(), None)).await;
    }
    let r = req.into_inner();
    let (net, nodes) = {
        let s = svc.m.store.read();
        let net = s.network(&r.network)?.clone();
        if net.driver != NetworkDriver::Overlay {
            return Err(ControlError::NotOverlay(net.name).into());
        }
        let nodes: Vec<Node> = match r.node.as_str() {
            "" => s
                .nodes
                .values()
                .filter(|n| n.lb_addrs.contains_key(&net.id))
                .cloned()
                .collect(),
            want => vec![s.node(want)?.clone()],
        };
        (net, nodes)
    };
    let asks = nodes
        .iter()
        .map(|n| svc.m.dispatcher.lb_report(&n.id, &net.id));
    let answers = futures_util::future::join_all(asks).await;
    let mut reports: Vec<pb::LbNodeReport> = nodes
        .iter()
        .zip(answers)
        .map(|(n, a)| {
            let mut rep = a.unwrap_or_else(|e| pb::LbNodeReport {
                error: e.to_string(),
                ..Default::default()
            });
            rep.node_id = n.id.to_string();
            rep.hostname = n.hostname.clone();
            rep
        })
        .collect();
    reports.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(Response::new(pb::LbReport {
        network_id: net.id.to_string(),
        network: net.name,
        nodes: reports,
    }))
}
