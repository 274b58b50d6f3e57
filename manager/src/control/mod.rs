//! The Control API served to `swarmctl`. Reads are answered from this manager's store; writes go
//! through raft (forwarded to the leader by [`Manager::write`]).

mod validate;

pub use validate::{network_name, service_spec, RESERVED_NETWORKS};

use crate::manager::{Manager, ManagerError};
use crate::store::State;
use shoal_proto::convert::{node_to_pb, service_to_pb};
use shoal_proto::model::{
    self, new_id, now_ms, Availability, Command, Network, NetworkDriver, Node, NodeRole, NodeState,
    Service, ServiceMode, ServiceSpec, TaskState,
};
use shoal_proto::pb::control_client::ControlClient;
use shoal_proto::pb::{self, control_server};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::instrument;

/// Serves swarmctl.
pub struct ControlService {
    m: Arc<Manager>,
}

impl ControlService {
    /// The service for manager `m`.
    pub fn new(m: Arc<Manager>) -> Self {
        ControlService { m }
    }

    /// The tonic server.
    pub fn into_server(self) -> control_server::ControlServer<Self> {
        control_server::ControlServer::new(self)
    }

    fn manager_status(&self, n: &Node) -> &'static str {
        if n.role != NodeRole::Manager {
            return "";
        }
        match self.m.leader() {
            Some((id, _)) if id == n.raft_id => "Leader",
            _ if self.m.is_leader() && self.m.raft_reachable(n.raft_id) => "Reachable",
            _ if !self.m.is_leader() && n.state == NodeState::Ready => "Reachable",
            _ => "Unreachable",
        }
    }

    fn service_pb(&self, s: &State, svc: &Service) -> pb::Service {
        let live =
            |t: &&model::Task| t.service_id == svc.id && t.desired_state <= TaskState::Running;
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

    /// The cluster as the Control API shows it (never its CA key).
    fn cluster_pb(&self) -> Result<pb::Cluster, Status> {
        let s = self.m.store.read();
        let c = s
            .cluster
            .clone()
            .ok_or_else(|| Status::unavailable("cluster is not initialised yet"))?;
        let metrics = self.m.raft.metrics().borrow().clone();
        let leader = metrics
            .current_leader
            .and_then(|id| s.nodes.values().find(|n| n.raft_id == id))
            .map(|n| n.hostname.clone())
            .unwrap_or_default();
        Ok(pb::Cluster {
            id: c.id,
            default_addr_pool: c.default_addr_pool,
            subnet_size: c.subnet_size.into(),
            created_ms: c.created_ms,
            raft_leader: leader,
            raft_term: metrics.current_term,
            raft_last_applied: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            managers: s
                .nodes
                .values()
                .filter(|n| n.role == NodeRole::Manager)
                .count() as u32,
            workers: s
                .nodes
                .values()
                .filter(|n| n.role == NodeRole::Worker)
                .count() as u32,
            heartbeat_period_ms: self.m.dispatcher.period().as_millis() as u64,
            ca_digest: if c.ca_cert_pem.is_empty() {
                String::new()
            } else {
                c.digest.clone()
            },
            cert_expiry_ms: c.cert_expiry_ms,
            ca_rotating: !c.ca_cross_pem.is_empty(),
            ca_rotation_pending: if c.ca_cross_pem.is_empty() {
                0
            } else {
                crate::ca::pending(&s) as u32
            },
        })
    }

    /// A channel to the leader when this manager is a follower that knows one (and the request
    /// was not already forwarded once).
    fn leader_channel<T>(&self, req: &Request<T>) -> Option<tonic::transport::Channel> {
        if self.m.is_leader() || req.metadata().contains_key(FORWARDED) {
            return None;
        }
        let (_, addr) = self.m.leader()?;
        self.m.channel(&addr).ok()
    }

    /// A client of the leader's Control API, or `None` when this manager is the leader:
    /// for the calls only the leader can answer (its dispatcher holds the agents' sessions).
    fn leader_client(&self) -> Result<Option<ControlClient<tonic::transport::Channel>>, Status> {
        Ok(self.m.channel_to_leader()?.map(ControlClient::new))
    }

    async fn write(&self, cmd: Command) -> Result<model::Response, Status> {
        self.m.write(cmd).await.map_err(to_status)
    }
}

/// Metadata marking a request a follower forwarded to the leader (never forwarded again).
const FORWARDED: &str = "shoal-forwarded";

fn forwarded<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    r.set_timeout(std::time::Duration::from_secs(2));
    r
}

fn to_status(e: ManagerError) -> Status {
    match e {
        ManagerError::Refused(m) => Status::failed_precondition(m),
        e => Status::unavailable(e.to_string()),
    }
}

fn lookup_status(e: crate::store::TaskLookupError) -> Status {
    match e {
        crate::store::TaskLookupError::NotFound(_) => Status::not_found(e.to_string()),
        crate::store::TaskLookupError::Ambiguous { .. } => Status::invalid_argument(e.to_string()),
    }
}

fn not_found(kind: &str, id: &str) -> Status {
    Status::not_found(format!("{kind} {id} not found"))
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl control_server::Control for ControlService {
    async fn get_cluster(&self, _: Request<pb::Empty>) -> R<pb::Cluster> {
        self.cluster_pb().map(Response::new)
    }

    async fn update_cluster(&self, req: Request<pb::UpdateClusterRequest>) -> R<pb::Cluster> {
        let r = req.into_inner();
        let mut c = self
            .m
            .store
            .read()
            .cluster
            .clone()
            .ok_or_else(|| Status::unavailable("cluster is not initialised yet"))?;
        if r.cert_expiry_ms > 0 {
            let min = crate::ca::MIN_CERT_EXPIRY.as_millis() as u64;
            if r.cert_expiry_ms < min {
                return Err(Status::invalid_argument(format!(
                    "--cert-expiry must be at least {} s",
                    min / 1000
                )));
            }
            c.cert_expiry_ms = r.cert_expiry_ms;
        }
        let resp = self.write(Command::PutCluster(c)).await?;
        if resp.conflicts > 0 {
            return Err(Status::aborted("the cluster changed concurrently; retry"));
        }
        self.cluster_pb().map(Response::new)
    }

    async fn rotate_ca(&self, _: Request<pb::Empty>) -> R<pb::Cluster> {
        let c = self
            .m
            .store
            .read()
            .cluster
            .clone()
            .ok_or_else(|| Status::unavailable("cluster is not initialised yet"))?;
        let n = crate::ca::rotated(&c)?;
        let resp = self.write(Command::PutCluster(n)).await?;
        if resp.conflicts > 0 {
            return Err(Status::aborted(
                "the cluster changed concurrently; retry the rotation",
            ));
        }
        self.cluster_pb().map(Response::new)
    }

    async fn get_join_token(&self, req: Request<pb::JoinTokenRequest>) -> R<pb::JoinTokenResponse> {
        let r = req.into_inner();
        let role: NodeRole = r.role().into();
        let mut c = self
            .m
            .store
            .read()
            .cluster
            .clone()
            .ok_or_else(|| Status::unavailable("cluster is not initialised yet"))?;
        if r.rotate {
            let secret = new_id();
            match role {
                NodeRole::Worker => c.worker_secret = secret,
                NodeRole::Manager => c.manager_secret = secret,
            }
            let resp = self.write(Command::PutCluster(c.clone())).await?;
            if resp.conflicts > 0 {
                return Err(Status::aborted(
                    "the cluster changed concurrently; retry the rotation",
                ));
            }
        }
        let manager_addr = self
            .m
            .leader()
            .map(|(_, a)| a)
            .unwrap_or_else(|| self.m.cfg.advertise_addr.clone());
        Ok(Response::new(pb::JoinTokenResponse {
            token: c.token(role),
            manager_addr,
        }))
    }

    async fn list_nodes(&self, req: Request<pb::Empty>) -> R<pb::NodeList> {
        // Only the leader sees which managers answer raft: ask it when we are a follower.
        if let Some(ch) = self.leader_channel(&req) {
            if let Ok(r) = ControlClient::new(ch)
                .list_nodes(forwarded(pb::Empty {}))
                .await
            {
                return Ok(r);
            }
        }
        let s = self.m.store.read();
        let nodes = s
            .nodes
            .values()
            .map(|n| node_to_pb(n, self.manager_status(n)))
            .collect();
        Ok(Response::new(pb::NodeList { nodes }))
    }

    async fn get_node(&self, req: Request<pb::IdRequest>) -> R<pb::Node> {
        if let Some(ch) = self.leader_channel(&req) {
            match ControlClient::new(ch)
                .get_node(forwarded(req.get_ref().clone()))
                .await
            {
                Ok(r) => return Ok(r),
                Err(s) if s.code() == tonic::Code::NotFound => return Err(s),
                Err(_) => {}
            }
        }
        let s = self.m.store.read();
        let n = s
            .node(&req.get_ref().id)
            .ok_or_else(|| not_found("node", &req.get_ref().id))?;
        Ok(Response::new(node_to_pb(n, self.manager_status(n))))
    }

    #[instrument(skip_all, fields(node = %req.get_ref().id))]
    async fn update_node(&self, req: Request<pb::UpdateNodeRequest>) -> R<pb::Node> {
        let r = req.into_inner();
        let (mut node, managers) = {
            let s = self.m.store.read();
            let n = s
                .node(&r.id)
                .cloned()
                .ok_or_else(|| not_found("node", &r.id))?;
            (
                n,
                s.nodes
                    .values()
                    .filter(|n| n.role == NodeRole::Manager)
                    .count(),
            )
        };
        if r.set_availability {
            node.availability = Availability::from(r.availability());
        }
        if r.set_role {
            let role: NodeRole = r.role().into();
            if role == NodeRole::Worker && node.role == NodeRole::Manager && managers <= 1 {
                return Err(Status::failed_precondition(
                    "can't demote the last manager of the cluster: promote another node first",
                ));
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
        let resp = self.write(Command::PutNode(node.clone())).await?;
        if resp.conflicts > 0 {
            return Err(Status::aborted("the node changed concurrently; retry"));
        }
        let n = self
            .m
            .store
            .read()
            .nodes
            .get(&node.id)
            .cloned()
            .unwrap_or(node);
        Ok(Response::new(node_to_pb(&n, self.manager_status(&n))))
    }

    async fn remove_node(&self, req: Request<pb::RemoveNodeRequest>) -> R<pb::Empty> {
        let r = req.into_inner();
        let node = self
            .m
            .store
            .read()
            .node(&r.id)
            .cloned()
            .ok_or_else(|| not_found("node", &r.id))?;
        if node.role == NodeRole::Manager {
            return Err(Status::failed_precondition(format!(
                "node {} is a manager: demote it first (`swarmctl node demote {}`)",
                node.hostname, node.hostname
            )));
        }
        if node.state == NodeState::Ready && !r.force {
            return Err(Status::failed_precondition(format!(
                "node {} is up: stop it first, or remove it anyway with --force",
                node.hostname
            )));
        }
        self.write(Command::RemoveNode { id: node.id }).await?;
        self.m.finish_ca_rotation().await;
        Ok(Response::new(pb::Empty {}))
    }

    #[instrument(skip_all, fields(service = %req.get_ref().spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")))]
    async fn create_service(&self, req: Request<pb::CreateServiceRequest>) -> R<pb::Service> {
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        let mut spec = ServiceSpec::try_from(&spec).map_err(Status::invalid_argument)?;
        {
            let s = self.m.store.read();
            service_spec(&s, &mut spec).map_err(Status::invalid_argument)?;
            if s.services.values().any(|o| o.spec.name == spec.name) {
                return Err(Status::already_exists(format!(
                    "service with name {:?} already exists",
                    spec.name
                )));
            }
        }
        let now = now_ms();
        let svc = Service {
            id: new_id(),
            spec,
            spec_version: 1,
            created_ms: now,
            updated_ms: now,
            ..Default::default()
        };
        let resp = self.write(Command::CreateService(svc)).await?;
        let s = self.m.store.read();
        let svc = s
            .services
            .get(&resp.id)
            .ok_or_else(|| Status::internal("service vanished after create"))?;
        Ok(Response::new(self.service_pb(&s, svc)))
    }

    async fn update_service(&self, req: Request<pb::UpdateServiceRequest>) -> R<pb::Service> {
        let r = req.into_inner();
        let spec = r
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        let mut spec = ServiceSpec::try_from(&spec).map_err(Status::invalid_argument)?;
        let mut svc = {
            let s = self.m.store.read();
            let svc = s
                .service(&r.id)
                .cloned()
                .ok_or_else(|| not_found("service", &r.id))?;
            service_spec(&s, &mut spec).map_err(Status::invalid_argument)?;
            svc
        };
        if matches!(svc.spec.mode, ServiceMode::Global) != matches!(spec.mode, ServiceMode::Global)
        {
            return Err(Status::invalid_argument(
                "a service's mode (replicated or global) can't be changed",
            ));
        }
        svc.spec = spec;
        svc.updated_ms = now_ms();
        let id = svc.id.clone();
        self.write(Command::UpdateService(svc)).await?;
        let s = self.m.store.read();
        let svc = s
            .services
            .get(&id)
            .ok_or_else(|| not_found("service", &id))?;
        Ok(Response::new(self.service_pb(&s, svc)))
    }

    async fn scale_service(&self, req: Request<pb::ScaleRequest>) -> R<pb::Service> {
        let r = req.into_inner();
        if r.replicas > crate::MAX_REPLICAS {
            return Err(Status::invalid_argument(format!(
                "{} replicas is too many (at most {})",
                r.replicas,
                crate::MAX_REPLICAS
            )));
        }
        for _ in 0..5 {
            let mut svc = self
                .m
                .store
                .read()
                .service(&r.id)
                .cloned()
                .ok_or_else(|| not_found("service", &r.id))?;
            if matches!(svc.spec.mode, ServiceMode::Global) {
                return Err(Status::failed_precondition(format!(
                    "service {} is global: scale can only be used with replicated mode",
                    svc.spec.name
                )));
            }
            svc.spec.mode = ServiceMode::Replicated {
                replicas: r.replicas,
            };
            svc.updated_ms = now_ms();
            let id = svc.id.clone();
            match self.m.write(Command::UpdateService(svc)).await {
                Ok(_) => {
                    let s = self.m.store.read();
                    let svc = s
                        .services
                        .get(&id)
                        .ok_or_else(|| not_found("service", &id))?;
                    return Ok(Response::new(self.service_pb(&s, svc)));
                }
                Err(ManagerError::Refused(m)) if m.contains("concurrently") => continue,
                Err(e) => return Err(to_status(e)),
            }
        }
        Err(Status::aborted(
            "the service kept changing concurrently; retry",
        ))
    }

    async fn get_service(&self, req: Request<pb::IdRequest>) -> R<pb::Service> {
        let s = self.m.store.read();
        let svc = s
            .service(&req.get_ref().id)
            .ok_or_else(|| not_found("service", &req.get_ref().id))?;
        Ok(Response::new(self.service_pb(&s, svc)))
    }

    async fn list_services(&self, _: Request<pb::Empty>) -> R<pb::ServiceList> {
        let s = self.m.store.read();
        let services = s
            .services
            .values()
            .map(|svc| self.service_pb(&s, svc))
            .collect();
        Ok(Response::new(pb::ServiceList { services }))
    }

    async fn remove_service(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        let id = self
            .m
            .store
            .read()
            .service(&req.get_ref().id)
            .map(|s| s.id.clone());
        let id = id.ok_or_else(|| not_found("service", &req.get_ref().id))?;
        self.write(Command::RemoveService { id }).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list_tasks(&self, req: Request<pb::TaskFilter>) -> R<pb::TaskList> {
        let f = req.into_inner();
        let s = self.m.store.read();
        let service = if f.service.is_empty() {
            None
        } else {
            Some(
                s.service(&f.service)
                    .map(|x| x.id.clone())
                    .ok_or_else(|| not_found("service", &f.service))?,
            )
        };
        let node = if f.node.is_empty() {
            None
        } else if f.node == "self" {
            // `swarmctl node ps` without a node: the node this manager runs on.
            Some(self.m.cfg.node_id.clone())
        } else {
            Some(
                s.node(&f.node)
                    .map(|x| x.id.clone())
                    .ok_or_else(|| not_found("node", &f.node))?,
            )
        };
        let tasks = s
            .tasks
            .values()
            .filter(|t| service.as_ref().is_none_or(|id| t.service_id == *id))
            .filter(|t| node.as_ref().is_none_or(|id| t.node_id == *id))
            .filter(|t| {
                f.all || t.desired_state <= TaskState::Running || !t.status.state.is_terminal()
            })
            .map(Into::into)
            .collect();
        Ok(Response::new(pb::TaskList { tasks }))
    }

    async fn get_task(&self, req: Request<pb::IdRequest>) -> R<pb::Task> {
        let s = self.m.store.read();
        let t = s.task(&req.get_ref().id).map_err(lookup_status)?;
        Ok(Response::new(t.into()))
    }

    async fn create_network(&self, req: Request<pb::CreateNetworkRequest>) -> R<pb::Network> {
        let r = req.into_inner();
        network_name(&self.m.store.read(), &r.name).map_err(Status::invalid_argument)?;
        if !r.subnet.is_empty() {
            crate::allocator::ipam::Subnet::parse(&r.subnet).map_err(Status::invalid_argument)?;
        }
        let net = Network {
            id: new_id(),
            name: r.name.clone(),
            driver: match r.driver() {
                pb::NetworkDriver::Overlay => NetworkDriver::Overlay,
                pb::NetworkDriver::Bridge => NetworkDriver::Bridge,
                d @ (pb::NetworkDriver::Host | pb::NetworkDriver::Null) => {
                    return Err(Status::invalid_argument(format!(
                        "only one instance of the {} network is allowed: use the predefined {} network",
                        if d == pb::NetworkDriver::Host { "host" } else { "null" },
                        if d == pb::NetworkDriver::Host { "host" } else { "none" },
                    )))
                }
            },
            subnet: r.subnet,
            attachable: r.attachable,
            labels: r.labels.into_iter().collect(),
            created_ms: now_ms(),
            ..Default::default()
        };
        let resp = self.write(Command::CreateNetwork(net)).await?;
        let s = self.m.store.read();
        let n = s
            .networks
            .get(&resp.id)
            .ok_or_else(|| Status::internal("network vanished after create"))?;
        Ok(Response::new(n.into()))
    }

    async fn list_networks(&self, _: Request<pb::Empty>) -> R<pb::NetworkList> {
        let s = self.m.store.read();
        Ok(Response::new(pb::NetworkList {
            networks: s.networks.values().map(Into::into).collect(),
        }))
    }

    async fn get_network(&self, req: Request<pb::IdRequest>) -> R<pb::Network> {
        let s = self.m.store.read();
        let n = s
            .network(&req.get_ref().id)
            .ok_or_else(|| not_found("network", &req.get_ref().id))?;
        Ok(Response::new(n.into()))
    }

    async fn remove_network(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        let id = self
            .m
            .store
            .read()
            .network(&req.get_ref().id)
            .map(|n| n.id.clone());
        let id = id.ok_or_else(|| not_found("network", &req.get_ref().id))?;
        self.write(Command::RemoveNetwork { id }).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn service_logs(&self, req: Request<pb::LogsRequest>) -> R<pb::LogsResponse> {
        if let Some(mut leader) = self.leader_client()? {
            return leader.service_logs(req.into_inner()).await;
        }
        let r = req.into_inner();
        let (by_node, names, task_names) = {
            let s = self.m.store.read();
            let tasks: Vec<&model::Task> = if !r.task.is_empty() {
                vec![s.task(&r.task).map_err(lookup_status)?]
            } else {
                let svc = s
                    .service(&r.service)
                    .ok_or_else(|| not_found("service", &r.service))?;
                s.tasks
                    .values()
                    .filter(|t| t.service_id == svc.id)
                    .collect()
            };
            let names: std::collections::HashMap<String, String> = s
                .nodes
                .values()
                .map(|n| (n.id.clone(), n.hostname.clone()))
                .collect();
            let task_names: std::collections::HashMap<String, String> =
                tasks.iter().map(|t| (t.id.clone(), t.name())).collect();
            (
                crate::dispatcher::by_node(tasks.into_iter()),
                names,
                task_names,
            )
        };
        let (mut lines, errors) = self
            .m
            .dispatcher
            .collect_logs(by_node, r.tail, |id| {
                names.get(id).cloned().unwrap_or_else(|| id.to_string())
            })
            .await;
        for l in &mut lines {
            if let Some(n) = task_names.get(&l.task_id) {
                l.task_name = n.clone();
            }
        }
        Ok(Response::new(pb::LogsResponse { lines, errors }))
    }

    async fn exec_task(&self, req: Request<pb::ExecTaskRequest>) -> R<pb::ExecResult> {
        // Agents hold their sessions with the leader: it relays.
        if let Some(mut leader) = self.leader_client()? {
            return leader.exec_task(req.into_inner()).await;
        }
        let r = req.into_inner();
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument(
                "no command: swarmctl task exec TASK -- CMD [ARGS...]",
            ));
        }
        let (task_id, node) = {
            let s = self.m.store.read();
            let t = s.task(&r.task).map_err(lookup_status)?;
            if t.status.state != model::TaskState::Running {
                return Err(Status::failed_precondition(format!(
                    "task {} is not running (it is {:?})",
                    t.name(),
                    t.status.state
                )));
            }
            (t.id.clone(), t.node_id.clone())
        };
        let timeout = match r.timeout_ms {
            0 => std::time::Duration::from_secs(60),
            ms => std::time::Duration::from_millis(u64::from(ms)),
        };
        let out = self
            .m
            .dispatcher
            .exec(&node, &task_id, r.cmd, timeout)
            .await
            .map_err(Status::unavailable)?;
        Ok(Response::new(out))
    }

    async fn inspect_lb(&self, req: Request<pb::InspectLbRequest>) -> R<pb::LbReport> {
        // Agents hold their sessions with the leader: it relays.
        if let Some(mut leader) = self.leader_client()? {
            return leader.inspect_lb(req.into_inner()).await;
        }
        let r = req.into_inner();
        let (net, nodes) = {
            let s = self.m.store.read();
            let net = s
                .network(&r.network)
                .cloned()
                .ok_or_else(|| not_found("network", &r.network))?;
            if net.driver != model::NetworkDriver::Overlay {
                return Err(Status::failed_precondition(format!(
                    "network {} is not an overlay network: it has no service load balancers",
                    net.name
                )));
            }
            let nodes: Vec<model::Node> = match r.node.as_str() {
                "" => s
                    .nodes
                    .values()
                    .filter(|n| n.lb_addrs.contains_key(&net.id))
                    .cloned()
                    .collect(),
                want => vec![s
                    .node(want)
                    .cloned()
                    .ok_or_else(|| not_found("node", want))?],
            };
            (net, nodes)
        };
        let mut out = pb::LbReport {
            network_id: net.id.clone(),
            network: net.name.clone(),
            nodes: Vec::new(),
        };
        let asks = nodes
            .iter()
            .map(|n| self.m.dispatcher.lb_report(&n.id, &net.id));
        let answers = futures_util::future::join_all(asks).await;
        for (n, a) in nodes.iter().zip(answers) {
            let mut rep = a.unwrap_or_else(|e| pb::LbNodeReport {
                error: e,
                ..Default::default()
            });
            rep.node_id = n.id.clone();
            rep.hostname = n.hostname.clone();
            out.nodes.push(rep);
        }
        out.nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(Response::new(out))
    }
}
