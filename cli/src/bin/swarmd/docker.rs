//! `--docker-host`: the Docker Engine API socket (`shoal_cli::docker`), started once the node
//! has its identity, served until the node stops.

use crate::identity::Identity;
use crate::node::Node;
use shoal_agent::Agent;
use shoal_cli::docker::containers::LocalTasks;
use shoal_cli::docker::{server, Api, LocalNode};
use shoal_proto::pb;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Binds and serves the socket when `--docker-host` was given; the task ends (and the socket
/// is removed) once `stop` turns true.
pub async fn start(
    node: &Node,
    ident: &Identity,
    managers: &[String],
    agent: Arc<Agent>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(path) = node.docker_host.clone() else {
        return Ok(None);
    };
    let listener = server::bind(&path).await?;
    let mut api = Api::new(LocalNode {
        node_id: ident.node_id.clone(),
        hostname: node.hostname.clone(),
        addr: node.advertise.clone(),
        managers: managers.to_vec(),
        state_dir: node.state_dir.clone(),
        control_socket: node.state_dir.join("swarmd.sock"),
    });
    api.local_tasks = Some(Arc::new(AgentTasks(agent)));
    Ok(Some(tokio::spawn(server::serve(
        listener,
        path,
        Arc::new(api),
        stop,
    ))))
}

/// The agent's tasks, for a worker's `docker ps`.
struct AgentTasks(Arc<Agent>);

impl std::fmt::Debug for AgentTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentTasks")
    }
}

impl LocalTasks for AgentTasks {
    fn tasks(&self) -> Vec<pb::Task> {
        self.0.local_tasks()
    }
}
