//! `network inspect --lb`: a network's balancer on this node as the kernel has it, with the
//! names of the services and tasks it balances to.

use shoal_netlib::lb::{ServiceStats, VirtualService};
use shoal_proto::pb;

use super::super::{DataPlane, Error, Result};

impl DataPlane {
    /// `ipvsadm -Ln --stats` of the balancer of network `net` on this node, with the names of
    /// the services and tasks it balances to; a backend's connections include those the node's
    /// tasks sent it from their own namespaces.
    pub async fn lb_report(&self, net: &str) -> Result<pb::LbNodeReport> {
        let clients = self.client_connections(net).await;
        let st = self.inner.lb.lock().await;
        let b = st.balancers.get(net).ok_or(Error::NoBalancer)?;
        let table = st.tables.iter().find(|t| t.network_id == net);
        let stats: Vec<ServiceStats> = b.lb.list().await?;
        let mut out = pb::LbNodeReport {
            namespace: b.ns_label().to_string(),
            kind: format!("{:?}", b.lb.kind()).to_lowercase(),
            lb_addr: format!("{}/{}", b.addr.0, b.addr.1),
            ..Default::default()
        };
        for s in stats {
            let VirtualService::Fwmark(mark) = s.service else {
                continue;
            };
            let svc = table.and_then(|t| t.services.iter().find(|x| x.fwmark == mark));
            out.services.push(pb::LbServiceReport {
                fwmark: mark,
                scheduler: s.scheduler.clone(),
                name: svc.map(|x| x.name.clone()).unwrap_or_default(),
                vip: svc.map(|x| x.vip.clone()).unwrap_or_default(),
                ports: svc.map(|x| x.ports.clone()).unwrap_or_default(),
                backends: s
                    .backends
                    .iter()
                    .map(|bk| {
                        let name = svc
                            .and_then(|x| {
                                x.backends.iter().find(|y| y.ip == bk.addr.addr.to_string())
                            })
                            .map(|y| y.name.clone())
                            .unwrap_or_default();
                        pb::LbBackendReport {
                            name,
                            addr: bk.addr.addr.to_string(),
                            forward: "Masq".into(),
                            weight: bk.weight,
                            active: bk.active_conns.map(u64::from),
                            inactive: bk.inactive_conns.map(u64::from),
                            connections: bk.connections
                                + clients
                                    .get(&(mark, bk.addr.addr))
                                    .map_or(0, |c| c.connections),
                        }
                    })
                    .collect(),
            });
        }
        Ok(out)
    }
}
