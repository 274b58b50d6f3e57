//! Addresses: `ip addr add|del|show`.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::{Error, Handle, Result};

/// An IPv4 address on a link, as `ip -4 addr show` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Addr {
    /// Interface index.
    pub index: u32,
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

fn from_msg(m: &AddressMessage) -> Option<Addr> {
    m.attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(v4)) => Some(*v4),
            _ => None,
        })
        .or_else(|| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(v4)) => Some(*v4),
                _ => None,
            })
        })
        .map(|addr| Addr {
            index: m.header.index,
            addr,
            prefix: m.header.prefix_len,
        })
}

impl Handle {
    /// `ip -4 addr show`: every IPv4 address, sorted.
    pub async fn addrs(&self) -> Result<Vec<Addr>> {
        let msgs: Vec<AddressMessage> = self
            .inner
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::from_rt("ip addr show", e))?;
        let mut out: Vec<Addr> = msgs.iter().filter_map(from_msg).collect();
        out.sort();
        Ok(out)
    }

    /// `ip addr add ADDR/PREFIX dev NAME` unless the link has it.
    pub async fn ensure_addr(&self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<bool> {
        if prefix > 32 {
            return Err(Error::Invalid(format!("bad prefix length /{prefix}")));
        }
        let l = self.link_required(name).await?;
        let have = self.addrs().await?;
        if have
            .iter()
            .any(|a| a.index == l.index && a.addr == addr && a.prefix == prefix)
        {
            return Ok(false);
        }
        self.inner
            .address()
            .add(l.index, IpAddr::V4(addr), prefix)
            .execute()
            .await
            .map_err(|e| Error::from_rt(format!("ip addr add {addr}/{prefix} dev {name}"), e))?;
        Ok(true)
    }

    /// `ip addr del ADDR/PREFIX dev NAME`; absent is not an error.
    pub async fn del_addr(&self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<bool> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        let msgs: Vec<AddressMessage> = self
            .inner
            .address()
            .get()
            .set_link_index_filter(l.index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::from_rt("ip addr show", e))?;
        for m in msgs {
            if from_msg(&m)
                == Some(Addr {
                    index: l.index,
                    addr,
                    prefix,
                })
            {
                self.inner.address().del(m).execute().await.map_err(|e| {
                    Error::from_rt(format!("ip addr del {addr}/{prefix} dev {name}"), e)
                })?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}
