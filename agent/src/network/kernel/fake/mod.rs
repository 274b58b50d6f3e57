//! A recording fake of the kernel (test builds only): it keeps what a kernel would hold
//! (namespaces, links, addresses, FDB and neighbour entries, the last nftables batch per
//! namespace, balancers' services) and records every call that changed something, as the
//! command that would have done it (`ip -n lb_x addr add 10.0.0.2/32 dev eth0`). An `ensure_*`
//! of what exists already changes nothing and records nothing, as in the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod balancer;

use shoal_netlib::lb::{
    BackendAddr, LbChoice, LbConfig, LbKind, LoadBalancer, Scheduler, VirtualService,
};
use shoal_netlib::nft::Batch;
use shoal_netlib::rt::{format_mac, Vxlan};
use shoal_proto::model::Protocol;

use super::{BoxFuture, Fdb, Held, Kernel, LinkInfo, Namespace, Reservation};
use crate::network::Result;

#[derive(Debug, Default, Clone)]
struct Link {
    kind: String,
    up: bool,
    mtu: u32,
    master: Option<String>,
    mac: Option<[u8; 6]>,
}

#[derive(Debug, Default)]
struct Ns {
    links: BTreeMap<String, Link>,
    addrs: BTreeSet<(String, Ipv4Addr, u8)>,
    default_route: Option<Ipv4Addr>,
    fdb: BTreeSet<(String, [u8; 6], Ipv4Addr)>,
    neigh: BTreeMap<(String, Ipv4Addr), [u8; 6]>,
    nft: Option<serde_json::Value>,
    sysctl: BTreeMap<String, String>,
    lb: BTreeMap<VirtualService, (Scheduler, BTreeMap<BackendAddr, u32>)>,
}

#[derive(Debug, Default)]
struct Model {
    /// Namespace name (`""`: the node's) → what it holds.
    ns: BTreeMap<String, Ns>,
    log: Vec<String>,
    ports: BTreeSet<(Protocol, u16)>,
}

/// The fake kernel. Clones share one model.
#[derive(Debug, Clone, Default)]
pub struct FakeKernel {
    model: Arc<Mutex<Model>>,
    /// What [`Namespace::open_lb`] opens.
    lb_kind: Option<LbKind>,
}

impl FakeKernel {
    /// A kernel with only the node's namespace; its balancers are of `kind`.
    pub fn new(kind: LbKind) -> FakeKernel {
        let k = FakeKernel {
            model: Default::default(),
            lb_kind: Some(kind),
        };
        k.lock().ns.insert(String::new(), Ns::default());
        k
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the calls recorded so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().log)
    }

    /// Namespaces that exist (the node's not included).
    pub fn namespaces(&self) -> Vec<String> {
        self.lock()
            .ns
            .keys()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect()
    }

    /// Makes a namespace exist, as a crash would have left it (nothing recorded).
    pub fn leave_ns(&self, name: &str) {
        self.lock().ns.entry(name.to_string()).or_default();
    }

    /// The last nftables batch applied in `ns` (`""`: the node), as `nft -j` takes it.
    pub fn nft(&self, ns: &str) -> Option<serde_json::Value> {
        self.lock().ns.get(ns).and_then(|n| n.nft.clone())
    }

    /// The FDB entries of `dev` in `ns`, as `bridge fdb show` would print them.
    pub fn fdb(&self, ns: &str, dev: &str) -> Vec<String> {
        let m = self.lock();
        let Some(n) = m.ns.get(ns) else {
            return Vec::new();
        };
        n.fdb
            .iter()
            .filter(|(d, ..)| d == dev)
            .map(|(_, mac, dst)| format!("{} dst {dst}", format_mac(mac)))
            .collect()
    }

    /// The balancer of `ns`: `FWM mark -> backend, …` per service.
    pub fn lb(&self, ns: &str) -> Vec<String> {
        let m = self.lock();
        let Some(n) = m.ns.get(ns) else {
            return Vec::new();
        };
        n.lb.iter()
            .map(|(s, (_, b))| {
                let b: Vec<String> = b.keys().map(|a| a.addr.to_string()).collect();
                format!("{s} -> {}", b.join(","))
            })
            .collect()
    }

    fn ns(&self, name: &str) -> Arc<dyn Namespace> {
        Arc::new(FakeNs {
            name: name.to_string(),
            kernel: self.clone(),
        })
    }
}

impl Kernel for FakeKernel {
    fn node(&self) -> Arc<dyn Namespace> {
        self.ns("")
    }

    fn ensure_ns(&self, name: &str) -> Result<Arc<dyn Namespace>> {
        let mut m = self.lock();
        if !m.ns.contains_key(name) {
            m.ns.insert(name.to_string(), Ns::default());
            m.log.push(format!("ip netns add {name}"));
        }
        drop(m);
        Ok(self.ns(name))
    }

    fn open_ns(&self, name: &str) -> Result<Arc<dyn Namespace>> {
        if !self.lock().ns.contains_key(name) {
            return Err(shoal_netlib::netns::Error::BadName(name.to_string()).into());
        }
        Ok(self.ns(name))
    }

    fn delete_ns(&self, name: &str) -> Result<()> {
        let mut m = self.lock();
        if m.ns.remove(name).is_some() {
            m.log.push(format!("ip netns del {name}"));
        }
        Ok(())
    }

    fn list_ns(&self) -> Result<Vec<String>> {
        Ok(self.namespaces())
    }

    fn ns_path(&self, name: &str) -> PathBuf {
        PathBuf::from("/fake/netns").join(name)
    }

    fn reserve_port(&self, proto: Protocol, port: u16) -> std::io::Result<Reservation> {
        let mut m = self.lock();
        if !m.ports.insert((proto, port)) {
            return Err(std::io::ErrorKind::AddrInUse.into());
        }
        m.log.push(format!("reserve {}/{port}", proto.as_str()));
        Ok(Reservation {
            _held: Some(Held::Fake(Hold {
                kernel: self.clone(),
                proto,
                port,
            })),
        })
    }
}

/// A port the fake holds until dropped.
#[derive(Debug)]
pub(super) struct Hold {
    kernel: FakeKernel,
    proto: Protocol,
    port: u16,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut m = self.kernel.lock();
        m.ports.remove(&(self.proto, self.port));
        m.log
            .push(format!("unreserve {}/{}", self.proto.as_str(), self.port));
    }
}

/// One namespace of the fake.
#[derive(Debug)]
struct FakeNs {
    name: String,
    kernel: FakeKernel,
}

impl FakeNs {
    /// Runs `f` on this namespace's state; `f` returns the command to record, if it changed
    /// something.
    fn change(&self, f: impl FnOnce(&mut Ns) -> Option<String>) -> Result<()> {
        let mut m = self.kernel.lock();
        let ns = m.ns.entry(self.name.clone()).or_default();
        if let Some(cmd) = f(ns) {
            let cmd = if self.name.is_empty() {
                cmd
            } else {
                let (tool, rest) = cmd.split_once(' ').unwrap_or((&cmd, ""));
                format!("{tool} -n {} {rest}", self.name)
            };
            m.log.push(cmd);
        }
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Ns) -> T) -> T {
        let mut m = self.kernel.lock();
        f(m.ns.entry(self.name.clone()).or_default())
    }

    fn link(&self, dev: &str, f: impl FnOnce(&mut Link) -> Option<String>) -> Result<()> {
        let dev = dev.to_string();
        self.change(move |ns| ns.links.get_mut(&dev).and_then(f))
    }
}

fn add_link(ns: &mut Ns, dev: &str, kind: &str, cmd: String) -> Option<String> {
    if ns.links.contains_key(dev) {
        return None;
    }
    ns.links.insert(
        dev.to_string(),
        Link {
            kind: kind.into(),
            mtu: 1500,
            ..Default::default()
        },
    );
    Some(cmd)
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Namespace for FakeNs {
    fn name(&self) -> &str {
        &self.name
    }

    fn link_exists<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<bool>> {
        ready(Ok(self.read(|ns| ns.links.contains_key(dev))))
    }

    fn links(&self) -> BoxFuture<'_, Result<Vec<LinkInfo>>> {
        ready(Ok(self.read(|ns| {
            ns.links
                .iter()
                .map(|(n, l)| LinkInfo {
                    name: n.clone(),
                    kind: l.kind.clone(),
                })
                .collect()
        })))
    }

    fn del_link<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            ns.links.remove(dev)?;
            ns.addrs.retain(|(d, ..)| d != dev);
            Some(format!("ip link del {dev}"))
        }))
    }

    fn ensure_bridge<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>> {
        ready(
            self.change(|ns| add_link(ns, dev, "bridge", format!("ip link add {dev} type bridge"))),
        )
    }

    fn ensure_veth<'a>(
        &'a self,
        outer: &'a str,
        inner: &'a str,
        peer_ns: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let mut m = self.kernel.lock();
        let here = m.ns.entry(self.name.clone()).or_default();
        let cmd = add_link(
            here,
            outer,
            "veth",
            format!("ip link add {outer} type veth peer name {inner} netns {peer_ns}"),
        );
        if let Some(cmd) = cmd {
            let peer = m.ns.entry(peer_ns.to_string()).or_default();
            add_link(peer, inner, "veth", String::new());
            let cmd = if self.name.is_empty() {
                cmd
            } else {
                cmd.replacen("ip ", &format!("ip -n {} ", self.name), 1)
            };
            m.log.push(cmd);
        }
        ready(Ok(()))
    }

    fn ensure_vxlan<'a>(&'a self, v: &'a Vxlan) -> BoxFuture<'a, Result<()>> {
        let cmd = format!("ip link add {} type vxlan id {}", v.name, v.vni);
        ready(self.change(|ns| add_link(ns, &v.name, "vxlan", cmd)))
    }

    fn move_link<'a>(&'a self, dev: &'a str, to: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut m = self.kernel.lock();
        let link = m.ns.get_mut(&self.name).and_then(|ns| ns.links.remove(dev));
        if let Some(link) = link {
            m.ns.entry(to.to_string())
                .or_default()
                .links
                .insert(dev.to_string(), link);
            m.log.push(format!("ip link set {dev} netns {to}"));
        }
        ready(Ok(()))
    }

    fn ensure_up<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<()>> {
        ready(self.link(dev, |l| {
            (!l.up).then(|| {
                l.up = true;
                format!("ip link set {dev} up")
            })
        }))
    }

    fn ensure_mtu<'a>(&'a self, dev: &'a str, mtu: u32) -> BoxFuture<'a, Result<()>> {
        ready(self.link(dev, |l| {
            (l.mtu != mtu).then(|| {
                l.mtu = mtu;
                format!("ip link set {dev} mtu {mtu}")
            })
        }))
    }

    fn ensure_master<'a>(&'a self, dev: &'a str, bridge: &'a str) -> BoxFuture<'a, Result<()>> {
        ready(self.link(dev, |l| {
            (l.master.as_deref() != Some(bridge)).then(|| {
                l.master = Some(bridge.to_string());
                format!("ip link set {dev} master {bridge}")
            })
        }))
    }

    fn ensure_mac<'a>(&'a self, dev: &'a str, mac: [u8; 6]) -> BoxFuture<'a, Result<()>> {
        ready(self.link(dev, |l| {
            (l.mac != Some(mac)).then(|| {
                l.mac = Some(mac);
                format!("ip link set {dev} address {}", format_mac(&mac))
            })
        }))
    }

    fn addrs<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<(Ipv4Addr, u8)>>> {
        ready(Ok(self.read(|ns| {
            ns.addrs
                .iter()
                .filter(|(d, ..)| d == dev)
                .map(|(_, a, p)| (*a, *p))
                .collect()
        })))
    }

    fn ensure_addr<'a>(
        &'a self,
        dev: &'a str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            ns.addrs
                .insert((dev.to_string(), addr, prefix))
                .then(|| format!("ip addr add {addr}/{prefix} dev {dev}"))
        }))
    }

    fn del_addr<'a>(
        &'a self,
        dev: &'a str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            ns.addrs
                .remove(&(dev.to_string(), addr, prefix))
                .then(|| format!("ip addr del {addr}/{prefix} dev {dev}"))
        }))
    }

    fn ensure_default_route(&self, gateway: Ipv4Addr) -> BoxFuture<'_, Result<()>> {
        ready(self.change(|ns| {
            (ns.default_route != Some(gateway)).then(|| {
                ns.default_route = Some(gateway);
                format!("ip route replace default via {gateway}")
            })
        }))
    }

    fn fdb<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<Fdb>>> {
        ready(Ok(self.read(|ns| {
            ns.fdb
                .iter()
                .filter(|(d, ..)| d == dev)
                .map(|(_, m, a)| (*m, *a))
                .collect()
        })))
    }

    fn ensure_flood<'a>(&'a self, dev: &'a str, dst: Ipv4Addr) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            ns.fdb
                .insert((dev.to_string(), [0; 6], dst))
                .then(|| format!("bridge fdb append 00:00:00:00:00:00 dev {dev} dst {dst}"))
        }))
    }

    fn ensure_fdb<'a>(
        &'a self,
        dev: &'a str,
        mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            // `replace`: one entry per MAC.
            let had: Vec<_> = ns
                .fdb
                .iter()
                .filter(|(d, m, _)| d == dev && *m == mac)
                .cloned()
                .collect();
            if had == [(dev.to_string(), mac, dst)] {
                return None;
            }
            for h in had {
                ns.fdb.remove(&h);
            }
            ns.fdb.insert((dev.to_string(), mac, dst));
            Some(format!(
                "bridge fdb replace {} dev {dev} dst {dst}",
                format_mac(&mac)
            ))
        }))
    }

    fn del_fdb<'a>(
        &'a self,
        dev: &'a str,
        mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            ns.fdb
                .remove(&(dev.to_string(), mac, dst))
                .then(|| format!("bridge fdb del {} dev {dev} dst {dst}", format_mac(&mac)))
        }))
    }

    fn neighbours<'a>(&'a self, dev: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>>> {
        ready(Ok(self.read(|ns| {
            ns.neigh
                .keys()
                .filter(|(d, _)| d == dev)
                .map(|(_, ip)| *ip)
                .collect()
        })))
    }

    fn ensure_neighbour<'a>(
        &'a self,
        dev: &'a str,
        ip: Ipv4Addr,
        mac: [u8; 6],
    ) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            (ns.neigh.insert((dev.to_string(), ip), mac) != Some(mac)).then(|| {
                format!(
                    "ip neigh replace {ip} lladdr {} dev {dev} nud permanent",
                    format_mac(&mac)
                )
            })
        }))
    }

    fn del_neighbour<'a>(&'a self, dev: &'a str, ip: Ipv4Addr) -> BoxFuture<'a, Result<()>> {
        ready(self.change(|ns| {
            ns.neigh
                .remove(&(dev.to_string(), ip))
                .map(|_| format!("ip neigh del {ip} dev {dev}"))
        }))
    }

    fn apply_nft<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<()>> {
        let json = batch.to_json();
        let tables: BTreeSet<String> = json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("add")?.get("table")?.get("name")?.as_str())
            .map(str::to_string)
            .collect();
        let tables: Vec<String> = tables.into_iter().collect();
        let rules = json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c.get("add").and_then(|a| a.get("rule")).is_some())
            .count();
        ready(self.change(|ns| {
            ns.nft = Some(json);
            Some(format!(
                "nft -f (table {}: {rules} rules)",
                tables.join(",")
            ))
        }))
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.change(|ns| {
            (ns.sysctl
                .insert(key.to_string(), value.to_string())
                .as_deref()
                != Some(value))
            .then(|| format!("sysctl -w {key}={value}"))
        })
    }

    fn open_lb(
        &self,
        choice: LbChoice,
        _config: LbConfig,
    ) -> BoxFuture<'_, Result<Box<dyn LoadBalancer>>> {
        let kind = match choice {
            LbChoice::Nftables => LbKind::Nftables,
            _ => self.kernel.lb_kind.unwrap_or(LbKind::Nftables),
        };
        let lb = balancer::FakeLb {
            ns: FakeNs {
                name: self.name.clone(),
                kernel: self.kernel.clone(),
            },
            kind,
        };
        ready(Ok(Box::new(lb) as Box<dyn LoadBalancer>))
    }

    fn set_ipvs_tcp_idle(&self, idle: Duration) -> Result<()> {
        self.change(|_| Some(format!("ipvsadm --set {} 0 0", idle.as_secs())))
    }
}
