//! Links: `ip link add|set|del|show`.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

use futures_util::TryStreamExt;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkMessageBuilder, LinkUnspec};

use super::{format_mac, Error, Handle, Result};
use crate::names::check_ifname;
use crate::netns::NetNs;

/// A link as `ip -d link show` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Kind (`veth`, `bridge`, `vxlan`…); empty for physical devices and `lo`.
    pub kind: String,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Index of the bridge it is a port of.
    pub master: Option<u32>,
    /// MAC address, `aa:bb:…`.
    pub mac: String,
    /// VNI, for VXLAN devices.
    pub vni: Option<u32>,
}

impl Link {
    fn from_msg(m: &LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            kind: String::new(),
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            master: None,
            mac: String::new(),
            vni: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Controller(c) => l.master = Some(*c),
                LinkAttribute::Address(mac) => l.mac = format_mac(mac),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => l.kind = k.to_string(),
                            LinkInfo::Data(InfoData::Vxlan(v)) => {
                                l.vni = v.iter().find_map(|x| match x {
                                    InfoVxlan::Id(id) => Some(*id),
                                    _ => None,
                                })
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

/// A VXLAN device as `ip link add NAME type vxlan id VNI dstport PORT local IP dev DEV
/// nolearning proxy` makes it. No multicast group: peers are programmed as FDB entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vxlan {
    /// Device name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP port (4789).
    pub port: u16,
    /// Source address of the tunnel.
    pub local: Option<Ipv4Addr>,
    /// Underlay device index (`dev`).
    pub dev: Option<u32>,
    /// Learn remote MACs from traffic (off for static FDB).
    pub learning: bool,
    /// Answer ARP from the neighbour table (`proxy`).
    pub proxy: bool,
    /// Report misses (`l2miss l3miss`).
    pub misses: bool,
    /// MTU (underlay MTU − 50).
    pub mtu: u32,
}

impl Vxlan {
    /// The defaults an overlay uses: port 4789, no learning, proxy ARP, MTU 1450.
    pub fn new(name: &str, vni: u32) -> Vxlan {
        Vxlan {
            name: name.into(),
            vni,
            port: 4789,
            local: None,
            dev: None,
            learning: false,
            proxy: true,
            misses: false,
            mtu: 1450,
        }
    }
}

impl Handle {
    /// `ip link show`: every link, by index.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self
            .inner
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::from_rt("ip link show", e))?;
        let mut links: Vec<Link> = msgs.iter().map(Link::from_msg).collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// `ip link show NAME`, or `None` when there is no such link.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        check_ifname(name)?;
        let r: std::result::Result<Vec<LinkMessage>, _> = self
            .inner
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_collect()
            .await;
        match r {
            Ok(msgs) => Ok(msgs.first().map(Link::from_msg)),
            Err(e) => match Error::from_rt(format!("ip link show {name}"), e) {
                Error::Kernel { errno, .. } if errno == libc::ENODEV => Ok(None),
                e => Err(e),
            },
        }
    }

    /// `ip link show NAME`, failing when it does not exist.
    pub async fn link_required(&self, name: &str) -> Result<Link> {
        self.link(name)
            .await?
            .ok_or_else(|| Error::NoDevice(name.into()))
    }

    async fn add(&self, op: &str, msg: LinkMessage) -> Result<()> {
        self.ack(
            op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
    }

    async fn check_kind(&self, name: &str, wanted: &str) -> Result<Option<Link>> {
        match self.link(name).await? {
            Some(l) if l.kind == wanted => Ok(Some(l)),
            Some(l) => Err(Error::WrongKind {
                name: name.into(),
                found: l.kind,
                wanted: wanted.into(),
            }),
            None => Ok(None),
        }
    }

    /// `ip link add NAME type bridge` unless a bridge of that name exists.
    pub async fn ensure_bridge(&self, name: &str) -> Result<bool> {
        check_ifname(name)?;
        if self.check_kind(name, "bridge").await?.is_some() {
            return Ok(false);
        }
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge)
            .name(name)
            .build();
        self.add(&format!("ip link add {name} type bridge"), msg)
            .await?;
        Ok(true)
    }

    /// `ip link add NAME type veth peer name PEER [netns PEER_NS]` unless `NAME` exists as a
    /// veth. With `peer_ns` the peer is created straight in that namespace, so no device of
    /// this pair ever appears anywhere else.
    pub async fn ensure_veth(
        &self,
        name: &str,
        peer: &str,
        peer_ns: Option<&NetNs>,
    ) -> Result<bool> {
        check_ifname(name)?;
        check_ifname(peer)?;
        if self.check_kind(name, "veth").await?.is_some() {
            return Ok(false);
        }
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer);
        if let Some(ns) = peer_ns {
            peer_msg = peer_msg.setns_by_fd(ns.as_fd().as_raw_fd());
        }
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(name)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        self.add(
            &format!("ip link add {name} type veth peer name {peer}"),
            msg,
        )
        .await?;
        Ok(true)
    }

    /// `ip link add NAME type vxlan id VNI dstport PORT [local IP] [dev DEV] nolearning proxy`
    /// unless a VXLAN device of that name and VNI exists (one with another VNI is replaced).
    pub async fn ensure_vxlan(&self, v: &Vxlan) -> Result<bool> {
        check_ifname(&v.name)?;
        if let Some(l) = self.check_kind(&v.name, "vxlan").await? {
            if l.vni == Some(v.vni) {
                return Ok(false);
            }
            self.del_link(&v.name).await?;
        }
        let mut info = vec![
            InfoVxlan::Id(v.vni),
            InfoVxlan::Port(v.port),
            InfoVxlan::Learning(v.learning),
            InfoVxlan::Proxy(v.proxy),
            InfoVxlan::L2Miss(v.misses),
            InfoVxlan::L3Miss(v.misses),
        ];
        if let Some(local) = v.local {
            info.push(InfoVxlan::Local(local));
        }
        if let Some(dev) = v.dev {
            info.push(InfoVxlan::Link(dev));
        }
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Vxlan)
            .name(v.name.clone())
            .mtu(v.mtu)
            .set_info_data(InfoData::Vxlan(info))
            .build();
        self.add(
            &format!("ip link add {} type vxlan id {}", v.name, v.vni),
            msg,
        )
        .await?;
        Ok(true)
    }

    /// `ip link set NAME up`; no-op when already up.
    pub async fn ensure_up(&self, name: &str) -> Result<bool> {
        let l = self.link_required(name).await?;
        if l.up {
            return Ok(false);
        }
        self.set(name, LinkUnspec::new_with_index(l.index).up().build())
            .await?;
        Ok(true)
    }

    /// `ip link set NAME down`.
    pub async fn set_down(&self, name: &str) -> Result<()> {
        let l = self.link_required(name).await?;
        self.set(name, LinkUnspec::new_with_index(l.index).down().build())
            .await
    }

    /// `ip link set NAME mtu MTU`; no-op when it has that MTU.
    pub async fn ensure_mtu(&self, name: &str, mtu: u32) -> Result<bool> {
        let l = self.link_required(name).await?;
        if l.mtu == mtu {
            return Ok(false);
        }
        self.set(name, LinkUnspec::new_with_index(l.index).mtu(mtu).build())
            .await?;
        Ok(true)
    }

    /// `ip link set NAME master BRIDGE`; no-op when already a port of it.
    pub async fn ensure_master(&self, name: &str, bridge: &str) -> Result<bool> {
        let l = self.link_required(name).await?;
        let b = self.link_required(bridge).await?;
        if l.master == Some(b.index) {
            return Ok(false);
        }
        let msg = LinkUnspec::new_with_index(l.index)
            .controller(b.index)
            .build();
        self.set(name, msg).await?;
        Ok(true)
    }

    /// `ip link set NAME address MAC`; no-op when it has it.
    pub async fn ensure_mac(&self, name: &str, mac: [u8; 6]) -> Result<bool> {
        let l = self.link_required(name).await?;
        if l.mac == format_mac(&mac) {
            return Ok(false);
        }
        let msg = LinkUnspec::new_with_index(l.index)
            .address(mac.to_vec())
            .build();
        self.set(name, msg).await?;
        Ok(true)
    }

    /// `ip link set NAME name NEW` (the link must be down).
    pub async fn rename(&self, name: &str, new: &str) -> Result<()> {
        check_ifname(new)?;
        let l = self.link_required(name).await?;
        self.set(name, LinkUnspec::new_with_index(l.index).name(new).build())
            .await
    }

    /// `ip link set NAME netns NS`: moves the link into another namespace.
    pub async fn move_to(&self, name: &str, ns: &NetNs) -> Result<()> {
        let l = self.link_required(name).await?;
        let msg = LinkUnspec::new_with_index(l.index)
            .setns_by_fd(ns.as_fd().as_raw_fd())
            .build();
        self.set(name, msg).await
    }

    async fn set(&self, name: &str, msg: LinkMessage) -> Result<()> {
        self.ack(
            &format!("ip link set {name}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .await
    }

    /// `ip link del NAME`; absent is not an error (returns `false`).
    pub async fn del_link(&self, name: &str) -> Result<bool> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        match self.inner.link().del(l.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) => match Error::from_rt(format!("ip link del {name}"), e) {
                Error::Kernel { errno, .. } if errno == libc::ENODEV => Ok(false),
                e => Err(e),
            },
        }
    }
}
