//! `shoal-netlib`: programs the Linux network stack from Rust — network namespaces, links
//! (veth, bridge, VXLAN), addresses, routes, neighbours and bridge FDB entries over rtnetlink,
//! IPVS over generic netlink, nftables through `nft`'s JSON interface, and a load-balancer
//! trait over both. It knows nothing of Shoal's model; any program can use it.
//!
//! Modules read like the tools they replace: [`rt`] like `ip`/`bridge`, [`ipvs`] like
//! `ipvsadm`, [`nft`] like `nft`. `unsafe` is confined to the modules that make system calls
//! ([`netns`], [`ipvs`]'s socket), each block with a `SAFETY` comment.
#![deny(missing_docs)]

pub mod ipvs;
pub mod lb;
pub mod names;
pub mod netns;
pub mod nft;
pub mod root;
pub mod rt;
pub mod sysctl;

pub use root::is_root;

/// Longest Linux interface name, in bytes (`IFNAMSIZ - 1`).
pub const MAX_IFNAME: usize = 15;
