//! Allocator: IPAM (subnets, task IPs, VIPs), VXLAN ids and published ports. Pure logic; the
//! manager never touches the kernel.

pub mod ipam;
mod plan;
pub mod ports;
#[cfg(test)]
mod tests;

pub use plan::{plan, ALLOCATED};
