//! Routes: `ip route add|del|show` (IPv4, main table).

use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::{Error, Handle, Result};

/// A route of the main table, as `ip route show` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// Destination network (`0.0.0.0/0` = default).
    pub dst: Ipv4Addr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Next hop, if any.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
}

fn from_msg(m: &RouteMessage) -> Option<Route> {
    if m.header.address_family != AddressFamily::Inet
        || m.header.table != RouteHeader::RT_TABLE_MAIN
        || m.header.kind != RouteType::Unicast
    {
        return None;
    }
    let mut r = Route {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix: m.header.destination_prefix_length,
        gateway: None,
        oif: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => r.dst = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => r.gateway = Some(*g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            _ => {}
        }
    }
    Some(r)
}

impl Handle {
    /// `ip -4 route show table main` (unicast routes), sorted.
    pub async fn routes(&self) -> Result<Vec<Route>> {
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<RouteMessage> = self
            .inner
            .route()
            .get(filter)
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::from_rt("ip route show", e))?;
        let mut out: Vec<Route> = msgs.iter().filter_map(from_msg).collect();
        out.sort();
        Ok(out)
    }

    /// `ip route add DST/PREFIX [via GW] [dev NAME]` unless that route exists; `ip route
    /// replace` when a route to the same destination exists with another next hop.
    pub async fn ensure_route(
        &self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        dev: Option<&str>,
    ) -> Result<bool> {
        let oif = match dev {
            Some(d) => Some(self.link_required(d).await?.index),
            None => None,
        };
        let routes = self.routes().await?;
        let existing = routes.iter().find(|r| r.dst == dst && r.prefix == prefix);
        if let Some(r) = existing {
            if r.gateway == gateway && (oif.is_none() || r.oif == oif) {
                return Ok(false);
            }
        }
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dst, prefix);
        if let Some(g) = gateway {
            b = b.gateway(g);
        }
        if let Some(i) = oif {
            b = b.output_interface(i);
        }
        let op = format!("ip route replace {dst}/{prefix}");
        let req = self.inner.route().add(b.build());
        let req = if existing.is_some() {
            req.replace()
        } else {
            req
        };
        req.execute().await.map_err(|e| Error::from_rt(op, e))?;
        Ok(true)
    }

    /// `ip route add default via GW`.
    pub async fn ensure_default_route(&self, gateway: Ipv4Addr) -> Result<bool> {
        self.ensure_route(Ipv4Addr::UNSPECIFIED, 0, Some(gateway), None)
            .await
    }

    /// `ip route del DST/PREFIX`; absent is not an error.
    pub async fn del_route(&self, dst: Ipv4Addr, prefix: u8) -> Result<bool> {
        if !self
            .routes()
            .await?
            .iter()
            .any(|r| r.dst == dst && r.prefix == prefix)
        {
            return Ok(false);
        }
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, prefix)
            .build();
        self.inner
            .route()
            .del(msg)
            .execute()
            .await
            .map_err(|e| Error::from_rt(format!("ip route del {dst}/{prefix}"), e))?;
        Ok(true)
    }
}
