//! `--docker-host`: the Docker Engine API socket (`shoal_cli::docker`), served from the start
//! (in a swarm or not: `docker swarm init|join` come through it) until the node stops. What the
//! node is now (its id, address, state) the API asks the control socket.

use crate::node::Node;
use shoal_agent::Agent;
use shoal_cli::docker::containers::LocalTasks;
use shoal_cli::docker::{server, Api, LocalNode};
use shoal_proto::pb;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Binds and serves the socket when `--docker-host` was given; the task ends (and the socket
/// is removed) once `stop` turns true.
pub async fn start(
    node: &Node,
    agent: AgentSlot,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(path) = node.docker_host.clone() else {
        return Ok(None);
    };
    let listener = server::bind(&path).await?;
    let mut api = Api::new(LocalNode {
        node_id: String::new(),
        hostname: node.hostname.clone(),
        addr: node.advertise.clone(),
        managers: Vec::new(),
        state: "inactive".into(),
        manager: false,
        state_dir: node.state_dir.clone(),
        control_socket: node.state_dir.join("swarmd.sock"),
    });
    api.local_tasks = Some(Arc::new(agent));
    Ok(Some(tokio::spawn(server::serve(
        listener,
        path,
        Arc::new(api),
        stop,
    ))))
}

/// The agent of the node's present membership, if any: a worker's `docker ps` lists its tasks.
/// The membership sets it when its agent starts and clears it when it ends.
#[derive(Clone, Default)]
pub struct AgentSlot(Arc<RwLock<Option<Arc<Agent>>>>);

impl AgentSlot {
    /// From now on, `agent` (or none) answers.
    pub fn set(&self, agent: Option<Arc<Agent>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = agent;
    }

    /// The agent now, if any.
    pub fn get(&self) -> Option<Arc<Agent>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for AgentSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentSlot")
    }
}

impl LocalTasks for AgentSlot {
    fn tasks(&self) -> Vec<pb::Task> {
        let agent = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        agent.map(|a| a.local_tasks()).unwrap_or_default()
    }
}
