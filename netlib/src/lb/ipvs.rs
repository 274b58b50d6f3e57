//! The IPVS load balancer: each virtual service is an IPVS service (`ipvsadm -A`), each
//! backend a masquerading destination (`ipvsadm -a … -m`). The kernel's tables are the source
//! of truth, so a reopened balancer sees what an earlier one left.
//!
//! The generic netlink socket is opened inside the namespace once, on a thread that entered
//! it; every call then runs on a `spawn_blocking` thread over that socket, without `setns`.
//! SNAT (when configured) is nftables' job (`snat.rs`), with `net.ipv4.vs.conntrack=1` so
//! that IPVS connections go through conntrack and NAT.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::snat::SnatRules;
use super::{
    Backend, BackendAddr, BackendStats, BoxFuture, DesiredService, Error, LbConfig, LbKind,
    LoadBalancer, Protocol, Result, Scheduler, ServiceStats, VirtualService,
};
use crate::ipvs::{self, Dest, Ipvs, Service, ServiceKey, IPPROTO_TCP, IPPROTO_UDP};
use crate::netns::NetNs;

/// The IPVS implementation of [`LoadBalancer`].
#[derive(Debug)]
pub struct IpvsLb {
    ipvs: Arc<Mutex<Ipvs>>,
    snat: SnatRules,
}

/// The IPVS service of a virtual service.
fn key(svc: &VirtualService) -> ServiceKey {
    match *svc {
        VirtualService::Fwmark(m) => ServiceKey::Fwmark(m),
        VirtualService::Addr { proto, addr, port } => ServiceKey::Addr {
            proto: proto.number(),
            addr,
            port,
        },
    }
}

/// The virtual service of an IPVS service; `None` for protocols the trait has no name for.
fn virtual_service(key: &ServiceKey) -> Option<VirtualService> {
    match *key {
        ServiceKey::Fwmark(m) => Some(VirtualService::Fwmark(m)),
        ServiceKey::Addr { proto, addr, port } => {
            let proto = match proto {
                IPPROTO_TCP => Protocol::Tcp,
                IPPROTO_UDP => Protocol::Udp,
                _ => return None,
            };
            Some(VirtualService::Addr { proto, addr, port })
        }
    }
}

/// Runs blocking work on tokio's blocking pool; a panic there resumes here.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::Ipvs(ipvs::Error::Socket {
                op: "IPVS request".into(),
                source: io::Error::new(
                    io::ErrorKind::Interrupted,
                    "cancelled: the tokio runtime is shutting down",
                ),
            })),
        },
    }
}

/// ESRCH from a destination request means the service is missing: say so.
fn dest_error(e: ipvs::Error, svc: &VirtualService) -> Error {
    if e.errno() == Some(libc::ESRCH) {
        Error::Invalid(format!(
            "{svc} does not exist: ensure the service before its backends"
        ))
    } else {
        e.into()
    }
}

impl IpvsLb {
    /// Opens IPVS inside `ns` (the caller's namespace when `None`): fails with
    /// [`Error::Ipvs`]`(`[`ipvs::Error::Unavailable`]`)` when the kernel has none. With SNAT
    /// configured, sets `net.ipv4.vs.conntrack=1` there and writes the SNAT table, adopting the
    /// services already in the kernel.
    pub async fn open(ns: Option<Arc<NetNs>>, config: LbConfig) -> Result<IpvsLb> {
        config.validate()?;
        let in_ns = ns.clone();
        let ipvs = blocking(move || {
            Ok(match in_ns {
                Some(ns) => Ipvs::from_fd(ns.socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW,
                    libc::NETLINK_GENERIC,
                )?)?,
                None => Ipvs::open()?,
            })
        })
        .await?;
        if config.snat.is_some() {
            // The key exists once ip_vs is loaded, which resolving the family above ensured.
            let in_ns = ns.clone();
            blocking(move || {
                Ok(crate::sysctl::set(
                    in_ns.as_deref(),
                    "net/ipv4/vs/conntrack",
                    "1",
                )?)
            })
            .await?;
        }
        let snat = SnatRules::open(ns, &config.table, config.snat).await?;
        let lb = IpvsLb {
            ipvs: Arc::new(Mutex::new(ipvs)),
            snat,
        };
        if config.snat.is_some() {
            let existing: Vec<VirtualService> = lb
                .list_now()
                .await?
                .into_iter()
                .map(|s| s.service)
                .collect();
            lb.snat.add(&existing).await?;
        }
        Ok(lb)
    }

    /// Runs `f` with the handle on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ipvs) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let ipvs = Arc::clone(&self.ipvs);
        // A panic mid-request leaves at worst unread replies, which the next request skips by
        // sequence number: the handle stays usable after poisoning.
        blocking(move || f(&mut ipvs.lock().unwrap_or_else(PoisonError::into_inner))).await
    }

    /// `ipvsadm -Ln --stats`, converted and sorted.
    async fn list_now(&self) -> Result<Vec<ServiceStats>> {
        self.with(|ipvs| {
            let mut out = Vec::new();
            for s in ipvs.services()? {
                let Some(service) = virtual_service(&s.service.key) else {
                    continue;
                };
                let dests = match ipvs.dests(&s.service.key) {
                    Ok(d) => d,
                    Err(e) if e.is_not_found() => continue, // removed since the first dump
                    Err(e) => return Err(e.into()),
                };
                let mut backends: Vec<BackendStats> = dests
                    .into_iter()
                    .map(|d| BackendStats {
                        addr: BackendAddr {
                            addr: d.dest.addr,
                            port: d.dest.port,
                        },
                        weight: d.dest.weight,
                        active_conns: Some(d.active_conns),
                        inactive_conns: Some(d.inactive_conns),
                        connections: d.stats.conns,
                        bytes_in: Some(d.stats.inbytes),
                        bytes_out: Some(d.stats.outbytes),
                    })
                    .collect();
                backends.sort_by_key(|b| b.addr);
                out.push(ServiceStats {
                    service,
                    scheduler: s.service.scheduler,
                    backends,
                });
            }
            out.sort_by_key(|s| s.service);
            Ok(out)
        })
        .await
    }
}

impl LoadBalancer for IpvsLb {
    fn kind(&self) -> LbKind {
        LbKind::Ipvs
    }

    fn ensure_service<'a>(
        &'a self,
        svc: &'a VirtualService,
        sched: &'a Scheduler,
    ) -> BoxFuture<'a, Result<()>> {
        let want = Service::new(key(svc), sched.name());
        Box::pin(async move {
            self.with(move |ipvs| {
                match ipvs.add_service(&want) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_exists() => {}
                    Err(e) => return Err(e.into()),
                }
                match ipvs.service(&want.key)? {
                    Some(have) if have.service.scheduler == want.scheduler => Ok(()),
                    // Keep what else is set (persistence…): only the scheduler changes.
                    Some(have) => Ok(ipvs.update_service(&Service {
                        scheduler: want.scheduler,
                        ..have.service
                    })?),
                    None => Ok(ipvs.add_service(&want)?), // removed in between
                }
            })
            .await?;
            self.snat.add(std::slice::from_ref(svc)).await
        })
    }

    fn remove_service<'a>(&'a self, svc: &'a VirtualService) -> BoxFuture<'a, Result<()>> {
        let k = key(svc);
        Box::pin(async move {
            self.with(move |ipvs| match ipvs.del_service(&k) {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e.into()),
            })
            .await?;
            self.snat.remove(std::slice::from_ref(svc)).await
        })
    }

    fn ensure_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a Backend,
    ) -> BoxFuture<'a, Result<()>> {
        let (k, vs) = (key(svc), *svc);
        // Port 0 is passed through: IPVS then keeps the port the client asked for
        // (`ip_vs_schedule`: `dest->port ? dest->port : vport`), as fwmark services need.
        let want = Dest::masq(backend.addr.addr, backend.addr.port, backend.weight);
        Box::pin(self.with(move |ipvs| {
            match ipvs.add_dest(&k, &want) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(dest_error(e, &vs)),
            }
            // Only touch it when it differs: SET_DEST resets some schedulers' state (wrr).
            let have = ipvs
                .dests(&k)?
                .into_iter()
                .find(|d| d.dest.addr == want.addr && d.dest.port == want.port);
            match have {
                Some(h) if h.dest == want => Ok(()),
                Some(_) => ipvs.update_dest(&k, &want).map_err(|e| dest_error(e, &vs)),
                None => ipvs.add_dest(&k, &want).map_err(|e| dest_error(e, &vs)), // removed in between
            }
        }))
    }

    fn remove_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a BackendAddr,
    ) -> BoxFuture<'a, Result<()>> {
        let (k, b) = (key(svc), *backend);
        Box::pin(
            self.with(move |ipvs| match ipvs.del_dest(&k, b.addr, b.port) {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e.into()),
            }),
        )
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServiceStats>>> {
        Box::pin(self.list_now())
    }

    /// One blocking pass over the netlink socket for every IPVS change, and one nftables
    /// transaction for the SNAT sets (the default would run `nft` once per new service).
    fn sync<'a>(&'a self, desired: &'a [DesiredService]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let have = self.list_now().await?;
            let removed: Vec<VirtualService> = have
                .iter()
                .map(|h| h.service)
                .filter(|s| !desired.iter().any(|d| d.service == *s))
                .collect();
            let added: Vec<VirtualService> = desired
                .iter()
                .map(|d| d.service)
                .filter(|s| !have.iter().any(|h| h.service == *s))
                .collect();
            let (want, gone) = (desired.to_vec(), removed.clone());
            self.with(move |ipvs| {
                for svc in &gone {
                    match ipvs.del_service(&key(svc)) {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                for d in &want {
                    let k = key(&d.service);
                    let old = have.iter().find(|h| h.service == d.service);
                    match old {
                        None => ipvs.add_service(&Service::new(k, d.scheduler.name()))?,
                        Some(h) if h.scheduler != d.scheduler.name() => {
                            // Keep what else is set (persistence…): only the scheduler changes.
                            let mut next = ipvs
                                .service(&k)?
                                .map(|i| i.service)
                                .unwrap_or_else(|| Service::new(k, d.scheduler.name()));
                            next.scheduler = d.scheduler.name().to_string();
                            ipvs.update_service(&next)?
                        }
                        Some(_) => {}
                    }
                    let old_backends = old.map(|h| h.backends.as_slice()).unwrap_or_default();
                    for b in old_backends {
                        if !d.backends.iter().any(|x| x.addr == b.addr) {
                            match ipvs.del_dest(&k, b.addr.addr, b.addr.port) {
                                Ok(()) => {}
                                Err(e) if e.is_not_found() => {}
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                    for b in &d.backends {
                        let dest = Dest::masq(b.addr.addr, b.addr.port, b.weight);
                        match old_backends.iter().find(|x| x.addr == b.addr) {
                            None => ipvs
                                .add_dest(&k, &dest)
                                .map_err(|e| dest_error(e, &d.service))?,
                            Some(x) if x.weight != b.weight => ipvs
                                .update_dest(&k, &dest)
                                .map_err(|e| dest_error(e, &d.service))?,
                            Some(_) => {}
                        }
                    }
                }
                Ok(())
            })
            .await?;
            self.snat.remove(&removed).await?;
            self.snat.add(&added).await
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.with(|ipvs| Ok(ipvs.flush()?)).await?;
            self.snat.flush().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_both_ways() {
        let a = VirtualService::Addr {
            proto: Protocol::Udp,
            addr: [10, 0, 0, 2].into(),
            port: 53,
        };
        assert_eq!(key(&a), ServiceKey::udp([10, 0, 0, 2].into(), 53));
        assert_eq!(virtual_service(&key(&a)), Some(a));
        let m = VirtualService::Fwmark(256);
        assert_eq!(virtual_service(&key(&m)), Some(m));
        let sctp = ServiceKey::Addr {
            proto: ipvs::IPPROTO_SCTP,
            addr: [10, 0, 0, 2].into(),
            port: 9,
        };
        assert_eq!(virtual_service(&sctp), None);
    }

    /// Opening needs no privilege up to resolving the family, so this runs anywhere: on a
    /// kernel without IPVS it must fail with the one clear error.
    #[tokio::test]
    async fn open_says_when_the_kernel_has_no_ipvs() {
        match IpvsLb::open(None, LbConfig::default()).await {
            Err(Error::Ipvs(ipvs::Error::Unavailable)) => {}
            Ok(lb) => assert_eq!(lb.kind(), LbKind::Ipvs),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}
