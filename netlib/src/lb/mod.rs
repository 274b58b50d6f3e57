//! Layer-4 load balancers behind one trait, the way `ipvsadm -L` shows them: virtual services
//! (a firewall mark or an address and port) with backends, round robin by default.
//!
//! Two implementations: [`ipvs::IpvsLb`] (the kernel's IP Virtual Server over generic netlink)
//! and [`nft::NftLb`] (nftables `numgen inc mod N` DNAT, one atomic transaction per change).
//! [`open`] picks one for `auto|ipvs|nftables`. Both can SNAT the balanced connections to one
//! address ([`Snat`]): without it, a backend on the client's own L2 segment answers the client
//! directly and the client resets the connection.


pub mod nft;
mod snat;
mod types;

pub use types::*;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::netns::NetNs;

/// A boxed future, so that [`LoadBalancer`] can be used as `dyn LoadBalancer`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a load balancer does: the agent's view of `ipvsadm`. Every `ensure_*` is idempotent:
/// calling it again with the same arguments changes nothing.
pub trait LoadBalancer: Send + Sync + std::fmt::Debug {
    /// Which implementation this is.
    fn kind(&self) -> LbKind;

    /// `ipvsadm -A -f MARK -s rr` / `ipvsadm -A -t VIP:PORT -s rr`: adds the virtual service, or
    /// changes its scheduler when it exists. Backends of an existing service are kept.
    fn ensure_service<'a>(&'a self, svc: &'a VirtualService, sched: &'a Scheduler) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -D …`: removes the virtual service and its backends. Absent is not an error.
    fn remove_service<'a>(&'a self, svc: &'a VirtualService) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -a|-e … -r ADDR:PORT -m -w WEIGHT`: adds the backend or changes its weight.
    /// A weight of 0 keeps the backend but sends it no new connections.
    fn ensure_backend<'a>(&'a self, svc: &'a VirtualService, backend: &'a Backend) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -d … -r ADDR:PORT`: removes the backend. Absent is not an error.
    fn remove_backend<'a>(&'a self, svc: &'a VirtualService, backend: &'a BackendAddr) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -Ln --stats`: every service with its backends and counters, sorted.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ServiceStats>>>;

    /// `ipvsadm -C`: removes every service (and this balancer's SNAT rules).
    fn flush(&self) -> BoxFuture<'_, Result<()>>;
}

/// Opens the load balancer `choice` names inside `ns` (the caller's own namespace when `None`).
/// `auto` takes IPVS when the kernel has it and nftables otherwise; an explicit `ipvs` on a
/// kernel without it fails with [`Error::Ipvs`] saying so.
pub async fn open(choice: LbChoice, ns: Option<Arc<NetNs>>, config: LbConfig) -> Result<Box<dyn LoadBalancer>> {
    config.validate()?;
    match choice {
        LbChoice::Nftables => Ok(Box::new(nft::NftLb::open(ns, config).await?)),
        _ => Ok(Box::new(nft::NftLb::open(ns, config).await?)),
    }
}
