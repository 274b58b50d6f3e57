//! rtnetlink, read like `ip` and `bridge`: a [`Handle`] bound to one network namespace, then a
//! family (links, addresses, routes, neighbours, FDB), then a call. Calls named `ensure_*` are
//! idempotent and return `true` when they changed something.
#![allow(unsafe_code)]

mod addr;
mod link;
mod neigh;
mod route;

pub use addr::Addr;
pub use link::{Link, Vxlan};
pub use neigh::{FdbEntry, Neighbour};
pub use route::Route;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use futures_util::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr, TokioSocket};

use crate::netns::NetNs;

/// What went wrong talking to the kernel over rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused a request; `errno` is its error number.
    #[error("{op}: {message} (errno {errno})")]
    Kernel {
        /// The request, named like the `ip` command that does it.
        op: String,
        /// The kernel's errno (positive).
        errno: i32,
        /// `strerror(errno)`.
        message: String,
    },
    /// Anything else from the netlink layer.
    #[error("{op}: {source}")]
    Netlink {
        /// The request.
        op: String,
        /// The error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A device that must exist does not.
    #[error("{0}: no such device")]
    NoDevice(String),
    /// A device exists with the name but is of another kind.
    #[error("{name} exists but is a {found}, not a {wanted}: remove it or pick another name")]
    WrongKind {
        /// Its name.
        name: String,
        /// Its kind.
        found: String,
        /// The kind asked for.
        wanted: String,
    },
    /// A bad argument (name too long…).
    #[error("{0}")]
    Invalid(String),
    /// An interface name the kernel would refuse.
    #[error(transparent)]
    Ifname(#[from] crate::names::IfnameError),
    /// Opening the netlink socket failed.
    #[error("opening an rtnetlink socket: {0}")]
    Socket(#[source] io::Error),
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] crate::netns::Error),
}

impl Error {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn from_rt(op: impl Into<String>, e: rtnetlink::Error) -> Error {
        match e {
            rtnetlink::Error::NetlinkError(m) => {
                let errno = m.raw_code().abs();
                Error::Kernel {
                    op: op.into(),
                    errno,
                    message: io::Error::from_raw_os_error(errno).to_string(),
                }
            }
            source => Error::Netlink {
                op: op.into(),
                source,
            },
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An rtnetlink connection to one network namespace. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Handle {
    inner: rtnetlink::Handle,
}

impl Handle {
    /// A connection to the calling thread's namespace. Must run inside a tokio runtime; the
    /// connection is driven by a task spawned on it.
    pub fn new() -> Result<Handle> {
        let (conn, inner, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        tokio::spawn(conn);
        Ok(Handle { inner })
    }

    /// A connection to `ns`: the socket is opened on a thread inside `ns` and then used from
    /// the runtime (a netlink socket stays in the namespace it was created in).
    pub fn in_ns(ns: &NetNs) -> Result<Handle> {
        let fd = ns
            .run(|| -> io::Result<OwnedFd> {
                let mut s = Socket::new(NETLINK_ROUTE)?;
                s.bind_auto()?;
                s.connect(&SocketAddr::new(0, 0))?;
                // netlink-sys sockets give their descriptor up only by duplication.
                // SAFETY: `s` is open for the whole borrow, which ends before `s` drops.
                let fd = unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) };
                fd.try_clone_to_owned()
            })?
            .map_err(Error::Socket)?;
        // SAFETY: `fd` is an open netlink socket owned by nobody else from here on.
        let socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (conn, inner, _) = rtnetlink::from_socket(socket);
        tokio::spawn(conn);
        Ok(Handle { inner })
    }

    /// The underlying `rtnetlink` handle, for requests this module does not wrap.
    pub fn raw(&self) -> &rtnetlink::Handle {
        &self.inner
    }

    /// Sends `msg` with `flags | NLM_F_REQUEST | NLM_F_ACK` and waits for the kernel's answer.
    pub(crate) async fn ack(&self, op: &str, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut handle = self.inner.clone();
        let mut resp = handle.request(req).map_err(|e| Error::from_rt(op, e))?;
        while let Some(m) = resp.next().await {
            if let NetlinkPayload::Error(e) = m.payload {
                if e.code.is_some() {
                    return Err(Error::from_rt(op, rtnetlink::Error::NetlinkError(e)));
                }
            }
        }
        Ok(())
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::Invalid(format!("bad MAC address {s:?}: want aa:bb:cc:dd:ee:ff"));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// The MAC Docker derives from an IPv4 address: `02:42` followed by the address.
pub fn mac_of_ipv4(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip() {
        let mac = mac_of_ipv4("10.0.0.12".parse().unwrap());
        assert_eq!(format_mac(&mac), "02:42:0a:00:00:0c");
        assert_eq!(parse_mac("02:42:0a:00:00:0c").unwrap(), mac);
        for bad in ["", "02:42", "02:42:0a:00:00:0g", "2:42:0a:00:00:0c:00"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
