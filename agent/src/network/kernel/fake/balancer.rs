//! The fake's balancers: their services live in their namespace's state.

use std::collections::BTreeMap;

use shoal_netlib::lb::{
    self, Backend, BackendAddr, BackendStats, LbKind, LoadBalancer, Scheduler, ServiceStats,
    VirtualService,
};

use super::FakeNs;

/// A balancer of the fake: its services live in its namespace's state.
#[derive(Debug)]
pub(super) struct FakeLb {
    pub(super) ns: FakeNs,
    pub(super) kind: LbKind,
}

fn lb_ok<'a, T: Send + 'a>(v: T) -> lb::BoxFuture<'a, lb::Result<T>> {
    Box::pin(std::future::ready(Ok(v)))
}

impl LoadBalancer for FakeLb {
    fn kind(&self) -> LbKind {
        self.kind
    }

    fn ensure_service<'a>(
        &'a self,
        svc: &'a VirtualService,
        sched: &'a Scheduler,
    ) -> lb::BoxFuture<'a, lb::Result<()>> {
        let _ = self.ns.change(|ns| match ns.lb.get_mut(svc) {
            Some((s, _)) if s == sched => None,
            Some((s, _)) => {
                *s = sched.clone();
                Some(format!("ipvsadm -E {} -s {}", arg(svc), sched.name()))
            }
            None => {
                ns.lb.insert(*svc, (sched.clone(), BTreeMap::new()));
                Some(format!("ipvsadm -A {} -s {}", arg(svc), sched.name()))
            }
        });
        lb_ok(())
    }

    fn remove_service<'a>(&'a self, svc: &'a VirtualService) -> lb::BoxFuture<'a, lb::Result<()>> {
        let _ = self.ns.change(|ns| {
            ns.lb
                .remove(svc)
                .map(|_| format!("ipvsadm -D {}", arg(svc)))
        });
        lb_ok(())
    }

    fn ensure_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a Backend,
    ) -> lb::BoxFuture<'a, lb::Result<()>> {
        let _ = self.ns.change(|ns| {
            let (_, b) = ns.lb.get_mut(svc)?;
            (b.insert(backend.addr, backend.weight) != Some(backend.weight))
                .then(|| format!("ipvsadm -a {} -r {}", arg(svc), backend.addr.addr))
        });
        lb_ok(())
    }

    fn remove_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a BackendAddr,
    ) -> lb::BoxFuture<'a, lb::Result<()>> {
        let _ = self.ns.change(|ns| {
            let (_, b) = ns.lb.get_mut(svc)?;
            b.remove(backend)
                .map(|_| format!("ipvsadm -d {} -r {}", arg(svc), backend.addr))
        });
        lb_ok(())
    }

    fn list(&self) -> lb::BoxFuture<'_, lb::Result<Vec<ServiceStats>>> {
        let stats = self.ns.read(|ns| {
            ns.lb
                .iter()
                .map(|(s, (sched, b))| ServiceStats {
                    service: *s,
                    scheduler: sched.name().to_string(),
                    backends: b
                        .iter()
                        .map(|(a, w)| BackendStats {
                            addr: *a,
                            weight: *w,
                            active_conns: None,
                            inactive_conns: None,
                            connections: 0,
                            bytes_in: None,
                            bytes_out: None,
                        })
                        .collect(),
                })
                .collect()
        });
        lb_ok(stats)
    }

    fn flush(&self) -> lb::BoxFuture<'_, lb::Result<()>> {
        let _ = self.ns.change(|ns| {
            let had = !ns.lb.is_empty();
            ns.lb.clear();
            had.then(|| "ipvsadm -C".to_string())
        });
        lb_ok(())
    }
}

fn arg(svc: &VirtualService) -> String {
    match svc {
        VirtualService::Fwmark(m) => format!("-f {m}"),
        VirtualService::Addr { proto, addr, port } => {
            let p = if *proto == lb::Protocol::Udp {
                "-u"
            } else {
                "-t"
            };
            format!("{p} {addr}:{port}")
        }
    }
}
