//! A node in no swarm (started with `--idle`, or after `swarm leave`): the control socket
//! refuses Control calls in Docker's words and the node waits for `swarm init` or `swarm
//! join`, whose addresses are checked here before anything starts.

use crate::init::InitOptions;
use crate::lifecycle::{Request, NO_SWARM};
use crate::member::{Shared, Start};
use crate::node::Node;
use crate::serve::Front;
use shoal_cli::addr::with_port;
use tonic::Status;
use tracing::info;

/// Waits for a `swarm init|join` with usable addresses (taken into `node`); `None` when swarmd
/// stops first.
pub async fn wait(node: &mut Node, shared: &mut Shared<'_>) -> Option<Start> {
    shared.front.set(Front::Idle);
    shared
        .state
        .send_replace(crate::lifecycle::state("inactive", "", false, ""));
    info!("this node is in no swarm: waiting for `swarm init` or `swarm join`");
    let stopping = shared.stopping();
    tokio::pin!(stopping);
    loop {
        let r = tokio::select! {
            _ = &mut stopping => return None,
            r = shared.requests.recv() => r?,
        };
        if r.abandoned() {
            continue;
        }
        match r {
            Request::Leave(_, tx) => {
                let _ = tx.send(Err(Status::unavailable(NO_SWARM)));
            }
            Request::Init(req, tx) => {
                match node.take_addresses(&req.listen_addr, &req.advertise_addr, None) {
                    Ok(()) => {
                        return Some(Start::Init {
                            opts: InitOptions {
                                default_addr_pool: req.default_addr_pool,
                                subnet_size: req.subnet_size,
                            },
                            reply: Some(tx),
                        })
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::invalid_argument(e.to_string())));
                    }
                }
            }
            Request::Join(req, tx) => {
                if req.remote_addrs.is_empty() || req.token.is_empty() {
                    let _ = tx.send(Err(Status::invalid_argument(
                        "a join needs a manager's address and a join token",
                    )));
                    continue;
                }
                let toward = req.remote_addrs.first().map(|a| with_port(a));
                match node.take_addresses(&req.listen_addr, &req.advertise_addr, toward.as_deref())
                {
                    Ok(()) => {
                        return Some(Start::Join {
                            addrs: req.remote_addrs.iter().map(|a| with_port(a)).collect(),
                            token: req.token.clone(),
                            reply: Some(tx),
                        })
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::invalid_argument(e.to_string())));
                    }
                }
            }
        }
    }
}
