//! Who this is: name, architecture and interface addresses, read without any unsafe code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Rust's architecture name as Go and Docker spell it (`GOARCH`).
pub(crate) fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The UTS hostname (in a Shoal task, the task id); `unknown` if it cannot be read.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Every address of this network namespace's interfaces, sorted (IPv4 first), without duplicates.
/// procfs reads never wait on a disk, so reading them on a worker thread is fine.
pub(crate) fn local_addrs() -> Vec<IpAddr> {
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    let v4 = parse_fib_trie(&read("/proc/net/fib_trie"))
        .into_iter()
        .map(IpAddr::V4);
    let v6 = parse_if_inet6(&read("/proc/net/if_inet6"))
        .into_iter()
        .map(IpAddr::V6);
    let mut all: Vec<IpAddr> = v4.chain(v6).collect();
    all.sort();
    all.dedup();
    all
}

/// IPv4 interface addresses from `/proc/net/fib_trie`. The kernel (`fib_trie_seq_show` in
/// net/ipv4/fib_trie.c) prints each leaf as `|-- <addr>` followed by one `/<len> <scope> <type>`
/// line per route; each interface address owns a `/32 host LOCAL` route in the local table
/// (added by `fib_add_ifaddr`, net/ipv4/fib_frontend.c). Tables may repeat; callers dedupe.
pub(crate) fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut leaf = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(addr) = line.strip_prefix("|-- ") {
            leaf = addr.trim().parse::<Ipv4Addr>().ok();
        } else if line.starts_with("+-- ") || line.ends_with(':') {
            leaf = None; // an inner node or a new table
        } else if line.split_whitespace().eq(["/32", "host", "LOCAL"]) {
            out.extend(leaf);
        }
    }
    out
}

/// IPv6 addresses from `/proc/net/if_inet6`: one per line, first field 32 hex digits
/// (`if6_seq_show` in net/ipv6/addrconf.c), then ifindex, prefix length, scope, flags, name.
pub(crate) fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|hex| hex.len() == 32)
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(Ipv6Addr::from)
        .collect()
}
