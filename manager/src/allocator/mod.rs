//! Allocator: IPAM (subnets, task IPs, VIPs), VXLAN ids and published ports. Pure logic; the
//! manager never touches the kernel.

pub mod ipam;
pub mod ports;
