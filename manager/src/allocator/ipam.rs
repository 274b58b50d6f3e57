//! IPv4 address management: subnets cut from a pool, addresses handed out serially inside a
//! subnet. Pure functions over what the store already holds (no private mirror).

use serde::{Deserialize, Serialize};
use shoal_proto::model::{Ipv4Net, Ipv4NetError};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Why a subnet did not parse. It can be a store refusal, so it crosses the wire between
/// managers inside [`crate::store::Refusal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum SubnetError {
    /// No `/`.
    #[error("invalid subnet {0:?}: expected CIDR such as 10.0.9.0/24")]
    NotCidr(String),
    /// The part before `/` is not an IPv4 address.
    #[error("invalid subnet {input:?}: {addr:?} is not an IPv4 address")]
    BadAddress {
        /// What was given.
        input: String,
        /// Its address part.
        addr: String,
    },
    /// The prefix length is not 0-32.
    #[error("invalid subnet {0:?}: prefix length must be 0-32")]
    BadPrefix(String),
    /// Host bits are set.
    #[error("invalid subnet {input:?}: did you mean {network}/{prefix}?")]
    HostBits {
        /// What was given.
        input: String,
        /// The network address.
        network: Ipv4Addr,
        /// The prefix length.
        prefix: u8,
    },
}

impl From<Ipv4NetError> for SubnetError {
    fn from(e: Ipv4NetError) -> SubnetError {
        match e {
            Ipv4NetError::NotCidr { input } => SubnetError::NotCidr(input),
            Ipv4NetError::BadAddress { input, addr } => SubnetError::BadAddress { input, addr },
            Ipv4NetError::HostBits { input, network } => SubnetError::HostBits {
                input,
                network: network.addr(),
                prefix: network.prefix(),
            },
            Ipv4NetError::BadPrefix { input } | Ipv4NetError::PrefixTooLong { input, .. } => {
                SubnetError::BadPrefix(input)
            }
            // `Ipv4NetError` is non_exhaustive; a new refusal still names the input.
            other => SubnetError::NotCidr(other.to_string()),
        }
    }
}

/// An IPv4 network as the managers hand them out: an [`Ipv4Net`] with no host bits set.
///
/// A thin view of [`Ipv4Net`] (which does the parsing and the arithmetic) whose fields stay
/// public because `store/state.rs` reads `prefix`; made only by [`Subnet::parse`] and
/// [`next_subnet`], so `prefix` is at most 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subnet {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl From<Ipv4Net> for Subnet {
    fn from(n: Ipv4Net) -> Subnet {
        Subnet {
            addr: n.addr(),
            prefix: n.prefix(),
        }
    }
}

impl Subnet {
    /// Parses `a.b.c.d/n`; the address must be the network address.
    pub fn parse(s: &str) -> Result<Subnet, SubnetError> {
        Ok(Ipv4Net::parse_network(s)?.into())
    }

    /// The shared type.
    pub fn net(self) -> Ipv4Net {
        Ipv4Net::new(self.addr, self.prefix.min(32)).expect("prefix clamped to 32")
    }

    /// The network address.
    pub fn network(self) -> Ipv4Addr {
        self.net().network()
    }

    /// Number of addresses, network and broadcast included.
    pub fn size(self) -> u64 {
        self.net().size()
    }

    /// Whether two subnets share any address.
    pub fn overlaps(self, other: Subnet) -> bool {
        self.net().overlaps(other.net())
    }

    /// Whether `ip` lies inside.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        self.net().contains(ip)
    }

    /// The host at `offset` from the network address.
    pub fn host(self, offset: u32) -> Ipv4Addr {
        self.net().host(offset)
    }

    /// The gateway: first host.
    pub fn gateway(self) -> Ipv4Addr {
        self.host(1)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.net().fmt(f)
    }
}

/// The first `size`-prefixed subnet of `pool` that overlaps none of `used`.
pub fn next_subnet(pool: Subnet, size: u8, used: &[Subnet]) -> Option<Subnet> {
    if size < pool.prefix || size > 30 {
        return None;
    }
    let count = 1u64 << (size - pool.prefix);
    let step = 1u64 << (32 - size);
    (0..count)
        .map(|i| Subnet {
            addr: Ipv4Addr::from((u64::from(u32::from(pool.addr)) + i * step) as u32),
            prefix: size,
        })
        .find(|cand| used.iter().all(|u| !u.overlaps(*cand)))
}

/// Hands out the next free host address after `cursor` (wrapping once), skipping the network
/// address, the gateway and the broadcast address. Returns the address and the new cursor.
pub fn next_host(
    subnet: Subnet,
    cursor: u32,
    used: &BTreeSet<Ipv4Addr>,
) -> Option<(Ipv4Addr, u32)> {
    let last = (subnet.size() - 2) as u32; // last usable offset (broadcast excluded)
    if last < 2 {
        return None;
    }
    let first = 2; // .0 network, .1 gateway
    let start = if cursor < first || cursor >= last {
        first
    } else {
        cursor + 1
    };
    let span = last - first + 1;
    (0..span)
        .map(|i| first + (start - first + i) % span)
        .map(|off| (subnet.host(off), off))
        .find(|(ip, _)| !used.contains(ip))
}

/// The address of `a.b.c.d/len` (or of a bare `a.b.c.d`).
pub fn addr_of(cidr: &str) -> Option<Ipv4Addr> {
    Ipv4Net::addr_of(cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_from_pool_in_order_and_reused() {
        let pool = Subnet::parse("10.0.0.0/8").unwrap();
        let a = next_subnet(pool, 24, &[]).unwrap();
        assert_eq!(a.to_string(), "10.0.0.0/24");
        let b = next_subnet(pool, 24, &[a]).unwrap();
        assert_eq!(b.to_string(), "10.0.1.0/24");
        let user = Subnet::parse("10.0.2.0/23").unwrap();
        assert_eq!(
            next_subnet(pool, 24, &[a, b, user]).unwrap().to_string(),
            "10.0.4.0/24"
        );
        assert_eq!(
            next_subnet(pool, 24, &[b]).unwrap(),
            a,
            "freed subnets are reused"
        );
        let tiny = Subnet::parse("10.0.0.0/24").unwrap();
        assert_eq!(next_subnet(tiny, 24, &[a]), None);
    }

    #[test]
    fn parse_and_overlap() {
        assert_eq!(
            Subnet::parse("10.0.0.1/24").unwrap_err().to_string(),
            "invalid subnet \"10.0.0.1/24\": did you mean 10.0.0.0/24?"
        );
        assert_eq!(
            Subnet::parse("10.0.0.0").unwrap_err().to_string(),
            "invalid subnet \"10.0.0.0\": expected CIDR such as 10.0.9.0/24"
        );
        assert!(Subnet::parse("10.0.0.0").is_err());
        assert!(Subnet::parse("10.0.0.0/33").is_err());
        for (input, text) in [
            (
                "10.0.0/24",
                "invalid subnet \"10.0.0/24\": \"10.0.0\" is not an IPv4 address",
            ),
            (
                "10.0.0.0/33",
                "invalid subnet \"10.0.0.0/33\": prefix length must be 0-32",
            ),
            (
                "10.0.0.0/x",
                "invalid subnet \"10.0.0.0/x\": prefix length must be 0-32",
            ),
            (
                " 10.0.0.0/24",
                "invalid subnet \" 10.0.0.0/24\": \" 10.0.0.0\" is not an IPv4 address",
            ),
        ] {
            let e = Subnet::parse(input).unwrap_err();
            assert_eq!(e.to_string(), text);
            // The wire error says what the shared parser says.
            assert_eq!(input.parse::<Ipv4Net>().unwrap_err().to_string(), text);
        }
        assert_eq!(
            Subnet::parse("10.0.0.1/24").unwrap_err(),
            SubnetError::HostBits {
                input: "10.0.0.1/24".into(),
                network: Ipv4Addr::new(10, 0, 0, 0),
                prefix: 24
            }
        );
        assert_eq!(Subnet::parse("0.0.0.0/0").unwrap().size(), 1 << 32);
        assert_eq!(Subnet::parse("10.0.0.0/+8").unwrap().prefix, 8);
        let a = Subnet::parse("10.0.0.0/16").unwrap();
        assert!(a.overlaps(Subnet::parse("10.0.5.0/24").unwrap()));
        assert!(!a.overlaps(Subnet::parse("10.1.0.0/24").unwrap()));
    }

    #[test]
    fn hosts_are_serial_and_skip_reserved() {
        let s = Subnet::parse("10.0.1.0/29").unwrap(); // .2 .. .6 usable
        let mut used = BTreeSet::new();
        let (ip, c) = next_host(s, 0, &used).unwrap();
        assert_eq!(ip.to_string(), "10.0.1.2");
        used.insert(ip);
        let (ip2, c2) = next_host(s, c, &used).unwrap();
        assert_eq!(ip2.to_string(), "10.0.1.3");
        used.remove(&ip); // freed .2 is not reused at once
        let (ip3, _) = next_host(s, c2, &used).unwrap();
        assert_eq!(ip3.to_string(), "10.0.1.4");
        for o in 2..=6 {
            used.insert(s.host(o));
        }
        assert_eq!(next_host(s, 6, &used), None);
    }
}
