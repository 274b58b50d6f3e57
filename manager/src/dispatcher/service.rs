//! The Dispatcher gRPC service.

use super::{check_token, AssignmentSet, FromAgent, ToAgent};
use crate::error::ManagerError;
use crate::manager::Manager;
use crate::route::{forwarded, Route};
use crate::store::Refusal;
use shoal_proto::convert::node_to_pb;
use shoal_proto::model::{
    self, now_ms, Command, Node, NodeRole, NodeState, NodeStateChange, TaskStatusUpdate,
};
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_proto::pb::{self, dispatcher_server};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{info, instrument, warn};

/// Metadata key carrying the leader's address when a follower refuses a session.
pub const LEADER_ADDR_KEY: &str = "shoal-leader-addr";

/// Serves agents.
pub struct DispatcherService {
    m: Arc<Manager>,
}

impl DispatcherService {
    /// The service for manager `m`.
    pub fn new(m: Arc<Manager>) -> Self {
        DispatcherService { m }
    }

    /// The tonic server.
    pub fn into_server(self) -> dispatcher_server::DispatcherServer<Self> {
        dispatcher_server::DispatcherServer::new(self)
    }

    fn not_leader(&self) -> Status {
        match self.m.leader() {
            Some((_, addr)) => {
                let mut s = Status::failed_precondition(format!(
                    "this manager is not the leader; the leader is {addr}"
                ));
                if let Ok(v) = addr.parse() {
                    s.metadata_mut().insert(LEADER_ADDR_KEY, v);
                }
                s
            }
            None => ManagerError::NoLeaderNow.into(),
        }
    }

    fn session_message(
        &self,
        session_id: &str,
        node: &Node,
        assignments: Option<pb::Assignments>,
    ) -> pb::SessionMessage {
        if let Some(a) = &assignments {
            crate::metrics::assignment_sent(tonic_prost::prost::Message::encoded_len(a));
        }
        let (roots_pem, ca_digest) = self
            .m
            .store
            .read()
            .cluster
            .as_ref()
            .map(|c| (c.ca_roots_pem.clone(), c.digest.clone()))
            .unwrap_or_default();
        pb::SessionMessage {
            roots_pem,
            ca_digest,
            session_id: session_id.to_string(),
            node: Some(node_to_pb(node, "")),
            managers: self.m.manager_addrs(),
            heartbeat_period_ms: self.m.dispatcher.period().as_millis() as u64,
            assignments,
            log_request: None,
            exec_request: None,
            lb_request: None,
            exec_session: None,
            image_op: None,
        }
    }
}

#[tonic::async_trait]
impl dispatcher_server::Dispatcher for DispatcherService {
    async fn get_root_ca(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::RootCaResponse>, Status> {
        let roots_pem = self
            .m
            .store
            .read()
            .cluster
            .as_ref()
            .map(|c| c.ca_roots_pem.clone())
            .ok_or(ManagerError::NotInitialised)?;
        Ok(Response::new(pb::RootCaResponse { roots_pem }))
    }

    #[instrument(skip_all, fields(node.id = %req.get_ref().node_id))]
    async fn renew_certificate(
        &self,
        req: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::CertificateResponse>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        if let Route::Leader(ch) = self.m.route(&req)? {
            return DispatcherClient::new(ch)
                .renew_certificate(forwarded(req.into_inner(), None))
                .await;
        }
        let r = req.into_inner();
        let issued = self.m.renew_certificate(&r.node_id, &r.csr).await?;
        Ok(Response::new(pb::CertificateResponse {
            certificate: issued.chain_pem,
            roots_pem: issued.roots_pem,
            issuer: issued.issuer,
        }))
    }

    #[instrument(skip_all, fields(hostname = %req.get_ref().hostname))]
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        if let Route::Leader(ch) = self.m.route(&req)? {
            return DispatcherClient::new(ch)
                .register(forwarded(req.into_inner(), None))
                .await;
        }
        if !req.get_ref().node_id.is_empty() {
            // Only the node itself may come back as itself.
            self.m.check_node(&req, &req.get_ref().node_id)?;
        }
        let r = req.into_inner();
        let (cluster, existing) = {
            let s = self.m.store.read();
            (
                s.cluster.clone(),
                (!r.node_id.is_empty())
                    .then(|| s.nodes.get(r.node_id.as_str()).cloned())
                    .flatten(),
            )
        };
        let cluster = cluster.ok_or(ManagerError::NotInitialised)?;
        let managers = self.m.manager_addrs();
        if let Some(n) = existing {
            // A node that joined before and kept its state dir.
            if n.addr != r.addr && !r.addr.is_empty() {
                let mut upd = n.clone();
                upd.addr = r.addr.clone();
                match self.m.write(Command::PutNode(upd)).await {
                    // Someone else wrote the node meanwhile: its next registration records
                    // the address.
                    Ok(_) | Err(ManagerError::Refused(Refusal::Conflict(_))) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Response::new(pb::RegisterResponse {
                node_id: n.id.to_string(),
                role: pb::NodeRole::from(n.role) as i32,
                cluster_id: cluster.id,
                raft_id: n.raft_id,
                managers,
                certificate: String::new(),
                roots_pem: cluster.ca_roots_pem,
            }));
        }
        if !r.node_id.is_empty() {
            return Err(Status::permission_denied(format!(
                "node {} is not part of this cluster (was it removed?); clear its state dir and join again with a token",
                r.node_id
            )));
        }
        let role = check_token(&cluster, &r.token)
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        if role == NodeRole::Manager && r.raft_id == 0 {
            return Err(Status::invalid_argument("a manager must send its raft id"));
        }
        let now = now_ms();
        let node = Node {
            id: model::new_id().into(),
            hostname: r.hostname.clone(),
            role,
            addr: r.addr.clone(),
            labels: r.labels.into_iter().collect(),
            raft_id: if role == NodeRole::Manager {
                r.raft_id
            } else {
                0
            },
            state: NodeState::Unknown,
            created_ms: now,
            updated_ms: now,
            ..Default::default()
        };
        // Sign first: a bad request leaves nothing behind in the store.
        let issued = crate::ca::issue(&cluster, &node.id, role, &r.csr)?;
        let mut cmds = vec![Command::PutNode(node.clone())];
        if let Some(i) = &issued {
            cmds.push(crate::ca::issued_command(&node.id, i));
        }
        self.m.write(Command::Batch(cmds)).await?;
        info!(node.id = %node.id, role = ?role, "node joined");
        let issued = issued.unwrap_or_default();
        Ok(Response::new(pb::RegisterResponse {
            node_id: node.id.to_string(),
            role: pb::NodeRole::from(role) as i32,
            cluster_id: cluster.id,
            raft_id: node.raft_id,
            managers,
            certificate: issued.chain_pem,
            roots_pem: issued.roots_pem,
        }))
    }

    type SessionStream = ReceiverStream<Result<pb::SessionMessage, Status>>;

    #[instrument(skip_all, fields(node.id = %req.get_ref().node_id))]
    async fn session(
        &self,
        req: Request<pb::SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if !self.m.is_leader() {
            return Err(self.not_leader());
        }
        if !self.m.dispatcher.leading() {
            // Raft says leader but leadership is not confirmed yet. openraft restarts a former
            // leader as leader of its old term at once, with a store that may lack everything
            // committed while it was down; a full assignment set from it would make the agent
            // stop tasks the cluster still wants.
            return Err(Status::unavailable(
                "this manager is not serving agents yet (leadership not confirmed); retry shortly",
            ));
        }
        self.m.check_node(&req, &req.get_ref().node_id)?;
        let r = req.into_inner();
        let (node_id, deltas) = (r.node_id, r.table_deltas);
        let node = self
            .m
            .store
            .read()
            .nodes
            .get(node_id.as_str())
            .cloned()
            .ok_or_else(|| {
                Status::permission_denied(format!(
                    "node {node_id} is not part of this cluster (was it removed?)"
                ))
            })?;
        let (log_tx, mut log_rx) = mpsc::channel(16);
        let (session_id, _) = self.m.dispatcher.open_session(&node_id, log_tx);
        // Mark the node READY now rather than at the next monitor tick (unless it is: after a
        // leader change thousands of nodes come back at once, already READY).
        let m = self.m.clone();
        let nid = node_id.clone();
        let ready = node.state == NodeState::Ready;
        tokio::spawn(async move {
            if ready {
                return;
            }
            if let Err(e) = m
                .raft
                .client_write(Command::SetNodeStates(vec![NodeStateChange {
                    node_id: nid.into(),
                    state: NodeState::Ready,
                    message: String::new(),
                }]))
                .await
            {
                warn!(error = %e, "could not mark node ready");
            }
        });
        let (tx, rx) = mpsc::channel(16);
        let mut set = AssignmentSet::new(deltas);
        let first = {
            let s = self.m.store.read();
            let tables = self.m.dispatcher.tables(&s, self.m.store.applied_index());
            set.next(&s, &tables, &node_id, true)
        };
        let _ = tx
            .send(Ok(self.session_message(&session_id, &node, first)))
            .await;
        let svc = DispatcherService { m: self.m.clone() };
        tokio::spawn(async move {
            let m = svc.m.clone();
            let mut changes = m.store.subscribe();
            let mut last_node = node;
            let mut last_managers = m.manager_addrs();
            let ca_of = |s: &crate::store::State| {
                s.cluster
                    .as_ref()
                    .map(|c| (c.digest.clone(), c.ca_roots_pem.clone()))
            };
            let mut last_ca = ca_of(&m.store.read());
            loop {
                tokio::select! {
                    r = changes.changed() => {
                        if r.is_err() { break }
                        // A burst of commits becomes one message: wait a little, then take
                        // everything applied meanwhile.
                        let window = super::coalesce_window(m.dispatcher.session_count());
                        tokio::select! {
                            _ = tokio::time::sleep(window) => {}
                            _ = tx.closed() => break,
                        }
                        changes.borrow_and_update();
                    }
                    Some(req) = log_rx.recv() => {
                        let mut msg = svc.session_message(&session_id, &last_node, None);
                        match req {
                            ToAgent::Logs(lr) => msg.log_request = Some(lr),
                            ToAgent::Exec(er) => msg.exec_request = Some(er),
                            ToAgent::Lb(lr) => msg.lb_request = Some(lr),
                            ToAgent::ExecSession(es) => msg.exec_session = Some(es),
                            ToAgent::Image(op) => msg.image_op = Some(op),
                        }
                        if tx.send(Ok(msg)).await.is_err() { break }
                        continue;
                    }
                    _ = tx.closed() => break,
                }
                if !m.is_leader() || !m.dispatcher.session_valid(&node_id, &session_id) {
                    let _ = tx.send(Err(svc.not_leader())).await;
                    break;
                }
                let (node, inc, ca) = {
                    let s = m.store.read();
                    let Some(node) = s.nodes.get(node_id.as_str()).cloned() else {
                        break;
                    };
                    let tables = m.dispatcher.tables(&s, m.store.applied_index());
                    (node, set.next(&s, &tables, &node_id, false), ca_of(&s))
                };
                let managers = m.manager_addrs();
                let node_changed =
                    node.role != last_node.role || node.availability != last_node.availability;
                // A new signing root or trust bundle (root rotation) reaches every node at once.
                if inc.is_some() || node_changed || managers != last_managers || ca != last_ca {
                    last_node = node;
                    last_managers = managers;
                    last_ca = ca;
                    if tx
                        .send(Ok(svc.session_message(&session_id, &last_node, inc)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
            m.dispatcher.close_session(&node_id, &session_id);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        let r = req.into_inner();
        crate::metrics::HEARTBEATS.inc();
        let Some(period) = self.m.dispatcher.heartbeat(&r.node_id, &r.session_id) else {
            if !self.m.is_leader() {
                return Err(self.not_leader());
            }
            return Err(Status::not_found("unknown session; open a new one"));
        };
        Ok(Response::new(pb::HeartbeatResponse {
            period_ms: period.as_millis() as u64,
        }))
    }

    #[instrument(skip_all, fields(node.id = %req.get_ref().node_id))]
    async fn goodbye(
        &self,
        req: Request<pb::GoodbyeRequest>,
    ) -> Result<Response<pb::GoodbyeResponse>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        let r = req.into_inner();
        if !self.m.dispatcher.goodbye(&r.node_id, &r.session_id) {
            if !self.m.is_leader() {
                return Err(self.not_leader());
            }
            return Err(Status::not_found("unknown session"));
        }
        let grace = self.m.dispatcher.restart_grace();
        info!(
            ?grace,
            "node said goodbye; its tasks stay until it returns or the grace ends"
        );
        self.m
            .write(Command::SetNodeStates(vec![NodeStateChange {
                node_id: r.node_id.into(),
                state: NodeState::Disconnected,
                message: format!("restarting (stopped cleanly); Down if not back within {grace:?}"),
            }]))
            .await?;
        Ok(Response::new(pb::GoodbyeResponse {
            restart_grace_ms: grace.as_millis() as u64,
        }))
    }

    async fn update_task_status(
        &self,
        req: Request<pb::UpdateTaskStatusRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        let r = req.into_inner();
        if !self.m.dispatcher.session_valid(&r.node_id, &r.session_id) {
            return Err(if self.m.is_leader() {
                Status::not_found("unknown session; open a new one")
            } else {
                self.not_leader()
            });
        }
        let updates: Vec<TaskStatusUpdate> = {
            let s = self.m.store.read();
            r.updates
                .iter()
                .filter(|u| {
                    s.tasks
                        .get(u.task_id.as_str())
                        .is_some_and(|t| t.node_id == r.node_id)
                })
                .filter_map(|u| {
                    Some(TaskStatusUpdate {
                        task_id: u.task_id.clone().into(),
                        status: u.status.as_ref()?.into(),
                    })
                })
                .collect()
        };
        if updates.is_empty() {
            return Ok(Response::new(pb::Empty {}));
        }
        self.m.dispatcher.submit_statuses(updates).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn publish_exec(
        &self,
        req: Request<pb::ExecResult>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        self.m.dispatcher.deliver(FromAgent::Exec(req.into_inner()));
        Ok(Response::new(pb::Empty {}))
    }

    type ExecAttachStream = ReceiverStream<Result<pb::ExecFrame, Status>>;

    /// An agent attaching to an interactive exec the leader asked of it: its first frame names
    /// the session and the node, which must be the caller's and the one the session was asked
    /// of.
    #[instrument(skip_all)]
    async fn exec_attach(
        &self,
        mut req: Request<tonic::Streaming<pb::ExecFrame>>,
    ) -> Result<Response<Self::ExecAttachStream>, Status> {
        let first = tokio::time::timeout(self.m.cfg.relay_timeout, req.get_mut().message())
            .await
            .map_err(|_| Status::deadline_exceeded("no frame naming the exec session"))??
            .ok_or_else(|| Status::invalid_argument("no frame naming the exec session"))?;
        self.m.check_node(&req, &first.node_id)?;
        let (to_agent, rx) = mpsc::channel(super::EXEC_FRAMES);
        let leg = super::AgentLeg {
            to_agent,
            from_agent: Box::pin(req.into_inner()),
        };
        self.m
            .dispatcher
            .exec_attach(&first.session_id, &first.node_id, leg)?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_lb(
        &self,
        req: Request<pb::LbNodeReport>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        self.m.dispatcher.deliver(FromAgent::Lb(req.into_inner()));
        Ok(Response::new(pb::Empty {}))
    }

    async fn publish_image(
        &self,
        req: Request<pb::ImageNodeReport>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        self.m
            .dispatcher
            .deliver(FromAgent::Image(req.into_inner()));
        Ok(Response::new(pb::Empty {}))
    }

    type ImageUploadStream = ReceiverStream<Result<pb::ImageLoadChunk, Status>>;

    /// An agent fetching the archive of an `image load` the leader asked of it: the node named
    /// must be the caller's and the one the load was asked of.
    #[instrument(skip_all)]
    async fn image_upload(
        &self,
        req: Request<pb::ImageUploadRequest>,
    ) -> Result<Response<Self::ImageUploadStream>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        let r = req.into_inner();
        let (leg, rx) = mpsc::channel(super::UPLOAD_CHUNKS);
        self.m
            .dispatcher
            .image_upload(&r.request_id, &r.node_id, leg)?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_logs(
        &self,
        req: Request<pb::PublishLogsRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.m.check_node(&req, &req.get_ref().node_id)?;
        self.m.dispatcher.publish_logs(req.into_inner()).await?;
        Ok(Response::new(pb::Empty {}))
    }
}
