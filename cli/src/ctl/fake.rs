//! A scripted in-process Control server for tests: it keeps objects in memory and moves every
//! live task one state forward each time tasks are listed, so progress can be followed without a
//! cluster. A service with the constraint `node.role==nowhere` never gets placed. The first node
//! plays the manager swarmctl talks to: the node filter `self` means it.

use shoal_proto::model::TaskState;
use shoal_proto::pb::{self, control_server};
use std::sync::{Arc, Mutex, MutexGuard};
use tonic::{Request, Response, Status};

/// What the fake holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub nodes: Vec<pb::Node>,
    pub services: Vec<pb::Service>,
    pub tasks: Vec<pb::Task>,
    pub networks: Vec<pb::Network>,
    /// Reads of services fail as during a leader election.
    pub no_leader: bool,
    /// Every `ListTasks` filter received, in order.
    pub task_filters: Vec<pb::TaskFilter>,
    /// What `ResolveImage` answers: image as typed → digest. Others are not found; an image
    /// with a space is an invalid reference.
    pub registry: std::collections::HashMap<String, String>,
    /// Each node's image store, by hostname (see `fake_images`).
    pub images: std::collections::HashMap<String, Vec<pb::ImageSummary>>,
    /// How many chunks the last `LoadImage` stream had.
    pub load_chunks: usize,
    /// What the next `StreamLogs` calls answer, one script per call, in order (when none is
    /// left: the tasks' `hello from SLOT` lines, as `ServiceLogs`).
    pub log_scripts: std::collections::VecDeque<Vec<Result<pb::LogsResponse, Status>>>,
    /// Every `StreamLogs` request received, in order.
    pub log_requests: Vec<pb::LogsRequest>,
    /// Secrets, with their data (never answered).
    pub secrets: Vec<(pb::SecretInfo, Vec<u8>)>,
    /// Configs.
    pub configs: Vec<pb::ConfigInfo>,
    /// The unlock key while autolock is on (`SWMKEY-1-fake<n>`).
    pub unlock_key: Option<String>,
    /// Answers as a locked manager: only `Unlock` (with the key) works.
    pub locked: bool,
    next: u64,
}

/// The fake server (cheap to clone; clones share state).
#[derive(Debug, Clone, Default)]
pub(crate) struct Fake(pub Arc<Mutex<State>>);

type R<T> = Result<Response<T>, Status>;

const UNPLACEABLE: &str = "node.role==nowhere";
/// What a locked manager answers.
const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"swarmctl swarm unlock\" to unlock it.";

impl Fake {
    /// A fake with two ready nodes: `manager1` (leader) and `worker1`.
    pub fn with_nodes() -> Fake {
        let f = Fake::default();
        {
            let mut s = f.lock();
            s.nodes.push(pb::Node {
                id: "m".repeat(25),
                hostname: "manager1".into(),
                role: pb::NodeRole::Manager as i32,
                state: pb::NodeState::Ready as i32,
                manager_status: "Leader".into(),
                ..Default::default()
            });
            s.nodes.push(pb::Node {
                id: "w".repeat(25),
                hostname: "worker1".into(),
                state: pb::NodeState::Ready as i32,
                ..Default::default()
            });
        }
        f
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn into_server(self) -> control_server::ControlServer<Fake> {
        control_server::ControlServer::new(self)
    }

    /// Serves on 127.0.0.1:<any>; returns `tcp://addr`.
    pub async fn serve_tcp(self) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(self.into_server())
                .serve_with_incoming(incoming),
        );
        format!("tcp://{addr}")
    }

    /// Serves on a unix socket at `path`; returns `unix://path`.
    pub async fn serve_unix(self, path: &std::path::Path) -> String {
        let l = tokio::net::UnixListener::bind(path).expect("bind unix");
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(self.into_server())
                .serve_with_incoming(incoming),
        );
        format!("unix://{}", path.display())
    }
}

impl State {
    fn id(&mut self, prefix: char) -> String {
        self.next += 1;
        format!("{prefix}{:024}", self.next)
    }

    fn service_idx(&self, key: &str) -> Result<usize, Status> {
        self.services
            .iter()
            .position(|s| {
                s.id == key
                    || s.spec.as_ref().is_some_and(|sp| sp.name == key)
                    || (key.len() >= 3 && s.id.starts_with(key))
            })
            .ok_or_else(|| Status::not_found(format!("service {key} not found")))
    }

    pub(crate) fn node_idx(&self, key: &str) -> Result<usize, Status> {
        self.nodes
            .iter()
            .position(|n| {
                n.id == key || n.hostname == key || (key.len() >= 3 && n.id.starts_with(key))
            })
            .ok_or_else(|| Status::not_found(format!("node {key} not found")))
    }

    fn add_task(&mut self, svc: &pb::Service, slot: u64) {
        let id = self.id('t');
        let spec = svc.spec.clone().unwrap_or_default();
        self.tasks.push(pb::Task {
            name: format!("{}.{slot}.{id}", spec.name),
            id,
            service_id: svc.id.clone(),
            service_name: spec.name.clone(),
            slot,
            spec: Some(spec),
            spec_version: svc.spec_version,
            desired_state: TaskState::Running as i32,
            status: Some(pb::TaskStatus {
                state: TaskState::New as i32,
                message: "created".into(),
                timestamp_ms: shoal_proto::model::now_ms(),
                ..Default::default()
            }),
            created_ms: self.next as i64,
            ..Default::default()
        });
    }

    /// Keeps one live task per slot 1..=replicas; stops the others.
    fn reconcile(&mut self, idx: usize) {
        let svc = self.services[idx].clone();
        let replicas = svc.spec.as_ref().map(|s| s.replicas).unwrap_or(0);
        for t in self.tasks.iter_mut().filter(|t| t.service_id == svc.id) {
            if t.slot > replicas || t.spec_version < svc.spec_version {
                t.desired_state = TaskState::Shutdown as i32;
            }
        }
        for slot in 1..=replicas {
            let live = self.tasks.iter().any(|t| {
                t.service_id == svc.id
                    && t.slot == slot
                    && t.desired_state == TaskState::Running as i32
            });
            if !live {
                self.add_task(&svc, slot);
            }
        }
    }

    /// Moves every task one step: live ones toward RUNNING, stopped ones to SHUTDOWN.
    fn advance(&mut self) {
        let steps = [
            TaskState::New,
            TaskState::Pending,
            TaskState::Assigned,
            TaskState::Preparing,
            TaskState::Starting,
            TaskState::Running,
        ];
        let worker = self.nodes.last().map(|n| n.id.clone()).unwrap_or_default();
        for t in &mut self.tasks {
            let st = t.status.get_or_insert_with(Default::default);
            if t.desired_state > TaskState::Running as i32 {
                st.state = TaskState::Shutdown as i32;
                continue;
            }
            let stuck = t
                .spec
                .as_ref()
                .is_some_and(|s| s.constraints.iter().any(|c| c == UNPLACEABLE));
            if stuck && st.state >= TaskState::Pending as i32 {
                st.message =
                    "no suitable node (2 nodes do not satisfy constraint node.role==nowhere)"
                        .into();
                continue;
            }
            if let Some(i) = steps.iter().position(|s| *s as i32 == st.state) {
                if let Some(next) = steps.get(i + 1) {
                    st.state = *next as i32;
                    if *next == TaskState::Assigned {
                        t.node_id = worker.clone();
                    }
                }
            }
        }
    }

    fn counted(&self, s: &pb::Service) -> pb::Service {
        let live =
            |t: &&pb::Task| t.service_id == s.id && t.desired_state <= TaskState::Running as i32;
        let running = self
            .tasks
            .iter()
            .filter(live)
            .filter(|t| {
                t.status
                    .as_ref()
                    .is_some_and(|st| st.state == TaskState::Running as i32)
            })
            .count();
        pb::Service {
            running: running as u64,
            desired: s.spec.as_ref().map(|s| s.replicas).unwrap_or(0),
            ..s.clone()
        }
    }
}

#[tonic::async_trait]
impl control_server::Control for Fake {
    async fn get_cluster(&self, _: Request<pb::Empty>) -> R<pb::Cluster> {
        let s = self.lock();
        if s.locked {
            return Err(Status::failed_precondition(LOCKED));
        }
        Ok(Response::new(pb::Cluster {
            id: "fakecluster".into(),
            raft_leader: "manager1".into(),
            managers: 1,
            workers: 1,
            autolock: s.unlock_key.is_some(),
            ..Default::default()
        }))
    }
    async fn get_unlock_key(&self, req: Request<pb::UnlockKeyRequest>) -> R<pb::UnlockKeyResponse> {
        let mut s = self.lock();
        if s.unlock_key.is_none() {
            return Err(Status::failed_precondition("no unlock key is set"));
        }
        if req.get_ref().rotate {
            s.next += 1;
            s.unlock_key = Some(format!("SWMKEY-1-fake{}", s.next));
        }
        Ok(Response::new(pb::UnlockKeyResponse {
            key: s.unlock_key.clone().unwrap_or_default(),
        }))
    }
    async fn unlock(&self, req: Request<pb::UnlockRequest>) -> R<pb::Empty> {
        let mut s = self.lock();
        if !s.locked {
            return Err(Status::failed_precondition("swarm is not locked"));
        }
        if s.unlock_key.as_deref() != Some(req.get_ref().key.as_str()) {
            return Err(Status::invalid_argument("invalid unlock key"));
        }
        s.locked = false;
        Ok(Response::new(pb::Empty {}))
    }
    async fn inspect_lb(&self, req: Request<pb::InspectLbRequest>) -> R<pb::LbReport> {
        let r = req.into_inner();
        Ok(Response::new(pb::LbReport {
            network_id: "n1".into(),
            network: r.network,
            nodes: vec![pb::LbNodeReport {
                hostname: "manager1".into(),
                namespace: "lb_n1".into(),
                kind: "nftables".into(),
                lb_addr: "10.0.1.4/24".into(),
                services: vec![pb::LbServiceReport {
                    fwmark: 258,
                    scheduler: "rr".into(),
                    name: "web".into(),
                    vip: "10.0.1.2/24".into(),
                    ports: vec![],
                    backends: vec![pb::LbBackendReport {
                        name: "web.1.t1".into(),
                        addr: "10.0.1.3".into(),
                        forward: "Masq".into(),
                        weight: 1,
                        active: None,
                        inactive: None,
                        connections: 7,
                    }],
                }],
                ..Default::default()
            }],
        }))
    }
    async fn update_cluster(&self, req: Request<pb::UpdateClusterRequest>) -> R<pb::Cluster> {
        let mut s = self.lock();
        match req.get_ref().autolock {
            Some(true) if s.unlock_key.is_none() => {
                s.next += 1;
                s.unlock_key = Some(format!("SWMKEY-1-fake{}", s.next));
            }
            Some(false) => s.unlock_key = None,
            _ => {}
        }
        Ok(Response::new(pb::Cluster {
            id: "c1".into(),
            cert_expiry_ms: req.get_ref().cert_expiry_ms,
            autolock: s.unlock_key.is_some(),
            ..Default::default()
        }))
    }
    async fn rotate_ca(&self, _: Request<pb::Empty>) -> R<pb::Cluster> {
        Ok(Response::new(pb::Cluster {
            id: "c1".into(),
            ca_digest: "d2".into(),
            ca_rotating: true,
            ca_rotation_pending: 5,
            ..Default::default()
        }))
    }
    async fn get_join_token(&self, req: Request<pb::JoinTokenRequest>) -> R<pb::JoinTokenResponse> {
        let kind = if req.get_ref().role == pb::NodeRole::Manager as i32 {
            "mgr"
        } else {
            "wkr"
        };
        Ok(Response::new(pb::JoinTokenResponse {
            token: format!("SWMTKN-1-digest-{kind}"),
            manager_addr: "10.0.0.1:2377".into(),
        }))
    }
    async fn list_nodes(&self, _: Request<pb::Empty>) -> R<pb::NodeList> {
        Ok(Response::new(pb::NodeList {
            nodes: self.lock().nodes.clone(),
        }))
    }
    async fn get_node(&self, req: Request<pb::IdRequest>) -> R<pb::Node> {
        let s = self.lock();
        Ok(Response::new(
            s.nodes[s.node_idx(&req.get_ref().id)?].clone(),
        ))
    }
    async fn update_node(&self, req: Request<pb::UpdateNodeRequest>) -> R<pb::Node> {
        let r = req.into_inner();
        let mut s = self.lock();
        let i = s.node_idx(&r.id)?;
        let n = &mut s.nodes[i];
        if r.set_availability {
            n.availability = r.availability;
        }
        if r.set_role {
            n.role = r.role;
        }
        n.labels.extend(r.add_labels);
        for k in r.rm_labels {
            n.labels.remove(&k);
        }
        Ok(Response::new(n.clone()))
    }
    async fn remove_node(&self, req: Request<pb::RemoveNodeRequest>) -> R<pb::Empty> {
        let mut s = self.lock();
        let i = s.node_idx(&req.get_ref().id)?;
        s.nodes.remove(i);
        Ok(Response::new(pb::Empty {}))
    }
    async fn resolve_image(
        &self,
        req: Request<pb::ResolveImageRequest>,
    ) -> R<pb::ResolveImageResponse> {
        let image = req.into_inner().image;
        if image.contains(' ') {
            return Err(Status::invalid_argument("invalid reference format"));
        }
        match self.lock().registry.get(&image) {
            Some(d) => Ok(Response::new(pb::ResolveImageResponse {
                digest: d.clone(),
                canonical: image,
            })),
            None => Err(Status::not_found(format!(
                "manifest for {image} not found: manifest unknown"
            ))),
        }
    }

    async fn create_service(&self, req: Request<pb::CreateServiceRequest>) -> R<pb::Service> {
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        let mut s = self.lock();
        if s.services
            .iter()
            .any(|o| o.spec.as_ref().is_some_and(|o| o.name == spec.name))
        {
            return Err(Status::already_exists(format!(
                "service with name {:?} already exists",
                spec.name
            )));
        }
        let ports = spec
            .ports
            .iter()
            .map(|p| pb::PortConfig {
                published: if p.published == 0 { 30000 } else { p.published },
                ..*p
            })
            .collect();
        let svc = pb::Service {
            id: s.id('s'),
            spec: Some(spec),
            spec_version: 1,
            ports,
            version: 1,
            ..Default::default()
        };
        s.services.push(svc);
        let i = s.services.len() - 1;
        s.reconcile(i);
        Ok(Response::new(s.counted(&s.services[i])))
    }
    async fn update_service(&self, req: Request<pb::UpdateServiceRequest>) -> R<pb::Service> {
        let r = req.into_inner();
        let mut s = self.lock();
        let i = s.service_idx(&r.id)?;
        let svc = &mut s.services[i];
        if r.version != svc.version {
            return Err(Status::aborted(format!(
                "update out of sequence: service {} was changed since it was read; read it again and retry",
                svc.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")
            )));
        }
        svc.version += 1;
        let spec = if r.rollback {
            svc.previous_spec.take().ok_or_else(|| {
                Status::failed_precondition("service does not have a previous spec")
            })?
        } else {
            r.spec.unwrap_or_default()
        };
        if svc.spec.as_ref() != Some(&spec) {
            svc.previous_spec = svc.spec.replace(spec);
            svc.spec_version += 1;
        }
        s.reconcile(i);
        Ok(Response::new(s.counted(&s.services[i])))
    }
    async fn scale_service(&self, req: Request<pb::ScaleRequest>) -> R<pb::Service> {
        let r = req.into_inner();
        let mut s = self.lock();
        let i = s.service_idx(&r.id)?;
        if let Some(spec) = s.services[i].spec.as_mut() {
            spec.replicas = r.replicas;
        }
        s.reconcile(i);
        Ok(Response::new(s.counted(&s.services[i])))
    }
    async fn get_service(&self, req: Request<pb::IdRequest>) -> R<pb::Service> {
        let s = self.lock();
        if s.no_leader {
            return Err(Status::unavailable(
                "no raft leader right now; retry shortly",
            ));
        }
        let i = s.service_idx(&req.get_ref().id)?;
        Ok(Response::new(s.counted(&s.services[i])))
    }
    async fn list_services(&self, _: Request<pb::Empty>) -> R<pb::ServiceList> {
        let s = self.lock();
        Ok(Response::new(pb::ServiceList {
            services: s.services.iter().map(|x| s.counted(x)).collect(),
        }))
    }
    async fn remove_service(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        let mut s = self.lock();
        let i = s.service_idx(&req.get_ref().id)?;
        let svc = s.services.remove(i);
        s.tasks.retain(|t| t.service_id != svc.id);
        Ok(Response::new(pb::Empty {}))
    }
    async fn list_tasks(&self, req: Request<pb::TaskFilter>) -> R<pb::TaskList> {
        let f = req.into_inner();
        let mut s = self.lock();
        s.task_filters.push(f.clone());
        let service = if f.service.is_empty() {
            None
        } else {
            Some(s.services[s.service_idx(&f.service)?].id.clone())
        };
        let node = if f.node.is_empty() {
            None
        } else if f.node == "self" {
            Some(s.nodes.first().map(|n| n.id.clone()).unwrap_or_default())
        } else {
            Some(s.nodes[s.node_idx(&f.node)?].id.clone())
        };
        s.advance();
        let tasks = s
            .tasks
            .iter()
            .filter(|t| service.as_ref().is_none_or(|id| t.service_id == *id))
            .filter(|t| node.as_ref().is_none_or(|id| t.node_id == *id))
            .filter(|t| f.all || t.desired_state <= TaskState::Running as i32)
            .cloned()
            .collect();
        Ok(Response::new(pb::TaskList { tasks }))
    }
    async fn get_task(&self, req: Request<pb::IdRequest>) -> R<pb::Task> {
        let id = &req.get_ref().id;
        let s = self.lock();
        let t = s
            .tasks
            .iter()
            .find(|t| t.id.starts_with(id.as_str()) || t.name == *id);
        Ok(Response::new(t.cloned().ok_or_else(|| {
            Status::not_found(format!("task {id} not found"))
        })?))
    }
    async fn create_network(&self, req: Request<pb::CreateNetworkRequest>) -> R<pb::Network> {
        let r = req.into_inner();
        let mut s = self.lock();
        if s.networks.iter().any(|n| n.name == r.name) {
            return Err(Status::invalid_argument(format!(
                "network with name {:?} already exists",
                r.name
            )));
        }
        let n = pb::Network {
            id: s.id('n'),
            name: r.name,
            driver: r.driver,
            subnet: r.subnet,
            attachable: r.attachable,
            labels: r.labels,
            ..Default::default()
        };
        s.networks.push(n.clone());
        Ok(Response::new(n))
    }
    async fn list_networks(&self, _: Request<pb::Empty>) -> R<pb::NetworkList> {
        Ok(Response::new(pb::NetworkList {
            networks: self.lock().networks.clone(),
        }))
    }
    async fn get_network(&self, req: Request<pb::IdRequest>) -> R<pb::Network> {
        let id = &req.get_ref().id;
        let s = self.lock();
        let n = s.networks.iter().find(|n| n.id == *id || n.name == *id);
        Ok(Response::new(n.cloned().ok_or_else(|| {
            Status::not_found(format!("network {id} not found"))
        })?))
    }
    async fn remove_network(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        let id = &req.get_ref().id;
        let mut s = self.lock();
        let before = s.networks.len();
        s.networks.retain(|n| n.id != *id && n.name != *id);
        if s.networks.len() == before {
            return Err(Status::not_found(format!("network {id} not found")));
        }
        Ok(Response::new(pb::Empty {}))
    }
    /// Echoes the command back: `exit N` ends with code N, anything else prints its words.
    async fn exec_task(&self, req: Request<pb::ExecTaskRequest>) -> R<pb::ExecResult> {
        let r = req.into_inner();
        let words = r.cmd.join(" ");
        let exit_code = words
            .strip_prefix("exit ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Response::new(pb::ExecResult {
            stdout: format!("{}: {words}\n", r.task).into_bytes(),
            exit_code,
            ..Default::default()
        }))
    }

    type ExecStreamStream = tokio_stream::wrappers::ReceiverStream<Result<pb::ExecOutput, Status>>;

    /// A scripted remote shell: says how it was started, echoes stdin, reports each window
    /// size (`size RxC`), ends with N at a line `exit N` and with 0 at the end of stdin.
    async fn exec_stream(
        &self,
        req: Request<tonic::Streaming<pb::ExecInput>>,
    ) -> R<Self::ExecStreamStream> {
        let mut inputs = req.into_inner();
        let start = inputs
            .message()
            .await?
            .and_then(|m| m.start)
            .ok_or_else(|| Status::invalid_argument("no start"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let say = |s: String| {
            Ok(pb::ExecOutput {
                stdout: s.into_bytes(),
                ..Default::default()
            })
        };
        let exit = |code| {
            Ok(pb::ExecOutput {
                exited: true,
                exit_code: code,
                ..Default::default()
            })
        };
        let size = start.size.map(|s| format!("{}x{}", s.rows, s.cols));
        let hello = format!(
            "start {} {} tty={} stdin={} size={}\n",
            start.task,
            start.cmd.join(" "),
            start.tty,
            start.stdin,
            size.unwrap_or_default()
        );
        tokio::spawn(async move {
            let _ = tx.send(say(hello)).await;
            let mut typed = String::new();
            while let Ok(Some(i)) = inputs.message().await {
                if let Some(s) = i.resize {
                    let _ = tx.send(say(format!("size {}x{}\n", s.rows, s.cols))).await;
                }
                if !i.stdin.is_empty() {
                    typed.push_str(&String::from_utf8_lossy(&i.stdin));
                    let _ = tx.send(say(String::from_utf8_lossy(&i.stdin).into())).await;
                    let code = typed
                        .lines()
                        .find_map(|l| l.strip_prefix("exit ")?.trim().parse().ok());
                    if let Some(code) = code {
                        let _ = tx.send(exit(code)).await;
                        return;
                    }
                }
                if i.close_stdin {
                    let _ = tx.send(exit(0)).await;
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn list_images(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        super::fake_images::list(self, req).await
    }

    async fn pull_image(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        super::fake_images::pull(self, req).await
    }

    async fn remove_image(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        super::fake_images::remove(self, req).await
    }

    async fn prune_images(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        super::fake_images::prune(self, req).await
    }

    async fn load_image(
        &self,
        req: Request<tonic::Streaming<pb::ImageLoadChunk>>,
    ) -> R<pb::ImageReport> {
        super::fake_images::load(self, req).await
    }

    type StreamLogsStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::LogsResponse, Status>>;

    async fn stream_logs(&self, req: Request<pb::LogsRequest>) -> R<Self::StreamLogsStream> {
        let r = req.into_inner();
        let script = {
            let mut s = self.lock();
            s.log_requests.push(r.clone());
            s.log_scripts.pop_front()
        };
        let items = match script {
            // A script that is one error: the call itself is refused.
            Some(mut items) if items.len() == 1 && items[0].is_err() => {
                return Err(items.remove(0).unwrap_err());
            }
            Some(items) => items,
            None => {
                let all = self.service_logs(Request::new(r)).await?.into_inner();
                vec![Ok(all)]
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(items.len().max(1));
        for i in items {
            let _ = tx.try_send(i);
        }
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn service_logs(&self, req: Request<pb::LogsRequest>) -> R<pb::LogsResponse> {
        let r = req.into_inner();
        let s = self.lock();
        let tasks: Vec<&pb::Task> = if r.task.is_empty() {
            let id = &s.services[s.service_idx(&r.service)?].id;
            s.tasks.iter().filter(|t| t.service_id == *id).collect()
        } else {
            let t = s
                .tasks
                .iter()
                .find(|t| t.id.starts_with(&r.task) || t.name == r.task);
            vec![t.ok_or_else(|| Status::not_found(format!("task {} not found", r.task)))?]
        };
        let lines = tasks
            .iter()
            .map(|t| pb::LogLine {
                task_id: t.id.clone(),
                task_name: t.name.clone(),
                node_id: t.node_id.clone(),
                stream: "stdout".into(),
                data: format!("hello from {}\n", t.slot).into_bytes(),
                timestamp_ms: 1_700_000_000_000 + t.slot as i64,
                end: 0,
            })
            .collect();
        Ok(Response::new(pb::LogsResponse {
            lines,
            errors: vec!["node gone is not connected; logs of its tasks are unavailable".into()],
            cursors: Vec::new(),
        }))
    }
    async fn create_secret(&self, req: Request<pb::CreateDataRequest>) -> R<pb::SecretInfo> {
        let r = req.into_inner();
        let mut s = self.lock();
        if s.secrets.iter().any(|(x, _)| x.name == r.name) {
            return Err(Status::already_exists(format!(
                "secret with name {:?} already exists",
                r.name
            )));
        }
        s.next += 1;
        let info = pb::SecretInfo {
            id: format!("sec{:022}", s.next),
            name: r.name,
            labels: r.labels,
            digest: "sha256:fake".into(),
            size: r.data.len() as u64,
            version: s.next,
            ..Default::default()
        };
        s.secrets.push((info.clone(), r.data));
        Ok(Response::new(info))
    }
    async fn list_secrets(&self, _: Request<pb::Empty>) -> R<pb::SecretList> {
        Ok(Response::new(pb::SecretList {
            secrets: self.lock().secrets.iter().map(|(i, _)| i.clone()).collect(),
        }))
    }
    async fn get_secret(&self, req: Request<pb::IdRequest>) -> R<pb::SecretInfo> {
        let q = req.into_inner().id;
        let s = self.lock();
        s.secrets
            .iter()
            .find(|(i, _)| i.name == q || i.id.starts_with(&q))
            .map(|(i, _)| Response::new(i.clone()))
            .ok_or_else(|| Status::not_found(format!("secret {q} not found")))
    }
    async fn remove_secret(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        let q = req.into_inner().id;
        let mut s = self.lock();
        let before = s.secrets.len();
        s.secrets
            .retain(|(i, _)| i.name != q && !i.id.starts_with(&q));
        if s.secrets.len() == before {
            return Err(Status::not_found(format!("secret {q} not found")));
        }
        Ok(Response::new(pb::Empty {}))
    }
    async fn create_config(&self, req: Request<pb::CreateDataRequest>) -> R<pb::ConfigInfo> {
        let r = req.into_inner();
        let mut s = self.lock();
        s.next += 1;
        let info = pb::ConfigInfo {
            id: format!("cfg{:022}", s.next),
            name: r.name,
            labels: r.labels,
            size: r.data.len() as u64,
            data: r.data,
            version: s.next,
            ..Default::default()
        };
        s.configs.push(info.clone());
        Ok(Response::new(info))
    }
    async fn list_configs(&self, _: Request<pb::Empty>) -> R<pb::ConfigList> {
        Ok(Response::new(pb::ConfigList {
            configs: self.lock().configs.clone(),
        }))
    }
    async fn get_config(&self, req: Request<pb::IdRequest>) -> R<pb::ConfigInfo> {
        let q = req.into_inner().id;
        let s = self.lock();
        s.configs
            .iter()
            .find(|i| i.name == q || i.id.starts_with(&q))
            .map(|i| Response::new(i.clone()))
            .ok_or_else(|| Status::not_found(format!("config {q} not found")))
    }
    async fn remove_config(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        let q = req.into_inner().id;
        let mut s = self.lock();
        s.configs.retain(|i| i.name != q && !i.id.starts_with(&q));
        Ok(Response::new(pb::Empty {}))
    }
    async fn update_secret(&self, _: Request<pb::UpdateDataRequest>) -> R<pb::SecretInfo> {
        Err(Status::unimplemented("the fake does not update secrets"))
    }
    async fn update_config(&self, _: Request<pb::UpdateDataRequest>) -> R<pb::ConfigInfo> {
        Err(Status::unimplemented("the fake does not update configs"))
    }
    type WatchStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;
    async fn watch(&self, _: Request<pb::WatchRequest>) -> R<Self::WatchStream> {
        Err(Status::unimplemented("the fake has no events"))
    }
}
