//! The values a [`super::LoadBalancer`] takes and returns.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// What can go wrong in a load balancer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The IPVS implementation failed (or the kernel has none).
    #[error(transparent)]
    Ipvs(#[from] crate::ipvs::Error),
    /// The nftables implementation failed.
    #[error(transparent)]
    Nft(#[from] crate::nft::Error),
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] crate::netns::Error),
    /// A sysctl could not be set.
    #[error(transparent)]
    Sysctl(#[from] crate::sysctl::Error),
    /// The request does not make sense (e.g. a backend of a service that does not exist).
    #[error("{0}")]
    Invalid(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Transport protocol of an address-based virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as `nft` and `ipvsadm -L` print them.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// The IP protocol number (`IPPROTO_TCP`/`IPPROTO_UDP`).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// A virtual service: what clients connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VirtualService {
    /// Packets carrying this firewall mark (`ipvsadm -f MARK`), set by the caller's rules.
    Fwmark(u32),
    /// Packets to this address and port (`ipvsadm -t|-u ADDR:PORT`).
    Addr {
        /// TCP or UDP.
        proto: Protocol,
        /// The virtual IP; it must be a local address of the namespace for IPVS.
        addr: Ipv4Addr,
        /// The port.
        port: u16,
    },
}

impl fmt::Display for VirtualService {
    /// `FWM 256` or `TCP 10.0.0.2:80`, as `ipvsadm -Ln` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VirtualService::Fwmark(m) => write!(f, "FWM {m}"),
            VirtualService::Addr { proto, addr, port } => {
                write!(f, "{} {addr}:{port}", proto.as_str().to_ascii_uppercase())
            }
        }
    }
}

/// How a service picks a backend for a new connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scheduler {
    /// `rr`: each backend in turn.
    #[default]
    RoundRobin,
    /// `wrr`: in turn, in proportion to weights.
    WeightedRoundRobin,
    /// `lc`: fewest active connections (IPVS only).
    LeastConn,
    /// `sh`: hash of the source address (IPVS only).
    SourceHash,
    /// Any other IPVS scheduler by name (`wlc`, `dh`, `mh`, `sed`, `nq`…).
    Other(String),
}

impl Scheduler {
    /// The IPVS scheduler name.
    pub fn name(&self) -> &str {
        match self {
            Scheduler::RoundRobin => "rr",
            Scheduler::WeightedRoundRobin => "wrr",
            Scheduler::LeastConn => "lc",
            Scheduler::SourceHash => "sh",
            Scheduler::Other(n) => n,
        }
    }
}

impl FromStr for Scheduler {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "rr" => Scheduler::RoundRobin,
            "wrr" => Scheduler::WeightedRoundRobin,
            "lc" => Scheduler::LeastConn,
            "sh" => Scheduler::SourceHash,
            o if !o.is_empty() && o.len() < 16 && o.bytes().all(|b| b.is_ascii_lowercase()) => {
                Scheduler::Other(o.to_string())
            }
            o => {
                return Err(Error::Invalid(format!(
                    "unknown scheduler {o:?} (rr, wrr, lc, sh…)"
                )))
            }
        })
    }
}

/// Where a backend is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendAddr {
    /// The backend's address.
    pub addr: Ipv4Addr,
    /// The backend's port; 0 keeps the port the client asked for.
    pub port: u16,
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// A backend of a virtual service. Forwarding is always masquerading (`ipvsadm -m`, DNAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// Where it is.
    pub addr: BackendAddr,
    /// Relative weight; 0 = no new connections.
    pub weight: u32,
}

/// A service as it should be, for [`super::LoadBalancer::sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// The virtual service.
    pub service: VirtualService,
    /// Its scheduler.
    pub scheduler: Scheduler,
    /// Its backends (unique addresses).
    pub backends: Vec<Backend>,
}

/// One backend as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    /// Where it is.
    pub addr: BackendAddr,
    /// Its weight.
    pub weight: u32,
    /// Established connections (IPVS `ActiveConn`); `None` where the implementation cannot tell.
    pub active_conns: Option<u32>,
    /// Other connections (IPVS `InActConn`); `None` where the implementation cannot tell.
    pub inactive_conns: Option<u32>,
    /// Connections scheduled to it since it was added (or zeroed).
    pub connections: u64,
    /// Bytes of its connections from the clients to it (IPVS `InBytes`; nftables: the packets
    /// of the connections' original direction, IP headers included); `None` where the
    /// implementation cannot tell (see [`super::nft`] for a backend address shared by services).
    pub bytes_in: Option<u64>,
    /// Bytes of its connections from it back to the clients (IPVS `OutBytes`; nftables: the
    /// replies); `None` where the implementation cannot tell.
    pub bytes_out: Option<u64>,
}

/// One virtual service as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    /// The service.
    pub service: VirtualService,
    /// Its scheduler name (`rr`).
    pub scheduler: String,
    /// Its backends, sorted by address.
    pub backends: Vec<BackendStats>,
}

/// Which implementation a balancer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    /// IP Virtual Server.
    Ipvs,
    /// nftables DNAT.
    Nftables,
}

/// `--lb-backend auto|ipvs|nftables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbChoice {
    /// IPVS when the kernel has it, else nftables.
    #[default]
    Auto,
    /// IPVS, or an error.
    Ipvs,
    /// nftables.
    Nftables,
}

impl FromStr for LbChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(LbChoice::Auto),
            "ipvs" => Ok(LbChoice::Ipvs),
            "nftables" | "nft" => Ok(LbChoice::Nftables),
            o => Err(Error::Invalid(format!(
                "unknown load balancer {o:?}: use auto, ipvs or nftables"
            ))),
        }
    }
}

/// Source NAT for balanced connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snat {
    /// `snat to ADDR` (the balancer's own address on the backends' network).
    To(Ipv4Addr),
    /// `masquerade` (the outgoing interface's address).
    Masquerade,
}

/// How a balancer is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbConfig {
    /// Name of the nftables table (family `ip`) holding this balancer's rules: DNAT for the
    /// nftables implementation, SNAT for both. Unique per namespace; at most 64 bytes of
    /// `[A-Za-z0-9_-]`.
    pub table: String,
    /// Source NAT of balanced connections, if any.
    pub snat: Option<Snat>,
}

impl Default for LbConfig {
    fn default() -> Self {
        LbConfig {
            table: "netlib_lb".into(),
            snat: None,
        }
    }
}

impl LbConfig {
    /// Checks the table name.
    pub fn validate(&self) -> Result<()> {
        let ok = !self.table.is_empty()
            && self.table.len() <= 64
            && self
                .table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "bad nftables table name {:?}",
                self.table
            )))
        }
    }
}
