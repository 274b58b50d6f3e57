//! The kernel's IP Virtual Server over generic netlink, read like `ipvsadm`: [`Ipvs::open`]
//! (or [`Ipvs::from_fd`] with a socket opened inside another network namespace), then
//! `add_service` (`ipvsadm -A`), `add_dest` (`ipvsadm -a`), `services` (`ipvsadm -Ln`)…
//!
//! No maintained crate speaks this family, so its messages are written here on
//! `netlink-packet-generic`/`netlink-packet-core`, after the kernel's
//! `include/uapi/linux/ip_vs.h`. Building and parsing are pure (`msg.rs`, `attr.rs`) and
//! tested byte for byte without a kernel; [`Ipvs`] only sends and receives. The calls block:
//! async callers run them in `tokio::task::spawn_blocking`.
//!
//! IPv4 only. Every request needs `CAP_NET_ADMIN` in the socket's network namespace (the
//! family's operations are `GENL_ADMIN_PERM`), except resolving the family, which is how
//! [`Ipvs::open`] finds out that a kernel has no IPVS ([`Error::Unavailable`]).

mod attr;
mod msg;
mod socket;
mod types;

// The hand-written layouts are little-endian.
#[cfg(all(test, target_endian = "little"))]
mod tests;

pub use socket::Ipvs;
pub use types::*;

use std::io;

use netlink_packet_core::DecodeError;

/// What went wrong talking to IPVS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel has no "IPVS" generic netlink family: `ip_vs` is neither built in nor
    /// loadable (resolving the family loads the module when it can).
    #[error(
        "this kernel has no IPVS (module ip_vs): use the nftables load balancer (--lb-backend nftables) or load ip_vs"
    )]
    Unavailable,
    /// The kernel refused a request, e.g. `ipvsadm -A -f 256: File exists (EEXIST)`.
    #[error("{op}: {}", errno_text(*.errno, .detail.as_deref()))]
    Kernel {
        /// The request, named like the `ipvsadm` command that does it.
        op: String,
        /// The kernel's errno (positive): EEXIST (already there), ESRCH (no such service),
        /// ENOENT (no such destination, or no such scheduler module), EINVAL, EPERM…
        errno: i32,
        /// The kernel's extended-ack message, when it sent one.
        detail: Option<String>,
    },
    /// Sending to or receiving from the netlink socket failed.
    #[error("{op}: generic netlink socket: {source}")]
    Socket {
        /// The request.
        op: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel's reply could not be read.
    #[error("{op}: unexpected reply from the kernel: {source}")]
    Decode {
        /// The request.
        op: String,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },
    /// The request cannot be expressed (a scheduler name too long…).
    #[error("{0}")]
    Invalid(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// EEXIST: the service or destination is already there (`ipvsadm -A|-a` twice).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// ESRCH (no such service) or ENOENT (no such destination).
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(libc::ESRCH) | Some(libc::ENOENT))
    }
}

/// `File exists (EEXIST)`, plus the extended ack's text if any.
fn errno_text(errno: i32, detail: Option<&str>) -> String {
    let full = io::Error::from_raw_os_error(errno).to_string();
    let text = full
        .strip_suffix(&format!(" (os error {errno})"))
        .unwrap_or(&full);
    let mut s = match errno_name(errno) {
        Some(name) => format!("{text} ({name})"),
        None => format!("{text} (errno {errno})"),
    };
    if let Some(d) = detail {
        s.push_str(": ");
        s.push_str(d);
    }
    s
}

/// The symbolic name of the errnos IPVS and netlink return.
fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::EPROTO => "EPROTO",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENOBUFS => "ENOBUFS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return None,
    })
}
