//! The IPVS family's netlink attributes, typed, on `netlink-packet-core`'s [`Nla`] helpers.
//! Numbers and layouts are those of the kernel's `include/uapi/linux/ip_vs.h`. Attributes this
//! module does not know (newer kernels add some) parse as `Other` and are ignored.

use netlink_packet_core::{
    emit_u16, emit_u16_be, emit_u32, parse_string, parse_u16, parse_u16_be, parse_u32, parse_u64,
    parse_u8, DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator,
    Parseable, NLA_F_NESTED,
};

/// Constants of `include/uapi/linux/ip_vs.h`, all of them, whether used or not.
#[allow(dead_code)]
mod uapi {
    /// `IPVS_GENL_NAME`.
    pub const IPVS_GENL_NAME: &str = "IPVS";
    /// `IPVS_GENL_VERSION`.
    pub const IPVS_GENL_VERSION: u8 = 1;
    /// `IP_VS_VERSION_CODE` of kernels since 2.6.28 (1.2.1).
    pub const IP_VS_VERSION_CODE: u32 = 0x010201;
    /// `IP_VS_SCHEDNAME_MAXLEN`, with the NUL.
    pub const IP_VS_SCHEDNAME_MAXLEN: usize = 16;

    pub const IPVS_CMD_UNSPEC: u8 = 0;
    pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
    pub const IPVS_CMD_SET_SERVICE: u8 = 2;
    pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
    pub const IPVS_CMD_GET_SERVICE: u8 = 4;
    pub const IPVS_CMD_NEW_DEST: u8 = 5;
    pub const IPVS_CMD_SET_DEST: u8 = 6;
    pub const IPVS_CMD_DEL_DEST: u8 = 7;
    pub const IPVS_CMD_GET_DEST: u8 = 8;
    pub const IPVS_CMD_NEW_DAEMON: u8 = 9;
    pub const IPVS_CMD_DEL_DAEMON: u8 = 10;
    pub const IPVS_CMD_GET_DAEMON: u8 = 11;
    pub const IPVS_CMD_SET_CONFIG: u8 = 12;
    pub const IPVS_CMD_GET_CONFIG: u8 = 13;
    pub const IPVS_CMD_SET_INFO: u8 = 14;
    pub const IPVS_CMD_GET_INFO: u8 = 15;
    pub const IPVS_CMD_ZERO: u8 = 16;
    pub const IPVS_CMD_FLUSH: u8 = 17;

    pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
    pub const IPVS_CMD_ATTR_DEST: u16 = 2;
    pub const IPVS_CMD_ATTR_DAEMON: u16 = 3;
    pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
    pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
    pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

    pub const IPVS_SVC_ATTR_AF: u16 = 1;
    pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
    pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
    pub const IPVS_SVC_ATTR_PORT: u16 = 4;
    pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
    pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
    pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
    pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
    pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
    pub const IPVS_SVC_ATTR_STATS: u16 = 10;
    pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
    pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

    pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
    pub const IPVS_DEST_ATTR_PORT: u16 = 2;
    pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
    pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
    pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
    pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
    pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
    pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
    pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
    pub const IPVS_DEST_ATTR_STATS: u16 = 10;
    pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
    pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
    pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
    pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
    pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

    pub const IPVS_STATS_ATTR_CONNS: u16 = 1;
    pub const IPVS_STATS_ATTR_INPKTS: u16 = 2;
    pub const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
    pub const IPVS_STATS_ATTR_INBYTES: u16 = 4;
    pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
    pub const IPVS_STATS_ATTR_CPS: u16 = 6;
    pub const IPVS_STATS_ATTR_INPPS: u16 = 7;
    pub const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
    pub const IPVS_STATS_ATTR_INBPS: u16 = 9;
    pub const IPVS_STATS_ATTR_OUTBPS: u16 = 10;
    pub const IPVS_STATS_ATTR_PAD: u16 = 11;

    pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
    pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;
}
pub(crate) use uapi::*;

/// Size of `union nf_inet_addr`, the address attributes' value.
pub(crate) const ADDR_LEN: usize = 16;

/// Parses the attributes in `buf` with `f`.
pub(crate) fn parse_all<T>(
    buf: &[u8],
    f: impl Fn(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    NlasIterator::new(buf)
        .map(|nla| nla.and_then(|nla| f(&nla)))
        .collect()
}

/// `union nf_inet_addr`: up to 16 bytes, zero-filled (IPv4 in the first 4).
fn parse_addr(v: &[u8]) -> Result<[u8; ADDR_LEN], DecodeError> {
    if v.len() > ADDR_LEN {
        return Err(DecodeError::from(format!(
            "address of {} bytes (at most {ADDR_LEN})",
            v.len()
        )));
    }
    let mut a = [0; ADDR_LEN];
    a[..v.len()].copy_from_slice(v);
    Ok(a)
}

fn emit_str(buf: &mut [u8], s: &str) {
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
}

/// A counter inside `IPVS_*_ATTR_STATS` (32-bit packet counts and rates, 64-bit byte counts)
/// or `IPVS_*_ATTR_STATS64` (all 64-bit): kept with its width, read by length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StatsAttr {
    /// A 4-byte counter of this kind.
    U32(u16, u32),
    /// An 8-byte counter of this kind.
    U64(u16, u64),
    /// `IPVS_STATS_ATTR_PAD` (empty, aligns the u64s) or anything else.
    Other(DefaultNla),
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::U32(..) => 4,
            StatsAttr::U64(..) => 8,
            StatsAttr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            StatsAttr::U32(k, _) | StatsAttr::U64(k, _) => *k,
            StatsAttr::Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            StatsAttr::U32(_, v) => buf.copy_from_slice(&v.to_ne_bytes()),
            StatsAttr::U64(_, v) => buf.copy_from_slice(&v.to_ne_bytes()),
            StatsAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for StatsAttr {
    fn parse(nla: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = nla.value();
        Ok(match (nla.kind(), v.len()) {
            (IPVS_STATS_ATTR_PAD, _) => StatsAttr::Other(DefaultNla::parse(nla)?),
            (k, 4) => StatsAttr::U32(k, parse_u32(v)?),
            (k, 8) => StatsAttr::U64(k, parse_u64(v)?),
            _ => StatsAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}

/// An attribute inside `IPVS_CMD_ATTR_SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SvcAttr {
    /// `IPVS_SVC_ATTR_AF` (u16).
    Af(u16),
    /// `IPVS_SVC_ATTR_PROTOCOL` (u16).
    Protocol(u16),
    /// `IPVS_SVC_ATTR_ADDR` (`union nf_inet_addr`).
    Addr([u8; ADDR_LEN]),
    /// `IPVS_SVC_ATTR_PORT`: held in host order, big-endian on the wire.
    Port(u16),
    /// `IPVS_SVC_ATTR_FWMARK` (u32).
    Fwmark(u32),
    /// `IPVS_SVC_ATTR_SCHED_NAME` (NUL-terminated).
    SchedName(String),
    /// `IPVS_SVC_ATTR_FLAGS` (`struct ip_vs_flags`).
    Flags {
        /// Flag values.
        flags: u32,
        /// Which flags to change.
        mask: u32,
    },
    /// `IPVS_SVC_ATTR_TIMEOUT` (u32 seconds).
    Timeout(u32),
    /// `IPVS_SVC_ATTR_NETMASK` (`__be32`: the mask's bytes in network order).
    Netmask([u8; 4]),
    /// `IPVS_SVC_ATTR_STATS` (nested).
    Stats(Vec<StatsAttr>),
    /// `IPVS_SVC_ATTR_PE_NAME` (NUL-terminated).
    PeName(String),
    /// `IPVS_SVC_ATTR_STATS64` (nested).
    Stats64(Vec<StatsAttr>),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        match self {
            SvcAttr::Af(_) | SvcAttr::Protocol(_) | SvcAttr::Port(_) => 2,
            SvcAttr::Fwmark(_) | SvcAttr::Timeout(_) | SvcAttr::Netmask(_) => 4,
            SvcAttr::Addr(_) => ADDR_LEN,
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => s.len() + 1,
            SvcAttr::Flags { .. } => 8,
            SvcAttr::Stats(s) | SvcAttr::Stats64(s) => s.as_slice().buffer_len(),
            SvcAttr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            SvcAttr::Af(_) => IPVS_SVC_ATTR_AF,
            SvcAttr::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            SvcAttr::Addr(_) => IPVS_SVC_ATTR_ADDR,
            SvcAttr::Port(_) => IPVS_SVC_ATTR_PORT,
            SvcAttr::Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            SvcAttr::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            SvcAttr::Flags { .. } => IPVS_SVC_ATTR_FLAGS,
            SvcAttr::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            SvcAttr::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            SvcAttr::Stats(_) => IPVS_SVC_ATTR_STATS | NLA_F_NESTED,
            SvcAttr::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            SvcAttr::Stats64(_) => IPVS_SVC_ATTR_STATS64 | NLA_F_NESTED,
            SvcAttr::Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        // The buffer is exactly `value_len()` bytes, so the emit_* calls cannot fail.
        match self {
            SvcAttr::Af(v) | SvcAttr::Protocol(v) => emit_u16(buf, *v).expect("2 bytes"),
            SvcAttr::Port(v) => emit_u16_be(buf, *v).expect("2 bytes"),
            SvcAttr::Fwmark(v) | SvcAttr::Timeout(v) => emit_u32(buf, *v).expect("4 bytes"),
            SvcAttr::Netmask(m) => buf.copy_from_slice(m),
            SvcAttr::Addr(a) => buf.copy_from_slice(a),
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => emit_str(buf, s),
            SvcAttr::Flags { flags, mask } => {
                emit_u32(&mut buf[..4], *flags).expect("4 bytes");
                emit_u32(&mut buf[4..], *mask).expect("4 bytes");
            }
            SvcAttr::Stats(s) | SvcAttr::Stats64(s) => s.as_slice().emit(buf),
            SvcAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for SvcAttr {
    fn parse(nla: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = nla.value();
        let kind = nla.kind();
        let attr = || -> Result<Self, DecodeError> {
            Ok(match kind {
                IPVS_SVC_ATTR_AF => SvcAttr::Af(parse_u16(v)?),
                IPVS_SVC_ATTR_PROTOCOL => SvcAttr::Protocol(parse_u16(v)?),
                IPVS_SVC_ATTR_ADDR => SvcAttr::Addr(parse_addr(v)?),
                IPVS_SVC_ATTR_PORT => SvcAttr::Port(parse_u16_be(v)?),
                IPVS_SVC_ATTR_FWMARK => SvcAttr::Fwmark(parse_u32(v)?),
                IPVS_SVC_ATTR_SCHED_NAME => SvcAttr::SchedName(parse_string(v)?),
                IPVS_SVC_ATTR_FLAGS if v.len() == 8 => SvcAttr::Flags {
                    flags: parse_u32(&v[..4])?,
                    mask: parse_u32(&v[4..])?,
                },
                IPVS_SVC_ATTR_FLAGS => return Err(DecodeError::invalid_number(8, v.len())),
                IPVS_SVC_ATTR_TIMEOUT => SvcAttr::Timeout(parse_u32(v)?),
                IPVS_SVC_ATTR_NETMASK => SvcAttr::Netmask(
                    v.try_into()
                        .map_err(|_| DecodeError::invalid_number(4, v.len()))?,
                ),
                IPVS_SVC_ATTR_STATS => SvcAttr::Stats(parse_all(v, |n| StatsAttr::parse(n))?),
                IPVS_SVC_ATTR_PE_NAME => SvcAttr::PeName(parse_string(v)?),
                IPVS_SVC_ATTR_STATS64 => SvcAttr::Stats64(parse_all(v, |n| StatsAttr::parse(n))?),
                _ => SvcAttr::Other(DefaultNla::parse(nla)?),
            })
        };
        attr().with_context(|| format!("IPVS_SVC_ATTR {kind}"))
    }
}

/// An attribute inside `IPVS_CMD_ATTR_DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DestAttr {
    /// `IPVS_DEST_ATTR_ADDR` (`union nf_inet_addr`).
    Addr([u8; ADDR_LEN]),
    /// `IPVS_DEST_ATTR_PORT`: held in host order, big-endian on the wire.
    Port(u16),
    /// `IPVS_DEST_ATTR_FWD_METHOD` (u32, `IP_VS_CONN_F_*`).
    FwdMethod(u32),
    /// `IPVS_DEST_ATTR_WEIGHT` (u32).
    Weight(u32),
    /// `IPVS_DEST_ATTR_U_THRESH` (u32).
    UThresh(u32),
    /// `IPVS_DEST_ATTR_L_THRESH` (u32).
    LThresh(u32),
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS` (u32).
    ActiveConns(u32),
    /// `IPVS_DEST_ATTR_INACT_CONNS` (u32).
    InactConns(u32),
    /// `IPVS_DEST_ATTR_PERSIST_CONNS` (u32).
    PersistConns(u32),
    /// `IPVS_DEST_ATTR_STATS` (nested).
    Stats(Vec<StatsAttr>),
    /// `IPVS_DEST_ATTR_ADDR_FAMILY` (u16).
    AddrFamily(u16),
    /// `IPVS_DEST_ATTR_STATS64` (nested).
    Stats64(Vec<StatsAttr>),
    /// `IPVS_DEST_ATTR_TUN_TYPE` (u8).
    TunType(u8),
    /// `IPVS_DEST_ATTR_TUN_PORT`: host order here, big-endian on the wire.
    TunPort(u16),
    /// `IPVS_DEST_ATTR_TUN_FLAGS` (u16).
    TunFlags(u16),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(_) => ADDR_LEN,
            DestAttr::Port(_)
            | DestAttr::AddrFamily(_)
            | DestAttr::TunPort(_)
            | DestAttr::TunFlags(_) => 2,
            DestAttr::TunType(_) => 1,
            DestAttr::FwdMethod(_)
            | DestAttr::Weight(_)
            | DestAttr::UThresh(_)
            | DestAttr::LThresh(_)
            | DestAttr::ActiveConns(_)
            | DestAttr::InactConns(_)
            | DestAttr::PersistConns(_) => 4,
            DestAttr::Stats(s) | DestAttr::Stats64(s) => s.as_slice().buffer_len(),
            DestAttr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => IPVS_DEST_ATTR_ADDR,
            DestAttr::Port(_) => IPVS_DEST_ATTR_PORT,
            DestAttr::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            DestAttr::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            DestAttr::UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            DestAttr::LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            DestAttr::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            DestAttr::InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            DestAttr::PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            DestAttr::Stats(_) => IPVS_DEST_ATTR_STATS | NLA_F_NESTED,
            DestAttr::AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            DestAttr::Stats64(_) => IPVS_DEST_ATTR_STATS64 | NLA_F_NESTED,
            DestAttr::TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            DestAttr::TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            DestAttr::TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            DestAttr::Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        // The buffer is exactly `value_len()` bytes, so the emit_* calls cannot fail.
        match self {
            DestAttr::Addr(a) => buf.copy_from_slice(a),
            DestAttr::Port(v) | DestAttr::TunPort(v) => emit_u16_be(buf, *v).expect("2 bytes"),
            DestAttr::AddrFamily(v) | DestAttr::TunFlags(v) => emit_u16(buf, *v).expect("2 bytes"),
            DestAttr::TunType(v) => buf[0] = *v,
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UThresh(v)
            | DestAttr::LThresh(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactConns(v)
            | DestAttr::PersistConns(v) => emit_u32(buf, *v).expect("4 bytes"),
            DestAttr::Stats(s) | DestAttr::Stats64(s) => s.as_slice().emit(buf),
            DestAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(nla: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = nla.value();
        let kind = nla.kind();
        let attr = || -> Result<Self, DecodeError> {
            Ok(match kind {
                IPVS_DEST_ATTR_ADDR => DestAttr::Addr(parse_addr(v)?),
                IPVS_DEST_ATTR_PORT => DestAttr::Port(parse_u16_be(v)?),
                IPVS_DEST_ATTR_FWD_METHOD => DestAttr::FwdMethod(parse_u32(v)?),
                IPVS_DEST_ATTR_WEIGHT => DestAttr::Weight(parse_u32(v)?),
                IPVS_DEST_ATTR_U_THRESH => DestAttr::UThresh(parse_u32(v)?),
                IPVS_DEST_ATTR_L_THRESH => DestAttr::LThresh(parse_u32(v)?),
                IPVS_DEST_ATTR_ACTIVE_CONNS => DestAttr::ActiveConns(parse_u32(v)?),
                IPVS_DEST_ATTR_INACT_CONNS => DestAttr::InactConns(parse_u32(v)?),
                IPVS_DEST_ATTR_PERSIST_CONNS => DestAttr::PersistConns(parse_u32(v)?),
                IPVS_DEST_ATTR_STATS => DestAttr::Stats(parse_all(v, |n| StatsAttr::parse(n))?),
                IPVS_DEST_ATTR_ADDR_FAMILY => DestAttr::AddrFamily(parse_u16(v)?),
                IPVS_DEST_ATTR_STATS64 => DestAttr::Stats64(parse_all(v, |n| StatsAttr::parse(n))?),
                IPVS_DEST_ATTR_TUN_TYPE => DestAttr::TunType(parse_u8(v)?),
                IPVS_DEST_ATTR_TUN_PORT => DestAttr::TunPort(parse_u16_be(v)?),
                IPVS_DEST_ATTR_TUN_FLAGS => DestAttr::TunFlags(parse_u16(v)?),
                _ => DestAttr::Other(DefaultNla::parse(nla)?),
            })
        };
        attr().with_context(|| format!("IPVS_DEST_ATTR {kind}"))
    }
}

/// A top-level attribute of an IPVS message. The `IPVS_INFO_ATTR_*` of `GET_INFO` replies
/// reuse the numbers 1 and 2, so which one a number means depends on the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attr {
    /// `IPVS_CMD_ATTR_SERVICE` (nested).
    Service(Vec<SvcAttr>),
    /// `IPVS_CMD_ATTR_DEST` (nested).
    Dest(Vec<DestAttr>),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP` (u32 seconds).
    TimeoutTcp(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN` (u32 seconds).
    TimeoutTcpFin(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP` (u32 seconds).
    TimeoutUdp(u32),
    /// `IPVS_INFO_ATTR_VERSION` (u32, `IP_VS_VERSION_CODE`), in `GET_INFO` replies.
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE` (u32), in `GET_INFO` replies.
    InfoConnTabSize(u32),
    /// Anything else (`IPVS_CMD_ATTR_DAEMON`…).
    Other(DefaultNla),
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::Service(a) => a.as_slice().buffer_len(),
            Attr::Dest(a) => a.as_slice().buffer_len(),
            Attr::TimeoutTcp(_)
            | Attr::TimeoutTcpFin(_)
            | Attr::TimeoutUdp(_)
            | Attr::InfoVersion(_)
            | Attr::InfoConnTabSize(_) => 4,
            Attr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            Attr::Service(_) => IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED,
            Attr::Dest(_) => IPVS_CMD_ATTR_DEST | NLA_F_NESTED,
            Attr::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            Attr::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            Attr::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            Attr::InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            Attr::InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            Attr::Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Attr::Service(a) => a.as_slice().emit(buf),
            Attr::Dest(a) => a.as_slice().emit(buf),
            Attr::TimeoutTcp(v)
            | Attr::TimeoutTcpFin(v)
            | Attr::TimeoutUdp(v)
            | Attr::InfoVersion(v)
            | Attr::InfoConnTabSize(v) => emit_u32(buf, *v).expect("4 bytes"),
            Attr::Other(n) => n.emit_value(buf),
        }
    }
}

impl Attr {
    /// Parses a top-level attribute of a message with command `cmd`.
    pub(crate) fn parse(nla: &NlaBuffer<&[u8]>, cmd: u8) -> Result<Attr, DecodeError> {
        let v = nla.value();
        let info = cmd == IPVS_CMD_SET_INFO || cmd == IPVS_CMD_GET_INFO;
        let attr = match (info, nla.kind()) {
            (true, IPVS_INFO_ATTR_VERSION) => Attr::InfoVersion(parse_u32(v)?),
            (true, IPVS_INFO_ATTR_CONN_TAB_SIZE) => Attr::InfoConnTabSize(parse_u32(v)?),
            (true, _) => Attr::Other(DefaultNla::parse(nla)?),
            (false, IPVS_CMD_ATTR_SERVICE) => Attr::Service(
                parse_all(v, |n| SvcAttr::parse(n)).context("in IPVS_CMD_ATTR_SERVICE")?,
            ),
            (false, IPVS_CMD_ATTR_DEST) => {
                Attr::Dest(parse_all(v, |n| DestAttr::parse(n)).context("in IPVS_CMD_ATTR_DEST")?)
            }
            (false, IPVS_CMD_ATTR_TIMEOUT_TCP) => Attr::TimeoutTcp(parse_u32(v)?),
            (false, IPVS_CMD_ATTR_TIMEOUT_TCP_FIN) => Attr::TimeoutTcpFin(parse_u32(v)?),
            (false, IPVS_CMD_ATTR_TIMEOUT_UDP) => Attr::TimeoutUdp(parse_u32(v)?),
            (false, _) => Attr::Other(DefaultNla::parse(nla)?),
        };
        Ok(attr)
    }
}
