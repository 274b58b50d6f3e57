//! The node's membership API (`NodeLifecycle` on the control socket): `swarm init|join|leave`
//! from `swarmctl` or the Engine API become [`Request`]s for the node's main loop, which alone
//! changes what the node is; `State` answers from what the loop last published.

use shoal_proto::pb;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request as GrpcRequest, Response, Status};

/// dockerd's words for a node in no swarm (leave, or a manager call).
pub const NO_SWARM: &str = "This node is not part of a swarm";
/// dockerd's words for init or join on a node already in a swarm.
pub const SWARM_EXISTS: &str = "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";
/// dockerd's words for leaving a locked swarm without `--force`.
pub const LEAVE_LOCKED: &str =
    "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.";

/// What the main loop is asked to do; each carries where its answer goes.
#[derive(Debug)]
pub enum Request {
    /// `swarm init`.
    Init(
        pb::SwarmInitRequest,
        oneshot::Sender<Result<pb::SwarmInitResponse, Status>>,
    ),
    /// `swarm join`.
    Join(
        pb::SwarmJoinRequest,
        oneshot::Sender<Result<pb::LocalNodeState, Status>>,
    ),
    /// `swarm leave [--force]`.
    Leave(bool, oneshot::Sender<Result<(), Status>>),
}

impl Request {
    /// Whether the caller stopped waiting for the answer (its call timed out or was dropped).
    pub fn abandoned(&self) -> bool {
        match self {
            Request::Init(_, tx) => tx.is_closed(),
            Request::Join(_, tx) => tx.is_closed(),
            Request::Leave(_, tx) => tx.is_closed(),
        }
    }

    /// Answers the request with `status` (it cannot be done in the node's present state).
    pub fn refuse(self, status: Status) {
        match self {
            Request::Init(_, tx) => drop(tx.send(Err(status))),
            Request::Join(_, tx) => drop(tx.send(Err(status))),
            Request::Leave(_, tx) => drop(tx.send(Err(status))),
        }
    }
}

/// The published state: `inactive`, `pending`, `active`, `locked` or `error`.
pub fn state(state: &str, node_id: &str, manager: bool, addr: &str) -> pb::LocalNodeState {
    pb::LocalNodeState {
        state: state.into(),
        node_id: node_id.into(),
        manager,
        error: String::new(),
        node_addr: addr.into(),
    }
}

/// The gRPC service: forwards to the main loop and waits for its answer.
#[derive(Debug, Clone)]
pub struct LifecycleService {
    tx: mpsc::Sender<Request>,
    state: watch::Receiver<pb::LocalNodeState>,
}

impl LifecycleService {
    /// The service, the receiver of its requests and the sender of the node's state.
    pub fn new() -> (
        LifecycleService,
        mpsc::Receiver<Request>,
        watch::Sender<pb::LocalNodeState>,
    ) {
        let (tx, rx) = mpsc::channel(4);
        let (st_tx, st_rx) = watch::channel(state("inactive", "", false, ""));
        (LifecycleService { tx, state: st_rx }, rx, st_tx)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Status>>) -> Request,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| Status::unavailable("swarmd is stopping"))?;
        rx.await
            .map_err(|_| Status::unavailable("swarmd is stopping"))?
    }
}

#[tonic::async_trait]
impl pb::node_lifecycle_server::NodeLifecycle for LifecycleService {
    async fn init(
        &self,
        req: GrpcRequest<pb::SwarmInitRequest>,
    ) -> Result<Response<pb::SwarmInitResponse>, Status> {
        let r = req.into_inner();
        self.ask(|tx| Request::Init(r, tx)).await.map(Response::new)
    }

    async fn join(
        &self,
        req: GrpcRequest<pb::SwarmJoinRequest>,
    ) -> Result<Response<pb::LocalNodeState>, Status> {
        let r = req.into_inner();
        self.ask(|tx| Request::Join(r, tx)).await.map(Response::new)
    }

    async fn leave(
        &self,
        req: GrpcRequest<pb::SwarmLeaveRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let force = req.into_inner().force;
        self.ask(|tx| Request::Leave(force, tx))
            .await
            .map(|()| Response::new(pb::Empty {}))
    }

    async fn state(
        &self,
        _: GrpcRequest<pb::Empty>,
    ) -> Result<Response<pb::LocalNodeState>, Status> {
        Ok(Response::new(self.state.borrow().clone()))
    }
}
