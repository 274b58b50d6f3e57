//! Connection and byte counters of every balancer on this node, for `swarmd --metrics-addr`.

use shoal_netlib::lb::VirtualService;

use super::super::DataPlane;

/// Connections (and their bytes) this node's balancer on one network, and its tasks' own VIP
/// balancers, sent to one backend of a service (the kernel's counters: nftables' per-backend
/// named counters, or IPVS' `conns` and bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConnections {
    /// The network's name (`ingress` for the routing mesh).
    pub network: String,
    /// The service's name.
    pub service: String,
    /// The backend task's address on the network.
    pub backend: String,
    /// Connections sent to it since its balancer entry was made.
    pub connections: u64,
    /// Bytes of those connections to it and back from it (IPVS' in/out bytes, or nftables'
    /// per-backend byte counters); `None` where the balancer cannot tell.
    pub bytes: Option<(u64, u64)>,
}

impl DataPlane {
    /// Every backend of every balancer on this node with its connection and byte counters
    /// (`ipvsadm -Ln --stats` for each `lb_` namespace and `ingress_sbox`, plus the tasks' own
    /// VIP balancers). A balancer that cannot be read is left out.
    pub async fn lb_connections(&self) -> Vec<BackendConnections> {
        let nets: Vec<String> = self
            .inner
            .lb
            .lock()
            .await
            .balancers
            .keys()
            .cloned()
            .collect();
        let mut clients = std::collections::BTreeMap::new();
        for net in nets {
            let counts = self.client_connections(&net).await;
            clients.insert(net, counts);
        }
        let st = self.inner.lb.lock().await;
        let mut out = Vec::new();
        for (net, b) in &st.balancers {
            let Some(table) = st.tables.iter().find(|t| &t.network_id == net) else {
                continue;
            };
            let Ok(stats) = b.lb.list().await else {
                continue;
            };
            let from_tasks = clients.get(net.as_str());
            for s in stats {
                let VirtualService::Fwmark(mark) = s.service else {
                    continue;
                };
                let Some(svc) = table.services.iter().find(|x| x.fwmark == mark) else {
                    continue;
                };
                for bk in &s.backends {
                    let task = from_tasks
                        .and_then(|c| c.get(&(mark, bk.addr.addr)))
                        .copied()
                        .unwrap_or_default();
                    out.push(BackendConnections {
                        network: table.name.clone(),
                        service: svc.name.clone(),
                        backend: bk.addr.addr.to_string(),
                        connections: bk.connections + task.connections,
                        bytes: bk
                            .bytes_in
                            .zip(bk.bytes_out)
                            .map(|(i, o)| (i + task.bytes_in, o + task.bytes_out)),
                    });
                }
            }
        }
        out
    }
}
