//! The data plane of one node: a network namespace per task (`tk_<id>` under
//! `<state-dir>/netns/`) and the local network drivers (DESIGN §4):
//!
//! * `host`: the task shares the node's namespace;
//! * `none`: loopback only;
//! * `bridge` networks: a Linux bridge on the node (`shoal0` for the default `bridge` network,
//!   `shoal_gwbridge`, `swb<netid>` for user ones) holding the gateway address, a veth per task
//!   (`swt<id><n>` on the node, `eth<n>` inside) with an address from the node's own IPAM,
//!   masquerading out of the bridge, and no forwarding between two different bridges;
//! * `overlay` networks and their balancers (see [`overlay`](self) and `lb`).
//!
//! Everything is level-triggered: [`DataPlane::prepare`] converges a task's sandbox whatever
//! part of it exists, [`DataPlane::release`] removes it, [`DataPlane::janitor`] removes
//! sandboxes no task owns (a crash's leftovers).
//!
//! Where things are:
//! * [`sandbox`](self): a task's namespace and its interfaces (`prepare`, `release`);
//! * `node`: the node's bridges and its own nftables table (NAT, isolation, published ports);
//! * `overlay`: overlay sandboxes and their peers (FDB and neighbour entries);
//! * `lb`: balancers: what the managers' tables ask for (`plan`) and how it is programmed;
//! * `janitor`: what a crash left behind;
//! * `kernel`: the one boundary to the kernel, with a recording fake for tests.

mod error;
mod ipam;
mod janitor;
mod kernel;
mod lb;
mod node;
mod overlay;
mod sandbox;

pub use error::{Error, Result};
pub use ipam::{parse_subnet, LocalIpam};
pub use lb::stats::BackendConnections;
pub use overlay::{Peer, OVERLAY_MTU};
pub use sandbox::{Interface, Sandbox};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_netlib::netns::NetNs;

use kernel::{Kernel, Namespace};

/// Default of [`Timings::ipvs_tcp_idle`]: TCP connections through an IPVS balancer stay in its
/// table this long without traffic (the kernel's default, which Swarm keeps, is 900 s: idle
/// connections were cut).
pub const DEFAULT_IPVS_TCP_IDLE: Duration = Duration::from_secs(24 * 3600);

/// The data plane's timings (see the agent's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long an idle TCP connection stays in an IPVS balancer's table.
    pub ipvs_tcp_idle: Duration,
    /// The embedded DNS drops a TCP client that sends nothing for this long.
    pub dns_tcp_idle: Duration,
    /// How long an upstream resolver has to answer the embedded DNS.
    pub dns_upstream_timeout: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            ipvs_tcp_idle: DEFAULT_IPVS_TCP_IDLE,
            dns_tcp_idle: crate::dns::DEFAULT_TCP_IDLE,
            dns_upstream_timeout: crate::dns::DEFAULT_UPSTREAM_TIMEOUT,
        }
    }
}

/// The node's data plane.
#[derive(Debug, Clone)]
pub struct DataPlane {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    netns_dir: PathBuf,
    kernel: Arc<dyn Kernel>,
    /// The node's own namespace.
    host: Arc<dyn Namespace>,
    ipam: Mutex<LocalIpam>,
    node: tokio::sync::Mutex<node::NodeState>,
    overlays: tokio::sync::Mutex<BTreeMap<String, overlay::Overlay>>,
    peers: tokio::sync::Mutex<std::collections::BTreeSet<Peer>>,
    lb: tokio::sync::Mutex<lb::LbPlane>,
    /// The embedded DNS of the node's tasks.
    dns: crate::dns::Dns,
    timings: Mutex<Timings>,
}

impl DataPlane {
    /// The data plane of the node whose state is in `state_dir`, programming the namespace the
    /// calling thread is in (the node's).
    pub async fn new(state_dir: &Path) -> Result<DataPlane> {
        Self::with_node(state_dir, None).await
    }

    /// The same, programming the node namespace `node` (the caller's when `None`): what a test
    /// uses to stand a namespace in for a node.
    pub async fn with_node(state_dir: &Path, node: Option<Arc<NetNs>>) -> Result<DataPlane> {
        let netns_dir = state_dir.join("netns");
        let kernel = kernel::Netlib::new(netns_dir.clone(), node.clone())?;
        let dp = Self::with_kernel(state_dir, netns_dir, Arc::new(kernel), node)?;
        dp.inner.host.apply_nft(&node::vxlan_notrack()).await?;
        Ok(dp)
    }

    /// The data plane over `kernel` (the node's own namespace being `node` for the DNS's
    /// upstream queries).
    fn with_kernel(
        state_dir: &Path,
        netns_dir: PathBuf,
        kernel: Arc<dyn Kernel>,
        node: Option<Arc<NetNs>>,
    ) -> Result<DataPlane> {
        let host = kernel.node();
        host.sysctl("net.ipv4.ip_forward", "1")?;
        let ipam = LocalIpam::load(state_dir.join("network").join("ipam.json"));
        Ok(DataPlane {
            inner: Arc::new(Inner {
                netns_dir,
                kernel,
                host,
                ipam: Mutex::new(ipam),
                node: Default::default(),
                overlays: Default::default(),
                peers: Default::default(),
                lb: Default::default(),
                dns: crate::dns::Dns::new(node),
                timings: Mutex::new(Timings::default()),
            }),
        })
    }

    /// The directory of the namespace files.
    pub fn netns_dir(&self) -> &Path {
        &self.inner.netns_dir
    }

    /// Uses `timings` from now on.
    pub fn set_timings(&self, timings: Timings) {
        *self.inner.timings.lock().unwrap_or_else(|e| e.into_inner()) = timings;
        self.inner
            .dns
            .set_upstream_timeout(timings.dns_upstream_timeout);
    }

    fn timings(&self) -> Timings {
        *self.inner.timings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ipam(&self) -> std::sync::MutexGuard<'_, LocalIpam> {
        self.inner.ipam.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the names the node's tasks resolve (the managers' tables).
    pub fn set_dns(&self, tables: &[shoal_proto::pb::DnsNetwork]) {
        self.inner.dns.set_tables(tables);
    }

    /// Where the embedded DNS sends names that are not the cluster's (`[]`: nowhere).
    pub fn set_dns_upstream(&self, servers: Vec<std::net::SocketAddr>) {
        self.inner.dns.set_upstream(servers);
    }
}

#[cfg(test)]
mod fake_tests;
#[cfg(test)]
mod lb_tests;
#[cfg(test)]
mod tests;
