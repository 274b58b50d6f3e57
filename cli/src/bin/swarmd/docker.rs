//! `--docker-host`: the Docker Engine API socket (`shoal_cli::docker`), started once the node
//! has its identity, served until the node stops.

use crate::identity::Identity;
use crate::node::Node;
use shoal_cli::docker::{server, Api, LocalNode};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Binds and serves the socket when `--docker-host` was given; the task ends (and the socket
/// is removed) once `stop` turns true.
pub async fn start(
    node: &Node,
    ident: &Identity,
    managers: &[String],
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(path) = node.docker_host.clone() else {
        return Ok(None);
    };
    let listener = server::bind(&path).await?;
    let api = Api::new(LocalNode {
        node_id: ident.node_id.clone(),
        hostname: node.hostname.clone(),
        addr: node.advertise.clone(),
        managers: managers.to_vec(),
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
