//! The lab's network: an underlay namespace with a bridge, one namespace per node plugged into
//! it by a veth, and the host's own endpoint on it. Only the lab's subnet (inside
//! 198.18.0.0/15) is ever configured, only in namespaces the lab made and on its one host link;
//! no route, NAT or forwarding toward the host's real interfaces is ever added.

use super::config::{LabSpec, NodePlan, HOST_PEER, MTU, NODE_IFNAME, UNDERLAY_BRIDGE, UNDERLAY_NS};
use super::state::LabDir;
use anyhow::Context;
use shoal_netlib::netns::NetNs;
use shoal_netlib::rt::Handle;
use shoal_netlib::sysctl;
use shoal_proto::model::Ipv4Net;

/// The underlay namespace and a handle on it.
pub struct Underlay {
    /// The namespace.
    pub ns: NetNs,
    /// rtnetlink inside it.
    pub rt: Handle,
}

/// `ip netns add ul; ip -n ul link add ulbr0 type bridge; ip -n ul link set ulbr0 up`.
/// Forwarding stays off there (the bridge switches frames; the namespace routes nothing), and
/// so does br_netfilter: a switch does not run the frames it forwards through netfilter.
pub async fn make_underlay(dir: &LabDir) -> anyhow::Result<Underlay> {
    let ns = NetNs::create(&dir.netns(), UNDERLAY_NS).context("creating the underlay namespace")?;
    let rt = Handle::in_ns(&ns)?;
    rt.ensure_bridge(UNDERLAY_BRIDGE).await?;
    rt.ensure_up(UNDERLAY_BRIDGE).await?;
    rt.ensure_up("lo").await?;
    sysctl::set(Some(&ns), "net.ipv4.ip_forward", "0")?;
    for key in sysctl::BR_NETFILTER {
        // Best effort: a kernel without br_netfilter has no such keys (and no detour).
        let _ = sysctl::set(Some(&ns), key, "0");
    }
    Ok(Underlay { ns, rt })
}

/// Plugs `veth` (already in the underlay) into the bridge, MTU 1500, up.
async fn plug(ul: &Underlay, veth: &str) -> anyhow::Result<()> {
    ul.rt.ensure_mtu(veth, MTU).await?;
    ul.rt.ensure_master(veth, UNDERLAY_BRIDGE).await?;
    ul.rt.ensure_up(veth).await?;
    Ok(())
}

/// A node's namespace: `lo` up, and `eth0` with `.i/prefix`, whose peer `n<m|w><k>` is a port of
/// the underlay bridge. The veth is created from the underlay with its peer straight in the
/// node's namespace, so no device of the pair ever appears in the host namespace.
pub async fn make_node(
    dir: &LabDir,
    ul: &Underlay,
    node: &NodePlan,
    subnet: Ipv4Net,
) -> anyhow::Result<NetNs> {
    let ns = NetNs::create(&dir.netns(), &node.name)
        .with_context(|| format!("creating the namespace of {}", node.name))?;
    ul.rt
        .ensure_veth(&node.link, NODE_IFNAME, Some(&ns))
        .await?;
    plug(ul, &node.link).await?;
    let rt = Handle::in_ns(&ns)?;
    rt.ensure_up("lo").await?;
    rt.ensure_mtu(NODE_IFNAME, MTU).await?;
    rt.ensure_addr(NODE_IFNAME, node.address, subnet.prefix())
        .await?;
    rt.ensure_up(NODE_IFNAME).await?;
    Ok(ns)
}

/// The host's endpoint: `swlab-<name>` in the host namespace with `.254/prefix`, its peer a
/// port of the underlay bridge. The kernel adds the subnet's connected route with the address;
/// nothing else is routed.
pub async fn make_host_endpoint(spec: &LabSpec, ul: &Underlay) -> anyhow::Result<()> {
    let link = super::config::host_link(&spec.name);
    let host = Handle::new()?;
    host.ensure_veth(&link, HOST_PEER, Some(&ul.ns)).await?;
    plug(ul, HOST_PEER).await?;
    host.ensure_mtu(&link, MTU).await?;
    host.ensure_addr(&link, spec.host_address(), spec.subnet.prefix())
        .await?;
    host.ensure_up(&link).await?;
    Ok(())
}

/// `ip link del swlab-<name>` in the host namespace; `false` when it was not there.
pub async fn del_host_endpoint(lab: &str) -> anyhow::Result<bool> {
    let host = Handle::new()?;
    Ok(host.del_link(&super::config::host_link(lab)).await?)
}

/// Whether the host namespace has a link called `name`.
pub fn host_has_link(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// The host namespace's IPv4 networks that overlap `subnet`, as `(interface, network)`.
pub async fn host_overlaps(subnet: Ipv4Net) -> anyhow::Result<Vec<(String, Ipv4Net)>> {
    let host = Handle::new()?;
    let links = host.links().await?;
    let mut out = Vec::new();
    for a in host.addrs().await? {
        let Some(net) = Ipv4Net::new(a.addr, a.prefix).map(Ipv4Net::trunc) else {
            continue;
        };
        if net.overlaps(subnet) {
            let name = links
                .iter()
                .find(|l| l.index == a.index)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| format!("#{}", a.index));
            out.push((name, net));
        }
    }
    Ok(out)
}
