//! The real kernel: netlib's rtnetlink [`Handle`], [`Nft`], load balancers and sysctls, one
//! handle per namespace (its netlink socket opened inside it once, on a thread of its own).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_netlib::lb::{self, LbChoice, LbConfig, LoadBalancer};
use shoal_netlib::netns::{self, NetNs};
use shoal_netlib::nft::{Batch, Nft};
use shoal_netlib::rt::{Handle, Vxlan};
use shoal_proto::model::Protocol;

use super::{BoxFuture, Fdb, Held, Kernel, LinkInfo, Namespace, Reservation};
use crate::network::Result;

/// The kernel through netlib.
#[derive(Debug)]
pub struct Netlib {
    netns_dir: PathBuf,
    node: Arc<NetlibNs>,
}

impl Netlib {
    /// The kernel of the node whose namespaces live in `netns_dir` (made ready for them, see
    /// [`netns::prepare_dir`]), the node being `node` (the calling thread's namespace when
    /// `None`). Must run within a tokio runtime.
    pub fn new(netns_dir: PathBuf, node: Option<Arc<NetNs>>) -> Result<Netlib> {
        netns::prepare_dir(&netns_dir)?;
        let handle = match &node {
            Some(ns) => Handle::in_ns(ns)?,
            None => Handle::new()?,
        };
        let node = Arc::new(NetlibNs {
            name: String::new(),
            netns_dir: netns_dir.clone(),
            nft: Nft::new(node.clone()),
            ns: node,
            handle,
        });
        Ok(Netlib { netns_dir, node })
    }

    fn handle_on(&self, ns: NetNs) -> Result<Arc<dyn Namespace>> {
        let handle = Handle::in_ns(&ns)?;
        let ns = Arc::new(ns);
        Ok(Arc::new(NetlibNs {
            name: ns.name().to_string(),
            netns_dir: self.netns_dir.clone(),
            nft: Nft::new(Some(Arc::clone(&ns))),
            ns: Some(ns),
            handle,
        }))
    }
}

impl Kernel for Netlib {
    fn node(&self) -> Arc<dyn Namespace> {
        Arc::clone(&self.node) as Arc<dyn Namespace>
    }

    fn ensure_ns(&self, name: &str) -> Result<Arc<dyn Namespace>> {
        self.handle_on(NetNs::ensure(&self.netns_dir, name)?)
    }

    fn open_ns(&self, name: &str) -> Result<Arc<dyn Namespace>> {
        self.handle_on(NetNs::open(&self.netns_dir.join(name))?)
    }

    fn delete_ns(&self, name: &str) -> Result<()> {
        Ok(netns::delete_path(&self.netns_dir.join(name))?)
    }

    fn list_ns(&self) -> Result<Vec<String>> {
        Ok(netns::list(&self.netns_dir)?)
    }

    fn ns_path(&self, name: &str) -> PathBuf {
        self.netns_dir.join(name)
    }

    fn reserve_port(&self, proto: Protocol, port: u16) -> std::io::Result<Reservation> {
        let held = match proto {
            Protocol::Tcp => std::net::TcpListener::bind(("0.0.0.0", port)).map(Held::Tcp)?,
            Protocol::Udp => std::net::UdpSocket::bind(("0.0.0.0", port)).map(Held::Udp)?,
        };
        Ok(Reservation { _held: Some(held) })
    }
}

/// One namespace: its rtnetlink handle and its `nft`.
#[derive(Debug)]
struct NetlibNs {
    name: String,
    netns_dir: PathBuf,
    /// `None`: the calling thread's (the node's, outside tests).
    ns: Option<Arc<NetNs>>,
    handle: Handle,
    nft: Nft,
}

impl NetlibNs {
    fn peer(&self, name: &str) -> Result<NetNs> {
        Ok(NetNs::open(&self.netns_dir.join(name))?)
    }
}

/// `Ok(())` for an `ensure_*` result.
fn done<T>(r: shoal_netlib::rt::Result<T>) -> Result<()> {
    r.map(|_| ()).map_err(Into::into)
}

impl Namespace for NetlibNs {
    fn name(&self) -> &str {
        &self.name
    }

    fn link_exists<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.handle.link(dev).await?.is_some()) })
    }

    fn links(&self) -> BoxFuture<'_, Result<Vec<LinkInfo>>> {
        Box::pin(async move {
            Ok(self
                .handle
                .links()
                .await?
                .into_iter()
                .map(|l| LinkInfo {
                    name: l.name,
                    kind: l.kind,
                })
                .collect())
        })
    }

    fn del_link<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.del_link(dev).await) })
    }

    fn ensure_bridge<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_bridge(dev).await) })
    }

    fn ensure_veth<'a>(
        &'a self,
        outer: &'a str,
        inner: &'a str,
        peer_ns: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let peer = self.peer(peer_ns)?;
            done(self.handle.ensure_veth(outer, inner, Some(&peer)).await)
        })
    }

    fn ensure_vxlan<'a>(&'a self, vxlan: &'a Vxlan) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_vxlan(vxlan).await) })
    }

    fn move_link<'a>(&'a self, dev: &'a str, ns: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let to = self.peer(ns)?;
            done(self.handle.move_to(dev, &to).await)
        })
    }

    fn ensure_up<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_up(dev).await) })
    }

    fn ensure_mtu<'a>(&'a self, dev: &'a str, mtu: u32) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_mtu(dev, mtu).await) })
    }

    fn ensure_master<'a>(&'a self, dev: &'a str, bridge: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_master(dev, bridge).await) })
    }

    fn ensure_mac<'a>(&'a self, dev: &'a str, mac: [u8; 6]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_mac(dev, mac).await) })
    }

    fn addrs<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<(Ipv4Addr, u8)>>> {
        Box::pin(async move {
            let link = self.handle.link_required(dev).await?;
            Ok(self
                .handle
                .addrs()
                .await?
                .into_iter()
                .filter(|a| a.index == link.index)
                .map(|a| (a.addr, a.prefix))
                .collect())
        })
    }

    fn ensure_addr<'a>(
        &'a self,
        dev: &'a str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_addr(dev, addr, prefix).await) })
    }

    fn del_addr<'a>(
        &'a self,
        dev: &'a str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.del_addr(dev, addr, prefix).await) })
    }

    fn ensure_default_route(&self, gateway: Ipv4Addr) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_default_route(gateway).await) })
    }

    fn fdb<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<Fdb>>> {
        Box::pin(async move {
            let link = self.handle.link_required(dev).await?;
            Ok(self
                .handle
                .fdb()
                .await?
                .into_iter()
                .filter(|f| f.index == link.index)
                .map(|f| (f.mac, f.dst))
                .collect())
        })
    }

    fn ensure_flood<'a>(&'a self, dev: &'a str, dst: Ipv4Addr) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_flood(dev, dst).await) })
    }

    fn ensure_fdb<'a>(
        &'a self,
        dev: &'a str,
        mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_fdb(dev, mac, dst).await) })
    }

    fn del_fdb<'a>(
        &'a self,
        dev: &'a str,
        mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.del_fdb(dev, mac, dst).await) })
    }

    fn neighbours<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>>> {
        Box::pin(async move {
            let link = self.handle.link_required(dev).await?;
            Ok(self
                .handle
                .neighbours()
                .await?
                .into_iter()
                .filter(|n| n.index == link.index)
                .map(|n| n.ip)
                .collect())
        })
    }

    fn ensure_neighbour<'a>(
        &'a self,
        dev: &'a str,
        ip: Ipv4Addr,
        mac: [u8; 6],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.ensure_neighbour(dev, ip, mac).await) })
    }

    fn del_neighbour<'a>(&'a self, dev: &'a str, ip: Ipv4Addr) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { done(self.handle.del_neighbour(dev, ip).await) })
    }

    fn apply_nft<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { Ok(self.nft.apply(batch).await?) })
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        Ok(shoal_netlib::sysctl::set(self.ns.as_deref(), key, value)?)
    }

    fn open_lb(
        &self,
        choice: LbChoice,
        config: LbConfig,
    ) -> BoxFuture<'_, Result<Box<dyn LoadBalancer>>> {
        Box::pin(async move { Ok(lb::open(choice, self.ns.clone(), config).await?) })
    }

    fn set_ipvs_tcp_idle(&self, idle: Duration) -> Result<()> {
        let set = || {
            let mut s = shoal_netlib::ipvs::Ipvs::open()?;
            let mut t = s.timeouts()?;
            t.tcp = idle;
            s.set_timeouts(&t)
        };
        let r = match &self.ns {
            Some(ns) => ns.run(set)?,
            None => set(),
        };
        r.map_err(|e| shoal_netlib::lb::Error::from(e).into())
    }
}
