//! Permanent neighbours (`ip neigh add … nud permanent`) and bridge FDB entries
//! (`bridge fdb add|append … dst … self permanent`): how an overlay's peers are programmed
//! statically, with no learning and no multicast.

use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{format_mac, Error, Handle, Result};

/// A permanent IPv4 neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neighbour {
    /// Interface index.
    pub index: u32,
    /// The IP address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: [u8; 6],
}

/// A `self` FDB entry of a VXLAN device: frames for `mac` go to the VTEP at `dst`. The all-zero
/// MAC is the flood list (one entry per remote VTEP, added with `append`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdbEntry {
    /// Interface index of the VXLAN device.
    pub index: u32,
    /// The MAC.
    pub mac: [u8; 6],
    /// The remote VTEP.
    pub dst: Ipv4Addr,
}

fn mac6(v: &[u8]) -> Option<[u8; 6]> {
    v.try_into().ok()
}

fn message(
    family: AddressFamily,
    index: u32,
    flags: NeighbourFlags,
    attrs: Vec<NeighbourAttribute>,
) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = flags;
    m.header.kind = RouteType::Unspec;
    m.attributes = attrs;
    m
}

impl Handle {
    async fn dump_neigh(&self, family: AddressFamily) -> Result<Vec<NeighbourMessage>> {
        self.inner
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::from_rt("ip neigh show", e))
    }

    /// `ip -4 neigh show nud permanent`, sorted.
    pub async fn neighbours(&self) -> Result<Vec<Neighbour>> {
        let mut out: Vec<Neighbour> = self
            .dump_neigh(AddressFamily::Inet)
            .await?
            .iter()
            .filter(|m| m.header.state == NeighbourState::Permanent)
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                })?;
                let mac = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(mac) => mac6(mac),
                    _ => None,
                })?;
                Some(Neighbour {
                    index: m.header.ifindex,
                    ip,
                    mac,
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// `ip neigh replace IP lladdr MAC dev NAME nud permanent` unless that entry exists.
    pub async fn ensure_neighbour(&self, name: &str, ip: Ipv4Addr, mac: [u8; 6]) -> Result<bool> {
        let l = self.link_required(name).await?;
        let want = Neighbour {
            index: l.index,
            ip,
            mac,
        };
        if self.neighbours().await?.contains(&want) {
            return Ok(false);
        }
        let m = message(
            AddressFamily::Inet,
            l.index,
            NeighbourFlags::empty(),
            vec![
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)),
                NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
            ],
        );
        let op = format!(
            "ip neigh replace {ip} lladdr {} dev {name} nud permanent",
            format_mac(&mac)
        );
        self.ack(
            &op,
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await?;
        Ok(true)
    }

    /// `ip neigh del IP dev NAME`; absent is not an error.
    pub async fn del_neighbour(&self, name: &str, ip: Ipv4Addr) -> Result<bool> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        if !self
            .neighbours()
            .await?
            .iter()
            .any(|n| n.index == l.index && n.ip == ip)
        {
            return Ok(false);
        }
        let m = message(
            AddressFamily::Inet,
            l.index,
            NeighbourFlags::empty(),
            vec![NeighbourAttribute::Destination(NeighbourAddress::Inet(ip))],
        );
        self.ack(
            &format!("ip neigh del {ip} dev {name}"),
            RouteNetlinkMessage::DelNeighbour(m),
            0,
        )
        .await?;
        Ok(true)
    }

    /// `bridge fdb show` for `self` entries with a remote destination (VXLAN), sorted.
    pub async fn fdb(&self) -> Result<Vec<FdbEntry>> {
        let mut out: Vec<FdbEntry> = self
            .dump_neigh(AddressFamily::Bridge)
            .await?
            .iter()
            .filter_map(|m| {
                // In AF_BRIDGE messages the parser cannot tell NDA_DST's family: 4 bytes = IPv4.
                let dst = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
                    }
                    _ => None,
                })?;
                let mac = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(mac) => mac6(mac),
                    _ => None,
                })?;
                Some(FdbEntry {
                    index: m.header.ifindex,
                    mac,
                    dst,
                })
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn fdb_message(index: u32, mac: [u8; 6], dst: Ipv4Addr) -> NeighbourMessage {
        message(
            AddressFamily::Bridge,
            index,
            NeighbourFlags::Own,
            vec![
                NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
                NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)),
            ],
        )
    }

    /// `bridge fdb replace MAC dev NAME dst DST self permanent` (a unicast MAC lives behind one
    /// VTEP) unless that entry exists.
    pub async fn ensure_fdb(&self, name: &str, mac: [u8; 6], dst: Ipv4Addr) -> Result<bool> {
        let l = self.link_required(name).await?;
        if self.fdb().await?.contains(&FdbEntry {
            index: l.index,
            mac,
            dst,
        }) {
            return Ok(false);
        }
        let op = format!(
            "bridge fdb replace {} dev {name} dst {dst} self permanent",
            format_mac(&mac)
        );
        let msg = RouteNetlinkMessage::NewNeighbour(Self::fdb_message(l.index, mac, dst));
        self.ack(&op, msg, NLM_F_CREATE | NLM_F_REPLACE).await?;
        Ok(true)
    }

    /// `bridge fdb append 00:00:00:00:00:00 dev NAME dst DST self permanent`: adds `dst` to the
    /// flood list (broadcast and unknown unicast) unless it is there.
    pub async fn ensure_flood(&self, name: &str, dst: Ipv4Addr) -> Result<bool> {
        let l = self.link_required(name).await?;
        let zero = [0u8; 6];
        if self.fdb().await?.contains(&FdbEntry {
            index: l.index,
            mac: zero,
            dst,
        }) {
            return Ok(false);
        }
        let op = format!("bridge fdb append 00:00:00:00:00:00 dev {name} dst {dst} self permanent");
        let msg = RouteNetlinkMessage::NewNeighbour(Self::fdb_message(l.index, zero, dst));
        self.ack(&op, msg, NLM_F_CREATE | NLM_F_APPEND).await?;
        Ok(true)
    }

    /// `bridge fdb del MAC dev NAME dst DST self`; absent is not an error.
    pub async fn del_fdb(&self, name: &str, mac: [u8; 6], dst: Ipv4Addr) -> Result<bool> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        if !self.fdb().await?.contains(&FdbEntry {
            index: l.index,
            mac,
            dst,
        }) {
            return Ok(false);
        }
        let op = format!(
            "bridge fdb del {} dev {name} dst {dst} self",
            format_mac(&mac)
        );
        self.ack(
            &op,
            RouteNetlinkMessage::DelNeighbour(Self::fdb_message(l.index, mac, dst)),
            0,
        )
        .await?;
        Ok(true)
    }
}
