//! Per-namespace sysctls (`ip netns exec NS sysctl -w KEY=VALUE`). `/proc/sys/net` shows the
//! network namespace of the thread that opens it, so reads and writes for another namespace
//! happen on a thread that entered it.

use std::io;
use std::path::PathBuf;

use crate::netns::NetNs;

/// br_netfilter's switches, on by default in every namespace once the module is loaded: with
/// them, every IPv4/IPv6/ARP frame a bridge of the namespace forwards takes a detour through the
/// namespace's netfilter hooks, with an skb extension and a fake route per packet. A bridge
/// that filters nothing turns them off (best effort: a kernel without br_netfilter has none).
pub const BR_NETFILTER: [&str; 3] = [
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
];

/// What went wrong with a sysctl.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key is not a plain dotted or slashed name.
    #[error("bad sysctl key {0:?}")]
    BadKey(String),
    /// Reading or writing `/proc/sys/…` failed.
    #[error("sysctl {key}: {source}")]
    Io {
        /// The key, as given.
        key: String,
        /// The kernel's error (ENOENT: no such key in this kernel).
        #[source]
        source: io::Error,
    },
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] crate::netns::Error),
}

/// `net.ipv4.ip_forward` or `net/ipv4/ip_forward` → `/proc/sys/net/ipv4/ip_forward`.
/// Interface names with dots are not supported in the dotted form; use slashes for those.
pub fn path_of(key: &str) -> Result<PathBuf, Error> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let ok = !rel.is_empty()
        && rel
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && rel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
    if ok {
        Ok(PathBuf::from("/proc/sys").join(rel))
    } else {
        Err(Error::BadKey(key.to_string()))
    }
}

fn in_ns<T: Send>(ns: Option<&NetNs>, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    match ns {
        Some(ns) => Ok(ns.run(f)?),
        None => Ok(f()),
    }
}

/// `sysctl -w KEY=VALUE` in `ns` (the caller's namespace when `None`). Writes only when the
/// value differs, so calling it twice changes nothing the second time.
pub fn set(ns: Option<&NetNs>, key: &str, value: &str) -> Result<(), Error> {
    let path = path_of(key)?;
    in_ns(ns, || {
        let now = std::fs::read_to_string(&path)?;
        if now.trim() != value.trim() {
            std::fs::write(&path, value)?;
        }
        Ok(())
    })?
    .map_err(|source| Error::Io {
        key: key.into(),
        source,
    })
}

/// `sysctl -n KEY` in `ns`, trimmed.
pub fn get(ns: Option<&NetNs>, key: &str) -> Result<String, Error> {
    let path = path_of(key)?;
    in_ns(ns, || std::fs::read_to_string(&path))?
        .map(|s| s.trim().to_string())
        .map_err(|source| Error::Io {
            key: key.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_paths() {
        assert_eq!(
            path_of("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path_of("net/ipv4/conf/eth0.10/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.10/forwarding")
        );
        for bad in ["", "net/../etc", "net.ipv4.ip forward", "/net/x", "net//x"] {
            assert!(path_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_in_own_namespace() {
        let v = get(None, "net.ipv4.ip_forward").unwrap();
        assert!(v == "0" || v == "1");
    }
}
