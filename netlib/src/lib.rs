//! `shoal-netlib`: programs the Linux network stack (namespaces, links, VXLAN, FDB, nftables,
//! IPVS). Knows nothing of Shoal's model.
//!
//! This crate is filled in by the data-plane work; the control plane runs with
//! `--data-plane none` and does not touch the kernel.
#![forbid(unsafe_code)]

/// Longest Linux interface name, in bytes (`IFNAMSIZ - 1`).
pub const MAX_IFNAME: usize = 15;
