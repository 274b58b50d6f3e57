//! Every namespace, device and nftables table name in one place, so that a janitor can find
//! what a crash left behind by prefix.
//!
//! | prefix | what | example |
//! |---|---|---|
//! | `tk_` | a task's network namespace file: `tk_<id[:12]>` | `tk_4f1c9a02b7de` |
//! | `ov_` | an overlay network's sandbox namespace: `ov_<netid[:9]>` | `ov_7d2e0c1aa` |
//! | `lb_` | a network's load-balancer namespace: `lb_<netid[:9]>` | `lb_7d2e0c1aa` |
//! | `ingress_sbox` | the routing mesh's namespace before 2026-12 (removed where found) | |
//! | `swt` | a task's veth, outer end: `swt<id[:10]><n>` (`n` = attach order, hex) | `swt4f1c9a02b70` |
//! | `swl` | a load-balancer endpoint's veth, outer end: `swl<netid[:11]>` | `swl7d2e0c1aa0b3` |
//! | `swg` | a gateway-bridge veth, outer end: `swg<id[:11]>` | `swg4f1c9a02b7d` |
//! | `swingress` | the node's leg on the ingress network (the routing mesh) | |
//! | `swb` | a user bridge network's bridge: `swb<netid[:11]>` | `swb7d2e0c1aa0b3` |
//! | `swvx` | a VXLAN device: `swvx<vni>` | `swvx4097` |
//! | `shoal` | node-wide bridges: `shoal0`, `shoal_gwbridge` | |
//!
//! Inside a sandbox the devices have fixed names: `eth0`, `eth1`… in a task, `br0` and the
//! VXLAN device in an overlay sandbox. Every host-side device name starts with `sw` and fits in
//! 15 bytes ([`crate::MAX_IFNAME`]).

use crate::MAX_IFNAME;

/// Prefix of task namespaces.
pub const TASK_NS: &str = "tk_";
/// Prefix of overlay sandbox namespaces.
pub const OVERLAY_NS: &str = "ov_";
/// Prefix of load-balancer namespaces.
pub const LB_NS: &str = "lb_";
/// The routing mesh's namespace before 2026-12 (the mesh now balances in the node's own
/// namespace, see [`INGRESS_LEG`]): removed where an older agent left it.
pub const INGRESS_SBOX: &str = "ingress_sbox";
/// The node's own leg on the ingress network's bridge: the routing mesh's balancer sends
/// published ports through it, from the node's namespace.
pub const INGRESS_LEG: &str = "swingress";
/// Prefix shared by every host-side device.
pub const DEVICE: &str = "sw";
/// Prefix of task veths.
pub const TASK_VETH: &str = "swt";
/// Prefix of load-balancer endpoint veths.
pub const LB_VETH: &str = "swl";
/// Prefix of gateway-bridge veths.
pub const GW_VETH: &str = "swg";
/// Prefix of user bridge networks' bridges.
pub const BRIDGE: &str = "swb";
/// Prefix of VXLAN devices.
pub const VXLAN: &str = "swvx";
/// The default bridge.
pub const DEFAULT_BRIDGE: &str = "shoal0";
/// The gateway bridge of overlay tasks.
pub const GW_BRIDGE: &str = "shoal_gwbridge";
/// The bridge inside an overlay sandbox.
pub const SANDBOX_BRIDGE: &str = "br0";

/// Lower-case alphanumerics of `id`, at most `n` of them. Ids are hex or base-36 already; this
/// only guards against characters a device name cannot hold.
fn short(id: &str, n: usize) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(n)
        .collect()
}

/// `tk_<id[:12]>`.
pub fn task_ns(task_id: &str) -> String {
    format!("{TASK_NS}{}", short(task_id, 12))
}

/// `ov_<netid[:9]>`.
pub fn overlay_ns(net_id: &str) -> String {
    format!("{OVERLAY_NS}{}", short(net_id, 9))
}

/// `lb_<netid[:9]>`.
pub fn lb_ns(net_id: &str) -> String {
    format!("{LB_NS}{}", short(net_id, 9))
}

/// `swt<id[:10]><n>`: the outer end of a task's `n`-th veth (`n` < 16).
pub fn task_veth(task_id: &str, n: u8) -> String {
    format!("{TASK_VETH}{}{:x}", short(task_id, 10), n & 0xf)
}

/// `swl<netid[:11]>`: the outer end of a load-balancer endpoint's veth.
pub fn lb_veth(net_id: &str) -> String {
    format!("{LB_VETH}{}", short(net_id, 11))
}

/// `swg<id[:11]>`: the outer end of a gateway-bridge veth.
pub fn gw_veth(id: &str) -> String {
    format!("{GW_VETH}{}", short(id, 11))
}

/// `swb<netid[:11]>`: the node's bridge of a user bridge network.
pub fn bridge(net_id: &str) -> String {
    format!("{BRIDGE}{}", short(net_id, 11))
}

/// `swvx<vni>`.
pub fn vxlan(vni: u32) -> String {
    format!("{VXLAN}{vni}")
}

/// `eth<n>`: a task's `n`-th interface, in network attach order.
pub fn task_ifname(n: u8) -> String {
    format!("eth{n}")
}

/// Checks an interface name the way the kernel does (`dev_valid_name`): 1–15 bytes, not `.`
/// or `..`, no `/`, `:` or whitespace.
pub fn check_ifname(name: &str) -> Result<(), IfnameError> {
    if name.is_empty() || name.len() > MAX_IFNAME {
        return Err(IfnameError::Length(name.to_string()));
    }
    if name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
    {
        return Err(IfnameError::Chars(name.to_string()));
    }
    Ok(())
}

/// An interface name the kernel would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IfnameError {
    /// Empty or longer than [`MAX_IFNAME`] bytes.
    #[error("interface name {0:?} must be 1 to {MAX_IFNAME} bytes")]
    Length(String),
    /// `.`, `..`, or holding `/`, `:` or whitespace.
    #[error("interface name {0:?} may not be . or .. nor hold '/', ':' or spaces")]
    Chars(String),
}

/// The names among `names` that start with one of `prefixes` and are not in `keep`: what a
/// janitor removes after a crash.
pub fn leftovers<'a>(
    names: impl IntoIterator<Item = &'a str>,
    prefixes: &[&str],
    keep: &std::collections::HashSet<String>,
) -> Vec<String> {
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .filter(|n| !keep.contains(*n))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_generated_device_fits_and_is_valid() {
        let long = "z".repeat(64);
        for name in [
            task_veth(&long, 15),
            lb_veth(&long),
            gw_veth(&long),
            bridge(&long),
            vxlan(u32::MAX),
            task_ifname(9),
        ] {
            check_ifname(&name).unwrap();
            assert!(name.len() <= MAX_IFNAME, "{name}");
        }
        for host in [
            task_veth(&long, 0),
            lb_veth(&long),
            gw_veth(&long),
            vxlan(4096),
        ] {
            assert!(host.starts_with(DEVICE), "{host}");
        }
        check_ifname(DEFAULT_BRIDGE).unwrap();
        check_ifname(GW_BRIDGE).unwrap();
    }

    #[test]
    fn names_take_the_documented_slices() {
        assert_eq!(task_ns("4F1C9A02B7DE55AA"), "tk_4f1c9a02b7de");
        assert_eq!(overlay_ns("7d2e0c1aa0b3"), "ov_7d2e0c1aa");
        assert_eq!(lb_ns("7d2e0c1aa0b3"), "lb_7d2e0c1aa");
        assert_eq!(task_veth("4f1c9a02b7de", 1), "swt4f1c9a02b71");
        assert_eq!(vxlan(4097), "swvx4097");
        assert_eq!(task_ns("a/b c"), "tk_abc");
    }

    #[test]
    fn bad_interface_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-bytes-xx"] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn leftovers_skip_what_is_kept_and_foreign_names() {
        let keep: HashSet<String> = ["tk_a".to_string()].into();
        let found = leftovers(
            ["tk_a", "tk_b", "eth0", "ov_1", "lo"],
            &[TASK_NS, OVERLAY_NS],
            &keep,
        );
        assert_eq!(found, vec!["ov_1".to_string(), "tk_b".to_string()]);
    }
}
