//! Layer-4 load balancers behind one trait, the way `ipvsadm -L` shows them: virtual services
//! (a firewall mark or an address and port) with backends, round robin by default.
//!
//! Two implementations: [`ipvs::IpvsLb`] (the kernel's IP Virtual Server over generic netlink)
//! and [`nft::NftLb`] (nftables `numgen inc mod N` DNAT, one atomic transaction per change).
//! [`open`] picks one for `auto|ipvs|nftables`. Both can SNAT the balanced connections to one
//! address ([`Snat`]): without it, a backend on the client's own L2 segment answers the client
//! directly and the client resets the connection.

pub mod ipvs;
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
    fn ensure_service<'a>(
        &'a self,
        svc: &'a VirtualService,
        sched: &'a Scheduler,
    ) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -D …`: removes the virtual service and its backends. Absent is not an error.
    fn remove_service<'a>(&'a self, svc: &'a VirtualService) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -a|-e … -r ADDR:PORT -m -w WEIGHT`: adds the backend or changes its weight.
    /// A weight of 0 keeps the backend but sends it no new connections.
    fn ensure_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a Backend,
    ) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -d … -r ADDR:PORT`: removes the backend. Absent is not an error.
    fn remove_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a BackendAddr,
    ) -> BoxFuture<'a, Result<()>>;

    /// `ipvsadm -Ln --stats`: every service with its backends and counters, sorted.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ServiceStats>>>;

    /// `ipvsadm -C`: removes every service (and this balancer's SNAT rules).
    fn flush(&self) -> BoxFuture<'_, Result<()>>;

    /// Makes the balancer hold exactly `desired` (`ipvsadm -R` with a diff): adds, changes and
    /// removes what differs and leaves the rest alone. The reconcile primitive: call it with
    /// the full desired set after a restart or on every resync. This default does it call by
    /// call; the nftables balancer overrides it with one transaction.
    fn sync<'a>(&'a self, desired: &'a [DesiredService]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let have = self.list().await?;
            for h in &have {
                if !desired.iter().any(|d| d.service == h.service) {
                    self.remove_service(&h.service).await?;
                }
            }
            for d in desired {
                self.ensure_service(&d.service, &d.scheduler).await?;
                if let Some(h) = have.iter().find(|h| h.service == d.service) {
                    for b in &h.backends {
                        if !d.backends.iter().any(|x| x.addr == b.addr) {
                            self.remove_backend(&d.service, &b.addr).await?;
                        }
                    }
                }
                for b in &d.backends {
                    self.ensure_backend(&d.service, b).await?;
                }
            }
            Ok(())
        })
    }
}

/// Opens the load balancer `choice` names inside `ns` (the caller's own namespace when `None`).
/// `auto` takes IPVS when the kernel has it and nftables otherwise; an explicit `ipvs` on a
/// kernel without it fails with [`Error::Ipvs`] saying so.
pub async fn open(
    choice: LbChoice,
    ns: Option<Arc<NetNs>>,
    config: LbConfig,
) -> Result<Box<dyn LoadBalancer>> {
    config.validate()?;
    match choice {
        LbChoice::Nftables => Ok(Box::new(nft::NftLb::open(ns, config).await?)),
        LbChoice::Ipvs => Ok(Box::new(ipvs::IpvsLb::open(ns, config).await?)),
        LbChoice::Auto => match ipvs::IpvsLb::open(ns.clone(), config.clone()).await {
            Ok(lb) => Ok(Box::new(lb)),
            Err(Error::Ipvs(crate::ipvs::Error::Unavailable)) => {
                tracing::debug!("no IPVS in this kernel: using nftables");
                Ok(Box::new(nft::NftLb::open(ns, config).await?))
            }
            Err(e) => Err(e),
        },
    }
}
