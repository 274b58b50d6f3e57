//! The values [`super::Ipvs`] takes and returns, named after `ipvsadm`'s options. IPv4 only:
//! services and destinations of other families are skipped when listing.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;
/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u8 = 132;

/// Which virtual service: `-f MARK`, or `-t|-u ADDR:PORT`. The kernel identifies a service by
/// address family and firewall mark, or by family, protocol, address and port
/// (`ip_vs_genl_parse_service` in `net/netfilter/ipvs/ip_vs_ctl.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// `ipvsadm -f MARK`: packets carrying this firewall mark.
    Fwmark(u32),
    /// `ipvsadm -t ADDR:PORT` (TCP) / `-u ADDR:PORT` (UDP) / `--sctp-service ADDR:PORT`.
    Addr {
        /// IP protocol number: [`IPPROTO_TCP`] (6), [`IPPROTO_UDP`] (17) or [`IPPROTO_SCTP`].
        proto: u8,
        /// The virtual address.
        addr: Ipv4Addr,
        /// The virtual port; 0 accepts every port (`ipvsadm -t ADDR:0 -p`).
        port: u16,
    },
}

impl ServiceKey {
    /// `ipvsadm -t ADDR:PORT`.
    pub fn tcp(addr: Ipv4Addr, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: IPPROTO_TCP,
            addr,
            port,
        }
    }

    /// `ipvsadm -u ADDR:PORT`.
    pub fn udp(addr: Ipv4Addr, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: IPPROTO_UDP,
            addr,
            port,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// The service as `ipvsadm` options: `-f 256`, `-t 10.0.0.2:80`, `-u 10.0.0.2:53`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ServiceKey::Fwmark(m) => write!(f, "-f {m}"),
            ServiceKey::Addr {
                proto: IPPROTO_TCP,
                addr,
                port,
            } => write!(f, "-t {addr}:{port}"),
            ServiceKey::Addr {
                proto: IPPROTO_UDP,
                addr,
                port,
            } => write!(f, "-u {addr}:{port}"),
            ServiceKey::Addr {
                proto: IPPROTO_SCTP,
                addr,
                port,
            } => write!(f, "--sctp-service {addr}:{port}"),
            ServiceKey::Addr { proto, addr, port } => write!(f, "--protocol {proto} {addr}:{port}"),
        }
    }
}

/// A virtual service as `ipvsadm -A|-E` sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Which service.
    pub key: ServiceKey,
    /// `-s NAME`: the scheduler (`rr`, `wrr`, `lc`, `sh`…); at most 15 bytes.
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags ([`Service::PERSISTENT`], [`Service::ONEPACKET`]…). The kernel's
    /// internal `IP_VS_SVC_F_HASHED` is never reported.
    pub flags: u32,
    /// `-p SECONDS`: persistence timeout, whole seconds (meaningful with
    /// [`Service::PERSISTENT`]).
    pub timeout: Duration,
    /// `-M NETMASK`: persistence granularity; `255.255.255.255` (one client address) by default.
    pub netmask: Ipv4Addr,
}

impl Service {
    /// `IP_VS_SVC_F_PERSISTENT` (`ipvsadm -p`).
    pub const PERSISTENT: u32 = 0x0001;
    /// `IP_VS_SVC_F_HASHED`: kernel bookkeeping, stripped from what [`super::Ipvs`] reports.
    pub const HASHED: u32 = 0x0002;
    /// `IP_VS_SVC_F_ONEPACKET` (`ipvsadm -o`, UDP only).
    pub const ONEPACKET: u32 = 0x0004;
    /// `IP_VS_SVC_F_SCHED1` (`-b sh-fallback`, `mh-fallback`).
    pub const SCHED1: u32 = 0x0008;
    /// `IP_VS_SVC_F_SCHED2` (`-b sh-port`, `mh-port`).
    pub const SCHED2: u32 = 0x0010;
    /// `IP_VS_SVC_F_SCHED3`.
    pub const SCHED3: u32 = 0x0020;

    /// `ipvsadm -A KEY -s SCHEDULER`: not persistent, netmask `255.255.255.255`.
    pub fn new(key: ServiceKey, scheduler: impl Into<String>) -> Service {
        Service {
            key,
            scheduler: scheduler.into(),
            flags: 0,
            timeout: Duration::ZERO,
            netmask: Ipv4Addr::BROADCAST,
        }
    }
}

/// How IPVS forwards to a destination (`IP_VS_CONN_F_*` in the low 3 bits,
/// `IP_VS_CONN_F_FWD_MASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Forward {
    /// `ipvsadm -m`: masquerading (DNAT), `IP_VS_CONN_F_MASQ` = 0.
    #[default]
    Masq,
    /// The destination is a local address, `IP_VS_CONN_F_LOCALNODE` = 1.
    Local,
    /// `ipvsadm -i`: IP-in-IP tunnel, `IP_VS_CONN_F_TUNNEL` = 2.
    Tunnel,
    /// `ipvsadm -g`: direct routing ("gatewaying"), `IP_VS_CONN_F_DROUTE` = 3.
    Route,
}

impl Forward {
    /// The `IP_VS_CONN_F_*` value.
    pub fn raw(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::Route => 3,
        }
    }

    /// From an `IP_VS_CONN_F_*` value (masked with `IP_VS_CONN_F_FWD_MASK` = 7).
    pub fn from_raw(v: u32) -> Option<Forward> {
        match v & 7 {
            0 => Some(Forward::Masq),
            1 => Some(Forward::Local),
            2 => Some(Forward::Tunnel),
            3 => Some(Forward::Route),
            _ => None,
        }
    }

    /// The `ipvsadm` option (`-m`, `-i`, `-g`; empty for a local node, which has none).
    pub fn ipvsadm_flag(self) -> &'static str {
        match self {
            Forward::Masq => "-m",
            Forward::Local => "",
            Forward::Tunnel => "-i",
            Forward::Route => "-g",
        }
    }
}

/// A destination (real server) of a service, as `ipvsadm -a|-e … -r ADDR:PORT` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dest {
    /// `-r ADDR`.
    pub addr: Ipv4Addr,
    /// `-r …:PORT`; 0 keeps the port the client connected to.
    pub port: u16,
    /// `-m|-i|-g`.
    pub fwd: Forward,
    /// `-w WEIGHT`; 0 = no new connections. The kernel rejects values above `i32::MAX`.
    pub weight: u32,
    /// `-x UPPER`: stop sending connections above this many (0 = no limit).
    pub upper_threshold: u32,
    /// `-y LOWER`: resume below this many.
    pub lower_threshold: u32,
}

impl Dest {
    /// `-r ADDR:PORT -m -w WEIGHT`, no thresholds.
    pub fn masq(addr: Ipv4Addr, port: u16, weight: u32) -> Dest {
        Dest {
            addr,
            port,
            fwd: Forward::Masq,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }
}

/// Counters of a service or destination (`ipvsadm -L --stats --rate`). Totals are since the
/// entry was made or last zeroed; rates are the kernel estimator's, per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// A service as `ipvsadm -L -n --stats` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its settings.
    pub service: Service,
    /// Its counters (from `IPVS_SVC_ATTR_STATS64` when the kernel sends it).
    pub stats: Stats,
}

/// A destination as `ipvsadm -L -n --stats` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestInfo {
    /// Its settings.
    pub dest: Dest,
    /// `ActiveConn`: connections in the established state.
    pub active_conns: u32,
    /// `InActConn`: connections in any other state.
    pub inactive_conns: u32,
    /// Persistence templates pointing at it.
    pub persist_conns: u32,
    /// Its counters (from `IPVS_DEST_ATTR_STATS64` when the kernel sends it).
    pub stats: Stats,
}

/// `ipvsadm --set TCP TCPFIN UDP`: connection timeouts, in whole seconds. On
/// [`super::Ipvs::set_timeouts`] a zero leaves that timeout unchanged (`ip_vs_set_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Established TCP connections (kernel default 900 s).
    pub tcp: Duration,
    /// TCP connections after a FIN (default 120 s).
    pub tcp_fin: Duration,
    /// UDP "connections" (default 300 s).
    pub udp: Duration,
}
