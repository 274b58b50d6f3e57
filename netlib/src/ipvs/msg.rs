//! IPVS generic netlink messages, built and parsed without a kernel: one function per
//! `ipvsadm` request that returns the message, functions that read replies into
//! [`super::types`], and the netlink framing (request header, multi-part replies, acks).
//! Layouts follow the kernel's `include/uapi/linux/ip_vs.h`; which attributes each command
//! needs follows `net/netfilter/ipvs/ip_vs_ctl.c` (`ip_vs_genl_parse_service`,
//! `ip_vs_genl_parse_dest`), as `libipvs` sends them.

use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::time::Duration;

use netlink_packet_core::{
    parse_i32, parse_string, parse_u16, DecodeError, Emitable, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NlasIterator, ParseableParametrized, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::constants::{CTRL_ATTR_FAMILY_ID, GENL_HDRLEN};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use super::attr::*;
use super::types::{Dest, DestInfo, Forward, Service, ServiceInfo, ServiceKey, Stats, Timeouts};

/// `AF_INET`, as the u16 the family attributes carry.
pub(crate) const AF_INET: u16 = libc::AF_INET as u16;
/// Flags of a request that changes something or gets one object: the kernel acks it.
pub(crate) const FLAGS_DO: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// Flags of a dump request: replies are `NLM_F_MULTI` messages ending with `NLMSG_DONE`.
pub(crate) const FLAGS_DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;
/// `NLMSGERR_ATTR_MSG`: the extended ack's text (`include/uapi/linux/netlink.h`).
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;

/// An IPVS message: a command and its attributes (the payload after the genl header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpvsMessage {
    /// `IPVS_CMD_*`.
    pub cmd: u8,
    /// Top-level attributes.
    pub attrs: Vec<Attr>,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buf: &mut [u8]) {
        self.attrs.as_slice().emit(buf)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs: parse_all(buf, |nla| Attr::parse(nla, header.cmd))?,
        })
    }
}

impl IpvsMessage {
    fn new(cmd: u8, attrs: Vec<Attr>) -> IpvsMessage {
        IpvsMessage { cmd, attrs }
    }

    /// The genl header and attributes, as they follow the netlink header.
    #[cfg(test)]
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let m = GenlMessage::from_payload(self.clone());
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        buf
    }

    /// Parses a genl header and attributes.
    pub(crate) fn from_bytes(buf: &[u8]) -> Result<IpvsMessage, DecodeError> {
        Ok(GenlMessage::<IpvsMessage>::parse_with_param(buf, 0)?.payload)
    }
}

// ---- Requests ---------------------------------------------------------------------------

/// Whole seconds of `d`, saturated to the kernel's u32.
fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// `union nf_inet_addr` holding an IPv4 address.
fn inet_addr(a: Ipv4Addr) -> [u8; ADDR_LEN] {
    let mut b = [0; ADDR_LEN];
    b[..4].copy_from_slice(&a.octets());
    b
}

/// The attributes that identify a service: AF + FWMARK, or AF + PROTOCOL + ADDR + PORT.
fn key_attrs(key: &ServiceKey) -> Vec<SvcAttr> {
    match *key {
        ServiceKey::Fwmark(m) => vec![SvcAttr::Af(AF_INET), SvcAttr::Fwmark(m)],
        ServiceKey::Addr { proto, addr, port } => vec![
            SvcAttr::Af(AF_INET),
            SvcAttr::Protocol(proto.into()),
            SvcAttr::Addr(inet_addr(addr)),
            SvcAttr::Port(port),
        ],
    }
}

/// A full service: the key plus the four attributes `NEW_SERVICE`/`SET_SERVICE` require
/// (else EINVAL). Flags go with mask `~0`, as `libipvs` sends them.
fn service_attrs(svc: &Service) -> Vec<SvcAttr> {
    let mut v = key_attrs(&svc.key);
    v.extend([
        SvcAttr::SchedName(svc.scheduler.clone()),
        SvcAttr::Flags {
            flags: svc.flags & !Service::HASHED,
            mask: u32::MAX,
        },
        SvcAttr::Timeout(secs(svc.timeout)),
        SvcAttr::Netmask(svc.netmask.octets()),
    ]);
    v
}

/// A destination's address and port (enough for `DEL_DEST`), with its family.
fn dest_key_attrs(addr: Ipv4Addr, port: u16) -> Vec<DestAttr> {
    vec![
        DestAttr::Addr(inet_addr(addr)),
        DestAttr::Port(port),
        DestAttr::AddrFamily(AF_INET),
    ]
}

/// A full destination: address and port plus the four attributes `NEW_DEST`/`SET_DEST`
/// require (else EINVAL).
fn dest_attrs(d: &Dest) -> Vec<DestAttr> {
    vec![
        DestAttr::Addr(inet_addr(d.addr)),
        DestAttr::Port(d.port),
        DestAttr::FwdMethod(d.fwd.raw()),
        DestAttr::Weight(d.weight),
        DestAttr::UThresh(d.upper_threshold),
        DestAttr::LThresh(d.lower_threshold),
        DestAttr::AddrFamily(AF_INET),
    ]
}

/// `ipvsadm -A`: `NEW_SERVICE` with the full service.
pub(crate) fn new_service(svc: &Service) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_NEW_SERVICE,
        vec![Attr::Service(service_attrs(svc))],
    )
}

/// `ipvsadm -E`: `SET_SERVICE` with the full service.
pub(crate) fn set_service(svc: &Service) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_SET_SERVICE,
        vec![Attr::Service(service_attrs(svc))],
    )
}

/// `ipvsadm -D`: `DEL_SERVICE` with the service's key.
pub(crate) fn del_service(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_DEL_SERVICE, vec![Attr::Service(key_attrs(key))])
}

/// `ipvsadm -L`: `GET_SERVICE`, sent with [`FLAGS_DUMP`].
pub(crate) fn get_services() -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_GET_SERVICE, vec![])
}

/// `ipvsadm -L KEY`: `GET_SERVICE` for one service, sent with [`FLAGS_DO`] (ESRCH when absent).
pub(crate) fn get_service(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_GET_SERVICE, vec![Attr::Service(key_attrs(key))])
}

/// `ipvsadm -a`: `NEW_DEST` with the service's key and the full destination.
pub(crate) fn new_dest(key: &ServiceKey, d: &Dest) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_NEW_DEST,
        vec![Attr::Service(key_attrs(key)), Attr::Dest(dest_attrs(d))],
    )
}

/// `ipvsadm -e`: `SET_DEST` with the service's key and the full destination.
pub(crate) fn set_dest(key: &ServiceKey, d: &Dest) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_SET_DEST,
        vec![Attr::Service(key_attrs(key)), Attr::Dest(dest_attrs(d))],
    )
}

/// `ipvsadm -d`: `DEL_DEST` with the service's key and the destination's address and port.
pub(crate) fn del_dest(key: &ServiceKey, addr: Ipv4Addr, port: u16) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_DEL_DEST,
        vec![
            Attr::Service(key_attrs(key)),
            Attr::Dest(dest_key_attrs(addr, port)),
        ],
    )
}

/// `ipvsadm -L KEY`'s destinations: `GET_DEST` with the service's key, sent with
/// [`FLAGS_DUMP`].
pub(crate) fn get_dests(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_GET_DEST, vec![Attr::Service(key_attrs(key))])
}

/// `ipvsadm --set TCP TCPFIN UDP`: `SET_CONFIG` with the three timeouts.
pub(crate) fn set_config(t: &Timeouts) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_SET_CONFIG,
        vec![
            Attr::TimeoutTcp(secs(t.tcp)),
            Attr::TimeoutTcpFin(secs(t.tcp_fin)),
            Attr::TimeoutUdp(secs(t.udp)),
        ],
    )
}

/// `ipvsadm -L --timeout`: `GET_CONFIG`.
pub(crate) fn get_config() -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_GET_CONFIG, vec![])
}

/// The version `ipvsadm -L` prints: `GET_INFO`.
pub(crate) fn get_info() -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_GET_INFO, vec![])
}

/// `ipvsadm -Z [KEY]`: `ZERO`, for one service or all.
pub(crate) fn zero(key: Option<&ServiceKey>) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_ZERO,
        key.map(|k| vec![Attr::Service(key_attrs(k))])
            .unwrap_or_default(),
    )
}

/// `ipvsadm -C`: `FLUSH`.
pub(crate) fn flush() -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_FLUSH, vec![])
}

/// `CTRL_CMD_GETFAMILY` for "IPVS", to the controller (`GENL_ID_CTRL`).
pub(crate) fn get_family() -> GenlCtrl {
    GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.into())],
    }
}

// ---- Replies ----------------------------------------------------------------------------

fn bad(what: &str) -> DecodeError {
    DecodeError::from(format!("IPVS reply without {what}"))
}

fn stats_of(attrs: &[StatsAttr]) -> Stats {
    let mut s = Stats::default();
    for a in attrs {
        let (kind, v) = match *a {
            StatsAttr::U32(k, v) => (k, u64::from(v)),
            StatsAttr::U64(k, v) => (k, v),
            StatsAttr::Other(_) => continue,
        };
        let field = match kind {
            IPVS_STATS_ATTR_CONNS => &mut s.conns,
            IPVS_STATS_ATTR_INPKTS => &mut s.inpkts,
            IPVS_STATS_ATTR_OUTPKTS => &mut s.outpkts,
            IPVS_STATS_ATTR_INBYTES => &mut s.inbytes,
            IPVS_STATS_ATTR_OUTBYTES => &mut s.outbytes,
            IPVS_STATS_ATTR_CPS => &mut s.cps,
            IPVS_STATS_ATTR_INPPS => &mut s.inpps,
            IPVS_STATS_ATTR_OUTPPS => &mut s.outpps,
            IPVS_STATS_ATTR_INBPS => &mut s.inbps,
            IPVS_STATS_ATTR_OUTBPS => &mut s.outbps,
            _ => continue,
        };
        *field = v;
    }
    s
}

fn ipv4(a: &[u8; ADDR_LEN]) -> Ipv4Addr {
    Ipv4Addr::new(a[0], a[1], a[2], a[3])
}

/// Reads one `IPVS_CMD_ATTR_SERVICE`. `None` for a service of another family (IPv6).
pub(crate) fn parse_service(attrs: &[SvcAttr]) -> Result<Option<ServiceInfo>, DecodeError> {
    let (mut af, mut proto, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let mut svc = Service::new(ServiceKey::Fwmark(0), "");
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            SvcAttr::Af(v) => af = Some(*v),
            SvcAttr::Protocol(v) => proto = Some(*v),
            SvcAttr::Addr(v) => addr = Some(ipv4(v)),
            SvcAttr::Port(v) => port = Some(*v),
            SvcAttr::Fwmark(v) => fwmark = Some(*v),
            SvcAttr::SchedName(v) => svc.scheduler = v.clone(),
            SvcAttr::Flags { flags, .. } => svc.flags = flags & !Service::HASHED,
            SvcAttr::Timeout(v) => svc.timeout = Duration::from_secs((*v).into()),
            SvcAttr::Netmask(v) => svc.netmask = Ipv4Addr::from(*v),
            SvcAttr::Stats(v) => stats = Some(v),
            SvcAttr::Stats64(v) => stats64 = Some(v),
            SvcAttr::PeName(_) | SvcAttr::Other(_) => {}
        }
    }
    if af.ok_or_else(|| bad("IPVS_SVC_ATTR_AF"))? != AF_INET {
        return Ok(None);
    }
    svc.key = match (fwmark, proto, addr, port) {
        (Some(m), ..) => ServiceKey::Fwmark(m),
        (None, Some(proto), Some(addr), Some(port)) => {
            let proto = u8::try_from(proto)
                .map_err(|_| DecodeError::from(format!("IP protocol {proto}")))?;
            ServiceKey::Addr { proto, addr, port }
        }
        _ => return Err(bad("IPVS_SVC_ATTR_FWMARK or PROTOCOL, ADDR and PORT")),
    };
    let stats = stats64.or(stats).map(|s| stats_of(s)).unwrap_or_default();
    Ok(Some(ServiceInfo {
        service: svc,
        stats,
    }))
}

/// Reads one `IPVS_CMD_ATTR_DEST`. `None` for a destination of another family.
pub(crate) fn parse_dest(attrs: &[DestAttr]) -> Result<Option<DestInfo>, DecodeError> {
    let (mut addr, mut port, mut fwd) = (None, None, None);
    let mut d = Dest::masq(Ipv4Addr::UNSPECIFIED, 0, 0);
    let (mut active, mut inactive, mut persist) = (0, 0, 0);
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(ipv4(v)),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::FwdMethod(v) => fwd = Some(*v),
            DestAttr::Weight(v) => d.weight = *v,
            DestAttr::UThresh(v) => d.upper_threshold = *v,
            DestAttr::LThresh(v) => d.lower_threshold = *v,
            DestAttr::ActiveConns(v) => active = *v,
            DestAttr::InactConns(v) => inactive = *v,
            DestAttr::PersistConns(v) => persist = *v,
            DestAttr::Stats(v) => stats = Some(v),
            DestAttr::Stats64(v) => stats64 = Some(v),
            // Kernels before 3.18 send no family: the destination has the service's (IPv4).
            DestAttr::AddrFamily(af) if *af != AF_INET => return Ok(None),
            DestAttr::AddrFamily(_)
            | DestAttr::TunType(_)
            | DestAttr::TunPort(_)
            | DestAttr::TunFlags(_)
            | DestAttr::Other(_) => {}
        }
    }
    d.addr = addr.ok_or_else(|| bad("IPVS_DEST_ATTR_ADDR"))?;
    d.port = port.ok_or_else(|| bad("IPVS_DEST_ATTR_PORT"))?;
    if let Some(f) = fwd {
        d.fwd = Forward::from_raw(f)
            .ok_or_else(|| DecodeError::from(format!("unknown forwarding method {f}")))?;
    }
    let stats = stats64.or(stats).map(|s| stats_of(s)).unwrap_or_default();
    Ok(Some(DestInfo {
        dest: d,
        active_conns: active,
        inactive_conns: inactive,
        persist_conns: persist,
        stats,
    }))
}

/// The services in a `GET_SERVICE` reply (one per message in a dump).
pub(crate) fn services_of(msg: &IpvsMessage) -> Result<Vec<ServiceInfo>, DecodeError> {
    let mut out = Vec::new();
    for a in &msg.attrs {
        if let Attr::Service(s) = a {
            out.extend(parse_service(s)?);
        }
    }
    Ok(out)
}

/// The destinations in a `GET_DEST` reply.
pub(crate) fn dests_of(msg: &IpvsMessage) -> Result<Vec<DestInfo>, DecodeError> {
    let mut out = Vec::new();
    for a in &msg.attrs {
        if let Attr::Dest(d) = a {
            out.extend(parse_dest(d)?);
        }
    }
    Ok(out)
}

/// The timeouts in a `GET_CONFIG` reply (absent ones, for protocols the kernel was built
/// without, are zero).
pub(crate) fn timeouts_of(msg: &IpvsMessage) -> Timeouts {
    let mut t = Timeouts::default();
    for a in &msg.attrs {
        match *a {
            Attr::TimeoutTcp(v) => t.tcp = Duration::from_secs(v.into()),
            Attr::TimeoutTcpFin(v) => t.tcp_fin = Duration::from_secs(v.into()),
            Attr::TimeoutUdp(v) => t.udp = Duration::from_secs(v.into()),
            _ => {}
        }
    }
    t
}

/// `(major, minor, patch)` from a `GET_INFO` reply's `IP_VS_VERSION_CODE` (`NVERSION`).
pub(crate) fn version_of(msg: &IpvsMessage) -> Result<(u8, u8, u8), DecodeError> {
    msg.attrs
        .iter()
        .find_map(|a| match *a {
            Attr::InfoVersion(v) => Some(((v >> 16) as u8, (v >> 8) as u8, v as u8)),
            _ => None,
        })
        .ok_or_else(|| bad("IPVS_INFO_ATTR_VERSION"))
}

/// The family id in a `CTRL_CMD_GETFAMILY` reply (genl header and attributes). Read by hand
/// rather than with [`GenlCtrl`]'s parser, which rejects attributes it does not know.
pub(crate) fn family_id_of(genl: &[u8]) -> Result<u16, DecodeError> {
    let attrs = genl
        .get(GENL_HDRLEN..)
        .ok_or_else(|| DecodeError::buffer_too_small(genl.len(), GENL_HDRLEN))?;
    for nla in NlasIterator::new(attrs) {
        let nla = nla?;
        if nla.kind() == CTRL_ATTR_FAMILY_ID {
            return parse_u16(nla.value());
        }
    }
    Err(DecodeError::from(
        "CTRL_CMD_GETFAMILY reply without CTRL_ATTR_FAMILY_ID",
    ))
}

// ---- Framing ----------------------------------------------------------------------------

/// A whole netlink request: header (`type` = `family`, `flags`, `seq`, port 0 for the kernel
/// to fill), genl header, attributes.
pub(crate) fn frame<F: GenlFamily + Emitable + Debug>(
    payload: F,
    family: u16,
    flags: u16,
    seq: u32,
) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(payload);
    genl.set_resolved_family_id(family);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// One netlink message of a reply to our request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A message of the family: its genl header and attributes.
    Data(Vec<u8>),
    /// `NLMSG_ERROR` with code 0: the request succeeded.
    Ack,
    /// `NLMSG_DONE`: the dump is complete.
    Done,
    /// `NLMSG_ERROR` (or `NLMSG_DONE`) with a negative code: the request failed.
    Failed {
        /// The positive errno.
        errno: i32,
        /// The extended ack's text, if the kernel gave one.
        msg: Option<String>,
    },
}

/// The messages of one received datagram that answer request `seq`. Messages for other
/// sequence numbers (left over from an earlier, interrupted request) are skipped.
pub(crate) fn replies(buf: &[u8], seq: u32) -> Result<Vec<Reply>, DecodeError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let nl = NetlinkBuffer::new_checked(&buf[off..])?;
        let len = nl.length() as usize;
        off += (len + 3) & !3;
        if nl.sequence_number() != seq {
            continue;
        }
        let payload = nl.payload();
        match nl.message_type() {
            NLMSG_ERROR => {
                let code = payload
                    .get(..4)
                    .map(parse_i32)
                    .transpose()?
                    .ok_or_else(|| bad("error code"))?;
                if code == 0 {
                    out.push(Reply::Ack);
                } else {
                    let msg = ext_ack_msg(payload, nl.flags());
                    out.push(Reply::Failed {
                        errno: code.saturating_neg(),
                        msg,
                    });
                }
            }
            NLMSG_DONE => match payload.get(..4).map(parse_i32).transpose()? {
                Some(code) if code < 0 => out.push(Reply::Failed {
                    errno: -code,
                    msg: None,
                }),
                _ => out.push(Reply::Done),
            },
            NLMSG_OVERRUN => return Err(DecodeError::from("NLMSG_OVERRUN")),
            t if t >= 16 => out.push(Reply::Data(payload.to_vec())),
            _ => {} // NLMSG_NOOP and reserved types
        }
    }
    Ok(out)
}

/// `NLMSGERR_ATTR_MSG` of an `NLMSG_ERROR` payload that carries TLVs (`NLM_F_ACK_TLVS`):
/// they follow the error code and the echoed request (only its header with `NLM_F_CAPPED`).
fn ext_ack_msg(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(payload.get(4..8)?.try_into().ok()?) as usize;
        (len + 3) & !3
    };
    let tlvs = payload.get(4 + echoed..)?;
    NlasIterator::new(tlvs)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .and_then(|nla| parse_string(nla.value()).ok())
        .filter(|s| !s.is_empty())
}
