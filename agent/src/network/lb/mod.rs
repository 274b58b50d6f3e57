//! Service load balancing on a node (DESIGN §5).
//!
//! Per overlay network the node has tasks on, a namespace `lb_<netid>` whose `eth0` sits on the
//! network's bridge (in `ov_<netid>`) with the node's balancer address; each service's VIP on
//! the network is a /32 on it, packets to a VIP get the VIP's firewall mark, and a
//! `LoadBalancer` (IPVS or nftables) sends each marked connection round robin to the
//! service's running tasks on that network, anywhere in the cluster, SNATed to the balancer's
//! address so the answers come back through it. The node's own tasks do not need it for TCP
//! and UDP: each balances the VIPs of its networks in its own namespace ([`client`]), and the
//! `lb_` namespace takes the rest.
//!
//! The routing mesh balances the `ingress` network from the node's own namespace, which has a
//! leg (`swingress`) on the ingress overlay's bridge: packets to a published port on one of the
//! node's addresses (from outside, in PREROUTING; from the node itself, `localhost` included, in
//! OUTPUT) get the port's mark, and an nftables balancer DNATs them round robin to the
//! service's tasks on ingress, SNATed to the node's ingress address. Docker puts that balancer
//! in a namespace of its own (`ingress_sbox`) behind a second DNAT; Shoal removes an
//! `ingress_sbox` left by an older agent. A task whose published port differs from its target
//! port redirects one to the other in its own namespace (as Docker does). Published ports are
//! held open on the node so nothing else can bind them, and refused while no task serves them.
//!
//! [`DataPlane::apply_lb`] converges all of it to the managers' tables: level-triggered, from
//! whatever exists (a restarted agent finds its namespaces and balancers and corrects them), one
//! network at a time, touching only what changed. [`plan`] says what a table asks for;
//! [`balancer`] builds and removes a network's balancer; [`client`] the tasks' own;
//! [`report`] reads them back.

mod balancer;
mod client;
pub(super) mod plan;
mod report;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_netlib::lb::{LbChoice, LoadBalancer};
use shoal_netlib::names;
use shoal_proto::model::Protocol;
use shoal_proto::pb;
use tracing::{info, warn};

use super::kernel::{Namespace, Reservation};
use super::overlay::cidr;
use super::{DataPlane, Result};
use plan::MarkRule;

/// One network's balancer on this node.
struct Balancer {
    ns: Arc<dyn Namespace>,
    lb: Box<dyn LoadBalancer>,
    addr: (Ipv4Addr, u8),
    /// The routing mesh's, in the node's own namespace.
    ingress: bool,
    /// Mark rules last applied, to skip an unchanged table.
    marks: Vec<MarkRule>,
    /// VIPs last put on `eth0`.
    vips: BTreeSet<Ipv4Addr>,
}

impl Balancer {
    /// Its namespace as reports name it: `lb_<netid>`, or `node` for the mesh's.
    fn ns_label(&self) -> &str {
        if self.ingress {
            "node"
        } else {
            self.ns.name()
        }
    }
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("ns", &self.ns_label())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The balancers of the node.
#[derive(Debug, Default)]
pub(super) struct LbPlane {
    choice: Option<LbChoice>,
    balancers: BTreeMap<String, Balancer>,
    reserved: BTreeMap<(Protocol, u16), Reservation>,
    /// The last tables applied (for `network inspect --lb` names, and the tasks' own VIP
    /// balancers).
    tables: Vec<pb::LbTable>,
    /// Each local task's own VIP balancer, by task id (see [`client`]).
    clients: BTreeMap<String, client::ClientLb>,
    /// Tasks without VIPs to balance whose namespace was cleared of client tables once.
    cleared: BTreeSet<String>,
    /// Connections counted by the VIP balancers of tasks gone since, per backend.
    retired: BTreeMap<client::CounterKey, client::Counts>,
}

impl DataPlane {
    /// Which balancer to build (`swarmd --lb-backend`); `auto` until set.
    pub async fn set_lb_backend(&self, choice: LbChoice) {
        self.inner.lb.lock().await.choice = Some(choice);
    }

    /// Converges the node's balancers to `tables` (every balancer the node must hold), each
    /// local task's own VIP balancer, and the routing mesh's published ports to those of the
    /// ingress table.
    pub async fn apply_lb(&self, tables: &[pb::LbTable]) -> Result<()> {
        let mut st = self.inner.lb.lock().await;
        let wanted: BTreeMap<&str, &pb::LbTable> =
            tables.iter().map(|t| (t.network_id.as_str(), t)).collect();
        // Balancers no longer wanted, then namespaces nobody holds (a crash's, a past network's).
        let gone: Vec<String> = st
            .balancers
            .keys()
            .filter(|k| !wanted.contains_key(k.as_str()))
            .cloned()
            .collect();
        for net in gone {
            if let Some(b) = st.balancers.remove(&net) {
                self.drop_balancer(&net, b).await;
            }
        }
        let keep: BTreeSet<String> = tables.iter().filter_map(plan::ns_name).collect();
        let kernel = &self.inner.kernel;
        for name in kernel.list_ns().unwrap_or_default() {
            let ours = name.starts_with(names::LB_NS) || name == names::INGRESS_SBOX;
            if ours && !keep.contains(&name) {
                info!(ns = %name, "removing a balancer namespace no network needs here");
                let _ = kernel.delete_ns(&name);
            }
        }
        let mut first_err = None;
        for t in tables {
            if let Err(err) = self.apply_table(&mut st, t).await {
                warn!(net.id = %t.network_id, "programming the balancer: {err}");
                first_err.get_or_insert(err);
            }
        }
        let ports = plan::mesh_ports(tables);
        self.reserve_ports(&mut st, &ports);
        let local = plan::local_mesh_ports(tables);
        let cluster = ports.difference(&local).copied().collect();
        st.tables = tables.to_vec();
        client::prune_retired(&mut st.retired, tables);
        self.sync_clients(&mut st).await;
        self.set_mesh(cluster, local).await?;
        match first_err {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Writes `task`'s own VIP balancer from the tables last applied (its sandbox is new, or
    /// was found again after a restart). A failure is logged: the `lb_` namespaces still
    /// balance its connections.
    pub(super) async fn sync_task_vips(&self, task: &str) {
        let nets = self.overlay_tasks().await.remove(task).unwrap_or_default();
        let mut st = self.inner.lb.lock().await;
        self.sync_client(&mut st, task, &nets).await;
    }

    /// Forgets `task`'s own VIP balancer, whose handle would keep its namespace alive (its
    /// counts still add up in the backends' connections).
    pub(super) async fn drop_task_vips(&self, task: &str) {
        self.retire_client(task).await;
    }

    async fn apply_table(&self, st: &mut LbPlane, t: &pb::LbTable) -> Result<()> {
        let addr = cidr(&t.lb_addr)?;
        let stale = st
            .balancers
            .get(&t.network_id)
            .is_some_and(|b| b.addr != addr || b.ingress != t.ingress);
        if stale {
            if let Some(b) = st.balancers.remove(&t.network_id) {
                self.drop_balancer(&t.network_id, b).await;
            }
        }
        let b = match st.balancers.entry(t.network_id.clone()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let choice = st.choice.unwrap_or(LbChoice::Auto);
                let b = self.make_balancer(t, addr, choice).await?;
                info!(net.id = %t.network_id, ns = %b.ns_label(), kind = ?b.lb.kind(), "balancer ready");
                e.insert(b)
            }
        };
        let want = plan::desired(t);
        // VIPs first (IPVS balances only to local addresses), then marks, then backends; each
        // only when it changed (one backend more among 1,000 services touches one service).
        if b.vips != want.vips {
            let have: BTreeSet<Ipv4Addr> =
                b.ns.addrs("eth0")
                    .await?
                    .into_iter()
                    .filter(|(_, prefix)| *prefix == 32)
                    .map(|(a, _)| a)
                    .collect();
            for vip in want.vips.difference(&have) {
                b.ns.ensure_addr("eth0", *vip, 32).await?;
            }
            for gone in have.difference(&want.vips) {
                b.ns.del_addr("eth0", *gone, 32).await?;
            }
            b.vips = want.vips;
        }
        if b.marks != want.marks {
            b.ns.apply_nft(&plan::mark_rules(&want.marks, b.ingress))
                .await?;
            b.marks = want.marks;
        }
        b.lb.sync(&want.services).await?;
        Ok(())
    }
}
