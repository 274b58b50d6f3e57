//! [`Ipvs`]: one generic netlink socket, the resolved family id, and a request/reply loop.
#![allow(unsafe_code)]

use std::fmt::Debug;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use netlink_packet_core::Emitable;
use netlink_packet_generic::constants::GENL_ID_CTRL;
use netlink_packet_generic::GenlFamily;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use super::attr::IP_VS_SCHEDNAME_MAXLEN;
use super::msg::{self, IpvsMessage, Reply, FLAGS_DO, FLAGS_DUMP};
use super::types::{Dest, DestInfo, Service, ServiceInfo, ServiceKey, Timeouts};
use super::{Error, Result};

/// A handle on the kernel's IPVS tables of one network namespace (the namespace the socket
/// was opened in). Calls block; `&mut self` keeps one request in flight at a time, so that
/// replies cannot interleave.
#[derive(Debug)]
pub struct Ipvs {
    sock: Socket,
    family: u16,
    seq: u32,
}

impl Ipvs {
    /// Opens a generic netlink socket in the calling thread's network namespace and resolves
    /// the "IPVS" family ([`Error::Unavailable`] when the kernel has none). What `ipvsadm`
    /// does before anything else.
    pub fn open() -> Result<Ipvs> {
        let sock = Socket::new(NETLINK_GENERIC).map_err(|source| Error::Socket {
            op: "opening IPVS".into(),
            source,
        })?;
        Ipvs::from_socket(sock)
    }

    /// Like [`Ipvs::open`], on a `NETLINK_GENERIC` socket someone opened, typically inside
    /// another network namespace (`ip netns exec NS ipvsadm …`): it stays bound to that
    /// namespace whichever thread uses it.
    pub fn from_socket(sock: Socket) -> Result<Ipvs> {
        // Connecting to the kernel (port 0) also binds the socket to a port id if needed.
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|source| Error::Socket {
                op: "connecting to the kernel".into(),
                source,
            })?;
        // Best effort (older kernels lack them): error texts from the kernel, and errors that
        // do not echo the whole request back.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let mut ipvs = Ipvs {
            sock,
            family: 0,
            seq: initial_seq(),
        };
        ipvs.family = ipvs.resolve()?;
        Ok(ipvs)
    }

    /// Like [`Ipvs::from_socket`], on the descriptor of a `NETLINK_GENERIC` socket (as
    /// [`crate::netns::NetNs::socket`] returns it).
    pub fn from_fd(fd: OwnedFd) -> Result<Ipvs> {
        // SAFETY: `OwnedFd` guarantees an open descriptor that nobody else owns; `into_raw_fd`
        // hands that ownership to the `Socket`, which closes it when dropped.
        let sock = unsafe { Socket::from_raw_fd(fd.into_raw_fd()) };
        Ipvs::from_socket(sock)
    }

    /// The id the kernel gave the "IPVS" generic netlink family.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// `ipvsadm -A KEY -s SCHED`: adds a service. EEXIST ([`Error::is_exists`]) when it is
    /// there already; ENOENT when the scheduler module does not exist.
    pub fn add_service(&mut self, svc: &Service) -> Result<()> {
        check_scheduler(&svc.scheduler)?;
        self.call(msg::new_service(svc), &|| {
            format!("ipvsadm -A {} -s {}", svc.key, svc.scheduler)
        })
    }

    /// `ipvsadm -E KEY -s SCHED`: changes a service's scheduler, flags, persistence; its
    /// destinations stay. ESRCH when it does not exist.
    pub fn update_service(&mut self, svc: &Service) -> Result<()> {
        check_scheduler(&svc.scheduler)?;
        self.call(msg::set_service(svc), &|| {
            format!("ipvsadm -E {} -s {}", svc.key, svc.scheduler)
        })
    }

    /// `ipvsadm -D KEY`: removes a service and its destinations. ESRCH when it does not exist.
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<()> {
        self.call(msg::del_service(key), &|| format!("ipvsadm -D {key}"))
    }

    /// `ipvsadm -L -n --stats`: every IPv4 service.
    pub fn services(&mut self) -> Result<Vec<ServiceInfo>> {
        let op = || "ipvsadm -L -n".to_string();
        let replies = self.dump(msg::get_services(), &op)?;
        collect(replies, msg::services_of, &op)
    }

    /// `ipvsadm -L -n KEY`: one service, `None` when it does not exist.
    pub fn service(&mut self, key: &ServiceKey) -> Result<Option<ServiceInfo>> {
        let op = || format!("ipvsadm -L -n {key}");
        match self.get(msg::get_service(key), &op) {
            Ok(replies) => Ok(collect(replies, msg::services_of, &op)?.into_iter().next()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `ipvsadm -a KEY -r ADDR:PORT -m -w WEIGHT`: adds a destination. EEXIST when it is there
    /// already, ESRCH when the service does not exist.
    pub fn add_dest(&mut self, key: &ServiceKey, dest: &Dest) -> Result<()> {
        self.call(msg::new_dest(key, dest), &|| dest_op("-a", key, dest))
    }

    /// `ipvsadm -e KEY -r ADDR:PORT -m -w WEIGHT`: changes a destination's forwarding, weight
    /// and thresholds. ENOENT when it does not exist, ESRCH when the service does not.
    pub fn update_dest(&mut self, key: &ServiceKey, dest: &Dest) -> Result<()> {
        self.call(msg::set_dest(key, dest), &|| dest_op("-e", key, dest))
    }

    /// `ipvsadm -d KEY -r ADDR:PORT`: removes a destination. ENOENT when it does not exist,
    /// ESRCH when the service does not.
    pub fn del_dest(&mut self, key: &ServiceKey, addr: Ipv4Addr, port: u16) -> Result<()> {
        self.call(msg::del_dest(key, addr, port), &|| {
            format!("ipvsadm -d {key} -r {addr}:{port}")
        })
    }

    /// `ipvsadm -L -n --stats KEY`'s destinations (empty when the service does not exist).
    pub fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestInfo>> {
        let op = || format!("ipvsadm -L -n {key}");
        let replies = self.dump(msg::get_dests(key), &op)?;
        collect(replies, msg::dests_of, &op)
    }

    /// `ipvsadm --set TCP TCPFIN UDP`: connection timeouts; zero leaves one unchanged.
    pub fn set_timeouts(&mut self, t: &Timeouts) -> Result<()> {
        self.call(msg::set_config(t), &|| {
            format!(
                "ipvsadm --set {} {} {}",
                t.tcp.as_secs(),
                t.tcp_fin.as_secs(),
                t.udp.as_secs()
            )
        })
    }

    /// `ipvsadm -L --timeout`.
    pub fn timeouts(&mut self) -> Result<Timeouts> {
        let op = || "ipvsadm -L --timeout".to_string();
        let replies = self.get(msg::get_config(), &op)?;
        let reply = replies
            .first()
            .ok_or_else(|| decode(&op, "no reply to GET_CONFIG"))?;
        Ok(msg::timeouts_of(reply))
    }

    /// `ipvsadm -Z [KEY]`: zeroes the counters of one service or of all.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<()> {
        self.call(msg::zero(key), &|| match key {
            Some(k) => format!("ipvsadm -Z {k}"),
            None => "ipvsadm -Z".into(),
        })
    }

    /// `ipvsadm -C`: removes every service.
    pub fn flush(&mut self) -> Result<()> {
        self.call(msg::flush(), &|| "ipvsadm -C".into())
    }

    /// The IPVS version `ipvsadm -L` prints in its first line, `(1, 2, 1)` on every kernel
    /// since 2.6.28.
    pub fn version(&mut self) -> Result<(u8, u8, u8)> {
        let op = || "ipvsadm --version".to_string();
        let replies = self.get(msg::get_info(), &op)?;
        let reply = replies
            .first()
            .ok_or_else(|| decode(&op, "no reply to GET_INFO"))?;
        msg::version_of(reply).map_err(|source| Error::Decode { op: op(), source })
    }

    // ---- Request/reply --------------------------------------------------------------------

    /// `CTRL_CMD_GETFAMILY` "IPVS": the family id, or [`Error::Unavailable`] on ENOENT.
    fn resolve(&mut self) -> Result<u16> {
        let op = || "resolve generic netlink family IPVS".to_string();
        let replies = match self.transact(msg::get_family(), GENL_ID_CTRL, false, &op) {
            Ok(r) => r,
            Err(Error::Kernel {
                errno: libc::ENOENT,
                ..
            }) => return Err(Error::Unavailable),
            Err(e) => return Err(e),
        };
        let reply = replies
            .first()
            .ok_or_else(|| decode(&op, "no reply to CTRL_CMD_GETFAMILY"))?;
        msg::family_id_of(reply).map_err(|source| Error::Decode { op: op(), source })
    }

    /// A request that changes something: waits for the ack.
    fn call(&mut self, m: IpvsMessage, op: &dyn Fn() -> String) -> Result<()> {
        self.transact(m, self.family, false, op).map(drop)
    }

    /// A request for one object: its reply messages, parsed.
    fn get(&mut self, m: IpvsMessage, op: &dyn Fn() -> String) -> Result<Vec<IpvsMessage>> {
        let data = self.transact(m, self.family, false, op)?;
        parse(&data, op)
    }

    /// A dump: every message up to `NLMSG_DONE`, parsed.
    fn dump(&mut self, m: IpvsMessage, op: &dyn Fn() -> String) -> Result<Vec<IpvsMessage>> {
        let data = self.transact(m, self.family, true, op)?;
        parse(&data, op)
    }

    /// Sends one request and returns the genl payloads of its replies: up to the ack for a
    /// plain request (sent with `NLM_F_ACK`), up to `NLMSG_DONE` for a dump.
    fn transact<F: GenlFamily + Emitable + Debug>(
        &mut self,
        payload: F,
        family: u16,
        dump: bool,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let req = msg::frame(
            payload,
            family,
            if dump { FLAGS_DUMP } else { FLAGS_DO },
            seq,
        );
        let sent = self
            .sock
            .send(&req, 0)
            .map_err(|source| Error::Socket { op: op(), source })?;
        if sent != req.len() {
            let source = io::Error::other(format!("sent {sent} of {} bytes", req.len()));
            return Err(Error::Socket { op: op(), source });
        }
        let mut data = Vec::new();
        loop {
            let buf = self
                .recv()
                .map_err(|source| Error::Socket { op: op(), source })?;
            for reply in
                msg::replies(&buf, seq).map_err(|source| Error::Decode { op: op(), source })?
            {
                match reply {
                    Reply::Data(d) => data.push(d),
                    Reply::Ack if !dump => return Ok(data),
                    Reply::Done if dump => return Ok(data),
                    Reply::Ack | Reply::Done => {}
                    Reply::Failed { errno, msg } => {
                        return Err(Error::Kernel {
                            op: op(),
                            errno,
                            detail: msg,
                        })
                    }
                }
            }
        }
    }

    /// One datagram, whatever its size.
    fn recv(&self) -> io::Result<Vec<u8>> {
        loop {
            match self.sock.recv_from_full() {
                Ok((buf, _)) => return Ok(buf),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A first sequence number that differs between handles, so that a reused socket's stale
/// replies are unlikely to match.
fn initial_seq() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    nanos.subsec_nanos() ^ std::process::id()
}

pub(super) fn check_scheduler(name: &str) -> Result<()> {
    if name.is_empty() || name.len() >= IP_VS_SCHEDNAME_MAXLEN || name.contains('\0') {
        return Err(Error::Invalid(format!(
            "bad IPVS scheduler name {name:?}: 1 to {} bytes (rr, wrr, lc, sh…)",
            IP_VS_SCHEDNAME_MAXLEN - 1
        )));
    }
    Ok(())
}

fn dest_op(verb: &str, key: &ServiceKey, d: &Dest) -> String {
    let fwd = d.fwd.ipvsadm_flag();
    let fwd = if fwd.is_empty() {
        String::new()
    } else {
        format!(" {fwd}")
    };
    format!(
        "ipvsadm {verb} {key} -r {}:{}{fwd} -w {}",
        d.addr, d.port, d.weight
    )
}

fn decode(op: &dyn Fn() -> String, what: &str) -> Error {
    Error::Decode {
        op: op(),
        source: what.into(),
    }
}

fn parse(data: &[Vec<u8>], op: &dyn Fn() -> String) -> Result<Vec<IpvsMessage>> {
    data.iter()
        .map(|d| IpvsMessage::from_bytes(d))
        .collect::<Result<_, _>>()
        .map_err(|source| Error::Decode { op: op(), source })
}

fn collect<T>(
    replies: Vec<IpvsMessage>,
    f: impl Fn(&IpvsMessage) -> Result<Vec<T>, netlink_packet_core::DecodeError>,
    op: &dyn Fn() -> String,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for r in &replies {
        out.extend(f(r).map_err(|source| Error::Decode { op: op(), source })?);
    }
    Ok(out)
}
