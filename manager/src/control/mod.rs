//! The Control API served to `swarmctl`, one module per family as `swarmctl`'s own commands
//! (`cli/src/ctl/`): `cluster`, `node`, `service`, `task`, `network`, `data` (secrets and
//! configs), and `relay`
//! for the calls the leader relays to agents (exec, balancer inspection), `logs` for
//! `service logs [-f]`, `image_ops` for the nodes' image stores.
//!
//! Reads are answered from this manager's store; writes go through raft (forwarded to the
//! leader by [`Manager::write`]); calls only the leader answers well are forwarded once
//! through [`Manager::route`]. A call carrying [`consistent::CONSISTENT`] passes a read
//! barrier first ([`consistent`]: linearizable reads). Errors become gRPC statuses in one place,
//! `From<ManagerError> for Status`.

mod cluster;
pub mod consistent;
mod data;
mod error;
mod exec_stream;
mod image;
mod image_ops;
pub mod locked;
mod logs;
mod network;
mod node;
mod relay;
mod service;
mod task;
mod validate;

pub use data::{config_target, digest, secret_target, SECRETS_DIR};
pub use error::ControlError;
pub use validate::{network_name, service_spec, RESERVED_NETWORKS};

use crate::manager::{Manager, ManagerError};
use crate::store::Applied;
use shoal_proto::model::Command;
use shoal_proto::pb::{self, control_server};
use std::sync::Arc;
use tonic::{Request, Response, Status};

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

    /// The Control API as served (over TCP and on the control socket): manager `m`'s tonic
    /// server behind the read barrier of [`consistent::Consistent`].
    pub fn served(m: Arc<Manager>) -> consistent::Consistent<control_server::ControlServer<Self>> {
        consistent::Consistent::new(ControlService::new(m.clone()).into_server(), m)
    }

    async fn write(&self, cmd: Command) -> Result<Applied, ManagerError> {
        self.m.write(cmd).await
    }
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl control_server::Control for ControlService {
    async fn get_cluster(&self, req: Request<pb::Empty>) -> R<pb::Cluster> {
        cluster::get(self, req).await
    }

    async fn update_cluster(&self, req: Request<pb::UpdateClusterRequest>) -> R<pb::Cluster> {
        cluster::update(self, req).await
    }

    async fn rotate_ca(&self, req: Request<pb::Empty>) -> R<pb::Cluster> {
        cluster::rotate_ca(self, req).await
    }

    async fn get_join_token(&self, req: Request<pb::JoinTokenRequest>) -> R<pb::JoinTokenResponse> {
        cluster::join_token(self, req).await
    }

    async fn get_unlock_key(&self, req: Request<pb::UnlockKeyRequest>) -> R<pb::UnlockKeyResponse> {
        cluster::unlock_key(self, req).await
    }

    /// This manager is running, so it is not locked (a locked one serves `locked`).
    async fn unlock(&self, _: Request<pb::UnlockRequest>) -> R<pb::Empty> {
        Err(ManagerError::from(ControlError::NotLocked).into())
    }

    async fn list_nodes(&self, req: Request<pb::Empty>) -> R<pb::NodeList> {
        node::list(self, req).await
    }

    async fn get_node(&self, req: Request<pb::IdRequest>) -> R<pb::Node> {
        node::get(self, req).await
    }

    async fn update_node(&self, req: Request<pb::UpdateNodeRequest>) -> R<pb::Node> {
        node::update(self, req).await
    }

    async fn remove_node(&self, req: Request<pb::RemoveNodeRequest>) -> R<pb::Empty> {
        node::remove(self, req).await
    }

    async fn resolve_image(
        &self,
        req: Request<pb::ResolveImageRequest>,
    ) -> R<pb::ResolveImageResponse> {
        image::resolve(self, req).await
    }

    async fn create_service(&self, req: Request<pb::CreateServiceRequest>) -> R<pb::Service> {
        service::create(self, req).await
    }

    async fn update_service(&self, req: Request<pb::UpdateServiceRequest>) -> R<pb::Service> {
        service::update(self, req).await
    }

    async fn scale_service(&self, req: Request<pb::ScaleRequest>) -> R<pb::Service> {
        service::scale(self, req).await
    }

    async fn get_service(&self, req: Request<pb::IdRequest>) -> R<pb::Service> {
        service::get(self, req).await
    }

    async fn list_services(&self, req: Request<pb::Empty>) -> R<pb::ServiceList> {
        service::list(self, req).await
    }

    async fn remove_service(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        service::remove(self, req).await
    }

    async fn list_tasks(&self, req: Request<pb::TaskFilter>) -> R<pb::TaskList> {
        task::list(self, req).await
    }

    async fn get_task(&self, req: Request<pb::IdRequest>) -> R<pb::Task> {
        task::get(self, req).await
    }

    async fn create_network(&self, req: Request<pb::CreateNetworkRequest>) -> R<pb::Network> {
        network::create(self, req).await
    }

    async fn list_networks(&self, req: Request<pb::Empty>) -> R<pb::NetworkList> {
        network::list(self, req).await
    }

    async fn get_network(&self, req: Request<pb::IdRequest>) -> R<pb::Network> {
        network::get(self, req).await
    }

    async fn remove_network(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        network::remove(self, req).await
    }

    async fn create_secret(&self, req: Request<pb::CreateDataRequest>) -> R<pb::SecretInfo> {
        data::create_secret(self, req).await
    }

    async fn list_secrets(&self, req: Request<pb::Empty>) -> R<pb::SecretList> {
        data::list_secrets(self, req).await
    }

    async fn get_secret(&self, req: Request<pb::IdRequest>) -> R<pb::SecretInfo> {
        data::get_secret(self, req).await
    }

    async fn remove_secret(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        data::remove_secret(self, req).await
    }

    async fn create_config(&self, req: Request<pb::CreateDataRequest>) -> R<pb::ConfigInfo> {
        data::create_config(self, req).await
    }

    async fn list_configs(&self, req: Request<pb::Empty>) -> R<pb::ConfigList> {
        data::list_configs(self, req).await
    }

    async fn get_config(&self, req: Request<pb::IdRequest>) -> R<pb::ConfigInfo> {
        data::get_config(self, req).await
    }

    async fn remove_config(&self, req: Request<pb::IdRequest>) -> R<pb::Empty> {
        data::remove_config(self, req).await
    }

    async fn update_secret(&self, req: Request<pb::UpdateDataRequest>) -> R<pb::SecretInfo> {
        data::update_secret(self, req).await
    }

    async fn update_config(&self, req: Request<pb::UpdateDataRequest>) -> R<pb::ConfigInfo> {
        data::update_config(self, req).await
    }

    type WatchStream = crate::events::WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> R<Self::WatchStream> {
        let r = req.get_ref();
        Ok(Response::new(crate::events::watch(
            &self.m.events,
            r.since_ms,
            r.until_ms,
        )))
    }

    async fn service_logs(&self, req: Request<pb::LogsRequest>) -> R<pb::LogsResponse> {
        logs::unary(self, req).await
    }

    type StreamLogsStream = logs::LogStream;

    async fn stream_logs(&self, req: Request<pb::LogsRequest>) -> R<Self::StreamLogsStream> {
        logs::stream(self, req).await
    }

    async fn exec_task(&self, req: Request<pb::ExecTaskRequest>) -> R<pb::ExecResult> {
        relay::exec(self, req).await
    }

    type ExecStreamStream = exec_stream::OutputStream;

    async fn exec_stream(
        &self,
        req: Request<tonic::Streaming<pb::ExecInput>>,
    ) -> R<Self::ExecStreamStream> {
        exec_stream::run(self, req).await
    }

    async fn inspect_lb(&self, req: Request<pb::InspectLbRequest>) -> R<pb::LbReport> {
        relay::inspect_lb(self, req).await
    }

    async fn list_images(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        image_ops::list(self, req).await
    }

    async fn pull_image(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        image_ops::pull(self, req).await
    }

    async fn remove_image(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        image_ops::remove(self, req).await
    }

    async fn prune_images(&self, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
        image_ops::prune(self, req).await
    }

    async fn load_image(
        &self,
        req: Request<tonic::Streaming<pb::ImageLoadChunk>>,
    ) -> R<pb::ImageReport> {
        image_ops::load(self, req).await
    }
}
