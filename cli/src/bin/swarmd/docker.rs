//! `--docker-host`: the Docker Engine API socket (`shoal_cli::docker`), served from the start
//! (in a swarm or not: `docker swarm init|join` come through it) until the node stops. What the
//! node is now (its id, address, state) the API asks the control socket.

use crate::node::Node;
use shoal_cli::docker::{server, Api, LocalNode};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Binds and serves the socket when `--docker-host` was given; the task ends (and the socket
/// is removed) once `stop` turns true.
pub async fn start(
    node: &Node,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(path) = node.docker_host.clone() else {
        return Ok(None);
    };
    let listener = server::bind(&path).await?;
    let api = Api::new(LocalNode {
        node_id: String::new(),
        hostname: node.hostname.clone(),
        addr: node.advertise.clone(),
        managers: Vec::new(),
        state: "inactive".into(),
        manager: false,
        state_dir: node.state_dir.clone(),
        control_socket: node.state_dir.join("swarmd.sock"),
    });
    Ok(Some(tokio::spawn(server::serve(
        listener,
        path,
        Arc::new(api),
        stop,
    ))))
}
