//! The embedded DNS (DESIGN §6): a resolver at 127.0.0.11:53, UDP and TCP, inside every task's
//! network namespace (sockets opened from a thread in that namespace, served by the agent's
//! runtime), answering from the managers' tables for the networks the task is on; other names
//! go to the node's upstream resolvers.
//!
//! Where a query is answered (one place each, for counters):
//! - UDP, plain query for a cluster name: [`udp::respond`] (the per-task cache of encoded
//!   answers, [`fast`]; filled on a miss by the slow path itself);
//! - everything else, UDP ([`udp::slow_path`]) and TCP (hickory-server's listener):
//!   [`TaskResolver`]'s `handle_request` (resolver.rs): local answer, forward, NXDOMAIN.

pub mod fast;
mod index;
pub mod metrics;
mod resolver;
pub mod udp;

pub use index::{Index, Target};
pub use resolver::{
    answer, answer_ordered, Reply, Shared, TaskResolver, DEFAULT_UPSTREAM_TIMEOUT, TTL,
};

use hickory_server::Server;
use shoal_netlib::netns::NetNs;
use shoal_proto::pb;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::debug;

/// The resolver's address in every task.
pub const LISTEN: &str = "127.0.0.11:53";
/// Default of how long a TCP client may send nothing before it is dropped.
pub const DEFAULT_TCP_IDLE: Duration = Duration::from_secs(5);

/// Why the embedded DNS cannot serve a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task's namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] shoal_netlib::netns::Error),
    /// Binding 127.0.0.11:53 inside the task failed.
    #[error("cannot listen on {LISTEN} in the task: {0}")]
    Listen(#[source] std::io::Error),
    /// The runtime would not take the sockets.
    #[error("{0}")]
    Register(#[source] std::io::Error),
}

/// The node's DNS: shared tables and one server per task.
#[derive(Debug)]
pub struct Dns {
    shared: Arc<Shared>,
    servers: Mutex<HashMap<String, TaskServer>>,
}

struct TaskServer {
    /// TCP (hickory).
    _server: Server<TaskResolver>,
    /// UDP: the fast path and hickory's handler behind it.
    _udp: udp::UdpServer,
    networks: Vec<String>,
}

impl std::fmt::Debug for TaskServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskServer")
            .field("networks", &self.networks)
            .finish_non_exhaustive()
    }
}

/// The node's resolvers as `/etc/resolv.conf` names them (port 53).
pub fn system_upstream() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

impl Dns {
    /// A DNS for the node whose namespace is `node_ns` (the caller's when `None`).
    pub fn new(node_ns: Option<Arc<NetNs>>) -> Dns {
        Dns {
            shared: Arc::new(Shared {
                node_ns,
                ..Default::default()
            }),
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// Where names that are not the cluster's go (`[]`: nowhere, NXDOMAIN).
    pub fn set_upstream(&self, servers: Vec<SocketAddr>) {
        *self
            .shared
            .upstream
            .write()
            .unwrap_or_else(|e| e.into_inner()) = servers;
    }

    /// Replaces the tables (the managers' `dns` of the assignments).
    pub fn set_tables(&self, tables: &[pb::DnsNetwork]) {
        let ix = Arc::new(Index::build(tables));
        *self.shared.index.write().unwrap_or_else(|e| e.into_inner()) = ix;
        // After the swap: a cache entry built at the new version comes from the new tables.
        self.shared
            .version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// How long an upstream resolver has to answer.
    pub fn set_upstream_timeout(&self, timeout: Duration) {
        *self
            .shared
            .upstream_timeout
            .write()
            .unwrap_or_else(|e| e.into_inner()) = timeout;
    }

    /// Serves task `task_id`, on `networks`, at 127.0.0.11:53 inside `ns`, dropping TCP clients
    /// idle for `tcp_idle`. Idempotent: a task served already keeps its sockets (its networks
    /// are updated).
    pub fn serve(
        &self,
        task_id: &str,
        ns: &NetNs,
        networks: Vec<String>,
        tcp_idle: Duration,
    ) -> Result<(), Error> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if servers.get(task_id).is_some_and(|s| s.networks == networks) {
            return Ok(());
        }
        servers.remove(task_id);
        let (udp, tcp) = ns
            .run(|| -> std::io::Result<_> {
                let udp = std::net::UdpSocket::bind(LISTEN)?;
                udp.set_nonblocking(true)?;
                let tcp = std::net::TcpListener::bind(LISTEN)?;
                tcp.set_nonblocking(true)?;
                Ok((udp, tcp))
            })?
            .map_err(Error::Listen)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(Error::Register)?;
        let resolver = TaskResolver {
            shared: Arc::clone(&self.shared),
            networks: networks.clone(),
        };
        let udp = udp::UdpServer::spawn(udp, resolver.clone(), udp::readers())
            .map_err(Error::Register)?;
        let mut server = Server::new(resolver);
        server.register_listener(tcp, tcp_idle, 16);
        debug!(task.id = task_id, ?networks, "embedded DNS listening");
        servers.insert(
            task_id.to_string(),
            TaskServer {
                _server: server,
                _udp: udp,
                networks,
            },
        );
        Ok(())
    }

    /// Stops serving task `task_id` (its sockets close).
    pub fn stop(&self, task_id: &str) {
        if self
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task_id)
            .is_none()
        {
            return;
        }
        debug!(task.id = task_id, "embedded DNS stopped");
    }

    /// Tasks served.
    pub fn served(&self) -> usize {
        self.servers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests;
