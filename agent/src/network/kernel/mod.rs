//! The boundary between the data plane's logic and the kernel: every namespace, link, address,
//! FDB and neighbour entry, nftables transaction and balancer the data plane programs goes
//! through [`Kernel`] and [`Namespace`]. [`Netlib`] is the real one (netlib over rtnetlink,
//! `nft` and IPVS); tests use a recording fake (`fake`, test builds only) and run without root.
//!
//! Namespaces are named as under `<state-dir>/netns/` (`tk_…`, `ov_…`, `lb_…`,
//! `ingress_sbox`); the node's own namespace is [`Kernel::node`]. Every call reads like the
//! `ip`/`bridge`/`nft`/`ipvsadm` command it stands for, and every `ensure_*` is idempotent.

mod netlib;

#[cfg(test)]
pub(crate) mod fake;

pub use self::netlib::Netlib;

use std::fmt;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use shoal_netlib::lb::{LbChoice, LbConfig, LoadBalancer};
use shoal_netlib::nft::Batch;
use shoal_netlib::rt::Vxlan;
use shoal_proto::model::Protocol;

use super::Result;

/// A boxed future, so that the traits here can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The node's kernel: its namespaces and its ports.
pub trait Kernel: Send + Sync + fmt::Debug {
    /// The node's own namespace.
    fn node(&self) -> Arc<dyn Namespace>;

    /// `ip netns add NAME` unless it exists; a handle on it.
    fn ensure_ns(&self, name: &str) -> Result<Arc<dyn Namespace>>;

    /// A handle on the existing namespace `name`: [`super::Error::Netns`] when it cannot be
    /// opened, [`super::Error::Link`] when it can but cannot be talked to.
    fn open_ns(&self, name: &str) -> Result<Arc<dyn Namespace>>;

    /// `ip netns del NAME`. Absent is not an error. The namespace dies with the last handle
    /// on it: drop those first.
    fn delete_ns(&self, name: &str) -> Result<()>;

    /// `ip netns list`: the namespaces under the state directory.
    fn list_ns(&self) -> Result<Vec<String>>;

    /// The file of namespace `name`.
    fn ns_path(&self, name: &str) -> PathBuf;

    /// Holds `port` open on the node so that nothing else binds it, until the reservation
    /// is dropped.
    fn reserve_port(&self, proto: Protocol, port: u16) -> std::io::Result<Reservation>;
}

/// A published port held open on the node (a socket bound to it, or nothing in tests).
#[derive(Debug)]
pub struct Reservation {
    _held: Option<Held>,
}

#[derive(Debug)]
#[allow(dead_code)] // held for its side effect only
enum Held {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
    #[cfg(test)]
    Fake(fake::Hold),
}

/// A static FDB entry of a VXLAN device: frames for the MAC go to the remote VTEP (the
/// all-zero MAC: the flood list).
pub type Fdb = ([u8; 6], Ipv4Addr);

/// A link as the data plane needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Its name.
    pub name: String,
    /// Its kind (`veth`, `bridge`, `vxlan`; empty for `lo`).
    pub kind: String,
}

/// One network namespace, as the data plane programs it.
pub trait Namespace: Send + Sync + fmt::Debug {
    /// Its name (`tk_…`), or `""` for the node's.
    fn name(&self) -> &str;

    /// `ip link show DEV`: whether it exists.
    fn link_exists<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// `ip link show`.
    fn links(&self) -> BoxFuture<'_, Result<Vec<LinkInfo>>>;
    /// `ip link del DEV`. Absent is not an error.
    fn del_link<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>>;
    /// `ip link add DEV type bridge`.
    fn ensure_bridge<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>>;
    /// `ip link add OUTER type veth peer name INNER netns PEER_NS`.
    fn ensure_veth<'a>(
        &'a self,
        outer: &'a str,
        inner: &'a str,
        peer_ns: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// `ip link add NAME type vxlan id VNI …` (see [`Vxlan`]).
    fn ensure_vxlan<'a>(&'a self, vxlan: &'a Vxlan) -> BoxFuture<'a, Result<()>>;
    /// `ip link set DEV netns NS`.
    fn move_link<'a>(&'a self, dev: &'a str, ns: &'a str) -> BoxFuture<'a, Result<()>>;
    /// `ip link set DEV up`.
    fn ensure_up<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>>;
    /// `ip link set DEV mtu MTU`.
    fn ensure_mtu<'a>(&'a self, dev: &'a str, mtu: u32) -> BoxFuture<'a, Result<()>>;
    /// `ip link set DEV master BRIDGE`.
    fn ensure_master<'a>(&'a self, dev: &'a str, bridge: &'a str) -> BoxFuture<'a, Result<()>>;
    /// `ip link set DEV address MAC`.
    fn ensure_mac<'a>(&'a self, dev: &'a str, mac: [u8; 6]) -> BoxFuture<'a, Result<()>>;

    /// `ip addr show dev DEV`: its IPv4 addresses with their prefixes.
    fn addrs<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<(Ipv4Addr, u8)>>>;
    /// `ip addr add ADDR/PREFIX dev DEV`.
    fn ensure_addr<'a>(
        &'a self,
        dev: &'a str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> BoxFuture<'a, Result<()>>;
    /// `ip addr del ADDR/PREFIX dev DEV`.
    fn del_addr<'a>(
        &'a self,
        dev: &'a str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> BoxFuture<'a, Result<()>>;
    /// `ip route replace default via GATEWAY`.
    fn ensure_default_route(&self, gateway: Ipv4Addr) -> BoxFuture<'_, Result<()>>;

    /// `bridge fdb show dev DEV`: its static entries (MAC, remote VTEP); the flood list has
    /// the all-zero MAC.
    fn fdb<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<Fdb>>>;
    /// `bridge fdb append 00:00:00:00:00:00 dev DEV dst DST`.
    fn ensure_flood<'a>(&'a self, dev: &'a str, dst: Ipv4Addr) -> BoxFuture<'a, Result<()>>;
    /// `bridge fdb replace MAC dev DEV dst DST`.
    fn ensure_fdb<'a>(
        &'a self,
        dev: &'a str,
        mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> BoxFuture<'a, Result<()>>;
    /// `bridge fdb del MAC dev DEV dst DST`.
    fn del_fdb<'a>(
        &'a self,
        dev: &'a str,
        mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> BoxFuture<'a, Result<()>>;
    /// `ip neigh show dev DEV`: its permanent entries' addresses.
    fn neighbours<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>>>;
    /// `ip neigh replace IP lladdr MAC dev DEV nud permanent`.
    fn ensure_neighbour<'a>(
        &'a self,
        dev: &'a str,
        ip: Ipv4Addr,
        mac: [u8; 6],
    ) -> BoxFuture<'a, Result<()>>;
    /// `ip neigh del IP dev DEV`.
    fn del_neighbour<'a>(&'a self, dev: &'a str, ip: Ipv4Addr) -> BoxFuture<'a, Result<()>>;

    /// `nft -j -f BATCH`: one atomic transaction.
    fn apply_nft<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<()>>;
    /// `sysctl -w KEY=VALUE`.
    fn sysctl(&self, key: &str, value: &str) -> Result<()>;
    /// Opens the balancer `choice` names in this namespace.
    fn open_lb(
        &self,
        choice: LbChoice,
        config: LbConfig,
    ) -> BoxFuture<'_, Result<Box<dyn LoadBalancer>>>;
    /// `ipvsadm --set TCP 0 0`: how long an idle TCP connection stays in IPVS's table.
    fn set_ipvs_tcp_idle(&self, idle: Duration) -> Result<()>;
}
