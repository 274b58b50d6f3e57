//! IPv4 networks: the one `a.b.c.d/n` type the manager's IPAM, the agent's data plane and the
//! lab share. The model keeps subnets and addresses as the strings the operator gave (the raft
//! log's format); they are parsed into [`Ipv4Net`] where they are used.
//!
//! An [`Ipv4Net`] is an address with a prefix length, as `ip addr` shows one: host bits may be
//! set (`10.0.0.5/24` is an interface address). Where only a network address will do, use
//! [`Ipv4Net::parse_network`]. Each caller adds its own rules on top (the agent wants /1–/30,
//! the lab stays inside 198.18.0.0/15) and words its own messages from [`Ipv4NetError`].

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length of 0 to 32: `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

/// Why a string is not an `a.b.c.d/n` network. The texts are the ones the managers have always
/// answered with (`network create --subnet`, `--default-addr-pool`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ipv4NetError {
    /// No `/`.
    #[error("invalid subnet {input:?}: expected CIDR such as 10.0.9.0/24")]
    NotCidr {
        /// What was given.
        input: String,
    },
    /// The part before `/` is not an IPv4 address.
    #[error("invalid subnet {input:?}: {addr:?} is not an IPv4 address")]
    BadAddress {
        /// What was given.
        input: String,
        /// Its address part.
        addr: String,
    },
    /// The part after `/` is not a number from 0 to 255.
    #[error("invalid subnet {input:?}: prefix length must be 0-32")]
    BadPrefix {
        /// What was given.
        input: String,
    },
    /// The prefix length is a number, but more than 32.
    #[error("invalid subnet {input:?}: prefix length must be 0-32")]
    PrefixTooLong {
        /// What was given.
        input: String,
        /// The prefix length given.
        prefix: u8,
    },
    /// Host bits are set where a network address was wanted ([`Ipv4Net::parse_network`]).
    #[error("invalid subnet {input:?}: did you mean {network}?")]
    HostBits {
        /// What was given.
        input: String,
        /// The network it lies in.
        network: Ipv4Net,
    },
}

const fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

impl Ipv4Net {
    /// `addr/prefix`; `None` when `prefix` is over 32.
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        if prefix > 32 {
            None
        } else {
            Some(Ipv4Net { addr, prefix })
        }
    }

    /// Parses `a.b.c.d/n` whose address is the network address (no host bits set).
    pub fn parse_network(s: &str) -> Result<Ipv4Net, Ipv4NetError> {
        let net: Ipv4Net = s.parse()?;
        if !net.is_network() {
            return Err(Ipv4NetError::HostBits {
                input: s.to_string(),
                network: net.trunc(),
            });
        }
        Ok(net)
    }

    /// The address of `a.b.c.d/n`, or of a bare `a.b.c.d`.
    pub fn addr_of(s: &str) -> Option<Ipv4Addr> {
        s.parse::<Ipv4Net>()
            .map(|n| n.addr)
            .or_else(|_| s.parse())
            .ok()
    }

    /// The address as given (host bits included).
    pub const fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    pub const fn prefix(self) -> u8 {
        self.prefix
    }

    /// The network address (host bits cleared).
    pub const fn network(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & mask(self.prefix))
    }

    /// The broadcast address (host bits set).
    pub const fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !mask(self.prefix))
    }

    /// The same network with host bits cleared: `10.0.0.5/24` → `10.0.0.0/24`.
    pub const fn trunc(self) -> Ipv4Net {
        Ipv4Net {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether no host bits are set.
    pub const fn is_network(self) -> bool {
        self.addr.to_bits() == self.network().to_bits()
    }

    /// Number of addresses, network and broadcast included.
    pub const fn size(self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }

    /// Whether `ip` lies inside.
    pub const fn contains(self, ip: Ipv4Addr) -> bool {
        ip.to_bits() & mask(self.prefix) == self.network().to_bits()
    }

    /// Whether `other` lies entirely inside.
    pub const fn covers(self, other: Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// Whether the two networks share any address.
    pub const fn overlaps(self, other: Ipv4Net) -> bool {
        let m = mask(if self.prefix < other.prefix {
            self.prefix
        } else {
            other.prefix
        });
        self.addr.to_bits() & m == other.addr.to_bits() & m
    }

    /// The address `offset` past the network address (`.1` is offset 1). No bounds check: the
    /// caller knows its offsets (panics in debug builds past 255.255.255.255).
    pub fn host(self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + offset)
    }

    /// Host `n` when it is neither the network nor the broadcast address (1 = the first host).
    pub fn checked_host(self, n: u32) -> Option<Ipv4Addr> {
        (n >= 1 && u64::from(n) < self.size().saturating_sub(1)).then(|| self.host(n))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = Ipv4NetError;

    /// Parses `a.b.c.d/n`, `n` from 0 to 32; host bits may be set. Nothing is trimmed.
    fn from_str(s: &str) -> Result<Ipv4Net, Ipv4NetError> {
        let input = || s.to_string();
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| Ipv4NetError::NotCidr { input: input() })?;
        let addr: Ipv4Addr = a.parse().map_err(|_| Ipv4NetError::BadAddress {
            input: input(),
            addr: a.to_string(),
        })?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| Ipv4NetError::BadPrefix { input: input() })?;
        Ipv4Net::new(addr, prefix).ok_or(Ipv4NetError::PrefixTooLong {
            input: input(),
            prefix,
        })
    }
}

impl serde::Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
