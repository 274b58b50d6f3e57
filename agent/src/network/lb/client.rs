//! VIPs balanced in the client's own namespace (issue 22; Docker does the same with IPVS in each
//! container's sandbox).
//!
//! A task on an overlay network gets, in its namespace, the balancer of every service VIP of
//! its networks: a TCP or UDP packet it sends to a VIP is marked in OUTPUT
//! (`shoal_vipmark`), and the marked connection is DNATed there to a backend, round robin, by
//! an nftables balancer (`shoal_vip`) without SNAT. The backend sees the client's own address
//! and answers it directly over the overlay; conntrack in the client's namespace undoes the
//! DNAT. No packet of such a connection crosses the network's `lb_` namespace, whose extra
//! hop cost a quarter of the connection rate (docs/benchmarks.md (u)).
//!
//! The `lb_` namespace stays: it answers what is neither TCP nor UDP (`ping` a VIP), a task
//! whose table is not written yet, and the counters of both add up in `network inspect --lb`.
//!
//! Marks are unique per network only (256 + the VIP's offset in its subnet), and a task can be
//! on several networks: in a client the mark of a VIP is its network's mark plus
//! `k << 16`, `k` the network's place among the task's networks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::json;
use shoal_netlib::lb::{DesiredService, LbChoice, LbConfig, LoadBalancer, VirtualService};
use shoal_netlib::names;
use shoal_netlib::nft::{expr, Batch, Family};
use shoal_proto::pb;
use tracing::{debug, warn};

use super::super::kernel::Namespace;
use super::super::{DataPlane, Result};
use super::plan::{self, MarkRule};
use super::LbPlane;

/// The client's balancer table.
const CLIENT_LB_TABLE: &str = "shoal_vip";
/// The client's table marking packets to VIPs.
const CLIENT_MARK_TABLE: &str = "shoal_vipmark";

/// What one task's namespace must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ClientDesired {
    /// VIP → the client's mark for it.
    marks: BTreeMap<Ipv4Addr, u32>,
    /// One fwmark service per VIP, with its backends.
    services: Vec<DesiredService>,
    /// The client's mark → (network id, the network's own mark).
    origin: BTreeMap<u32, (String, u32)>,
}

impl ClientDesired {
    fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// One task's client-side balancer.
pub(super) struct ClientLb {
    /// The task's namespace (its handle goes with this value: see `release`).
    ns: Arc<dyn Namespace>,
    lb: Arc<dyn LoadBalancer>,
    applied: ClientDesired,
}

/// A backend's counter key: (network id, the network's mark, backend address).
pub(super) type CounterKey = (String, u32, Ipv4Addr);

/// What the client balancers counted for one backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    /// Connections sent to it.
    pub(super) connections: u64,
    /// Bytes sent to it on those connections.
    pub(super) bytes_in: u64,
    /// Bytes it answered on them.
    pub(super) bytes_out: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.connections += o.connections;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// What reads one client's counters without the balancers' lock: its balancer and its marks.
struct Reader {
    lb: Arc<dyn LoadBalancer>,
    origin: BTreeMap<u32, (String, u32)>,
}

impl Reader {
    fn of(c: &ClientLb) -> Reader {
        Reader {
            lb: Arc::clone(&c.lb),
            origin: c.applied.origin.clone(),
        }
    }

    /// The client's connections per backend of the networks `keep` keeps (one `nft` run).
    async fn counts(&self, keep: impl Fn(&str) -> bool) -> BTreeMap<CounterKey, Counts> {
        let mut out = BTreeMap::new();
        let Ok(stats) = self.lb.list().await else {
            return out;
        };
        for s in stats {
            let VirtualService::Fwmark(ours) = s.service else {
                continue;
            };
            let Some((net, mark)) = self.origin.get(&ours).filter(|(n, _)| keep(n)) else {
                continue;
            };
            for bk in &s.backends {
                *out.entry((net.clone(), *mark, bk.addr.addr)).or_default() += Counts {
                    connections: bk.connections,
                    bytes_in: bk.bytes_in.unwrap_or(0),
                    bytes_out: bk.bytes_out.unwrap_or(0),
                };
            }
        }
        out
    }
}

impl std::fmt::Debug for ClientLb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLb")
            .field("services", &self.applied.services.len())
            .finish_non_exhaustive()
    }
}

/// What a task on the overlay networks `nets` must hold, from the node's `tables`: the VIPs
/// of every network of `nets` that has a table (ingress has no VIPs to balance here).
pub(super) fn client_desired(nets: &[String], tables: &[pb::LbTable]) -> ClientDesired {
    let mut out = ClientDesired::default();
    for (k, net) in nets.iter().enumerate() {
        let Some(t) = tables.iter().find(|t| &t.network_id == net && !t.ingress) else {
            continue;
        };
        let Ok(k) = u32::try_from(k) else { break };
        if k > 0xffff {
            break;
        }
        let want = plan::desired(t);
        let marks: BTreeMap<u32, Ipv4Addr> = want
            .marks
            .iter()
            .filter_map(|m| match m {
                MarkRule::Vip(vip, mark) => Some((*mark, *vip)),
                MarkRule::Port(..) => None,
            })
            .collect();
        for mut s in want.services {
            let VirtualService::Fwmark(mark) = s.service else {
                continue;
            };
            let Some(vip) = marks.get(&mark) else {
                continue;
            };
            let ours = mark + (k << 16);
            out.marks.insert(*vip, ours);
            out.origin.insert(ours, (net.clone(), mark));
            s.service = VirtualService::Fwmark(ours);
            out.services.push(s);
        }
    }
    out
}

/// The client's mark table, whole: a connection to a VIP gets the VIP's mark on its first
/// packet (one map lookup in a nat chain, which no later packet crosses: the DNAT that reads the
/// mark sees only that packet too).
fn client_mark_rules(marks: &BTreeMap<Ipv4Addr, u32>) -> Batch {
    let t = CLIENT_MARK_TABLE;
    let mut b = plan::fresh_mark_table(t, "output", plan::MarkChain::FirstPacket);
    if !marks.is_empty() {
        let pairs = marks
            .iter()
            .map(|(vip, mark)| (json!(vip.to_string()), json!(mark)))
            .collect();
        b.add_rule(
            Family::Ip,
            t,
            "output",
            vec![
                expr::eq(expr::meta("l4proto"), json!({"set": ["tcp", "udp"]})),
                json!({"mangle": {
                    "key": {"meta": {"key": "mark"}},
                    "value": expr::map_lookup(expr::ip("daddr"), expr::anon_map(pairs)),
                }}),
            ],
            None,
        );
    }
    b
}

impl DataPlane {
    /// Converges every local task's client-side balancer to the tables last applied; drops
    /// those of tasks that are gone.
    pub(super) async fn sync_clients(&self, st: &mut LbPlane) {
        let tasks = self.overlay_tasks().await;
        st.clients.retain(|task, _| tasks.contains_key(task));
        st.cleared.retain(|task| tasks.contains_key(task));
        for (task, nets) in &tasks {
            self.sync_client(st, task, nets).await;
        }
    }

    /// Converges the client-side balancer of `task` (on the overlay networks `nets`).
    pub(super) async fn sync_client(&self, st: &mut LbPlane, task: &str, nets: &[String]) {
        let want = client_desired(nets, &st.tables);
        if st.clients.get(task).map(|c| &c.applied) == Some(&want) {
            return;
        }
        if want.is_empty() && !st.clients.contains_key(task) {
            // Nothing to balance; but a namespace found again after a restart may still hold
            // the tables of VIPs that went away meanwhile: removed once per task.
            if st.cleared.insert(task.to_string()) {
                if let Err(err) = self.clear_client(task).await {
                    warn!(task.id = task, "removing the task's VIP balancer: {err}");
                }
            }
            return;
        }
        if let Err(err) = self.write_client(st, task, want).await {
            // The `lb_` namespace still balances this task's connections.
            warn!(task.id = task, "programming the task's VIP balancer: {err}");
        }
    }

    /// Removes the client tables from `task`'s namespace, whether they are there or not.
    async fn clear_client(&self, task: &str) -> Result<()> {
        let ns = self.inner.kernel.open_ns(&names::task_ns(task))?;
        let mut b = Batch::new();
        for t in [CLIENT_MARK_TABLE, CLIENT_LB_TABLE] {
            b.add_table(Family::Ip, t).delete_table(Family::Ip, t);
        }
        ns.apply_nft(&b).await
    }

    async fn write_client(&self, st: &mut LbPlane, task: &str, want: ClientDesired) -> Result<()> {
        let c = match st.clients.entry(task.to_string()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                // Never made here: a task's namespace is `prepare`'s to make.
                let ns = self.inner.kernel.open_ns(&names::task_ns(task))?;
                let config = LbConfig {
                    table: CLIENT_LB_TABLE.into(),
                    snat: None,
                };
                let lb = Arc::from(ns.open_lb(LbChoice::Nftables, config).await?);
                e.insert(ClientLb {
                    ns,
                    lb,
                    applied: ClientDesired::default(),
                })
            }
        };
        // Backends before marks on the way in, marks before backends on the way out: a marked
        // packet always finds its service (an unmarked one goes to `lb_`).
        let fewer: BTreeSet<u32> = c
            .applied
            .origin
            .keys()
            .filter(|m| !want.origin.contains_key(m))
            .copied()
            .collect();
        if fewer.is_empty() {
            c.lb.sync(&want.services).await?;
        }
        if c.applied.marks != want.marks {
            c.ns.apply_nft(&client_mark_rules(&want.marks)).await?;
        }
        if !fewer.is_empty() {
            c.lb.sync(&want.services).await?;
        }
        debug!(
            task.id = task,
            vips = want.marks.len(),
            "task's VIP balancer written"
        );
        c.applied = want;
        Ok(())
    }

    /// Connections (and bytes) the client-side balancers of this node sent to each backend of
    /// network `net`, those of tasks gone since included (so that the sums only grow): (the
    /// network's mark, backend address) → counts. The tables are read (one `nft` run per task)
    /// without holding the balancers' lock.
    pub(super) async fn client_connections(&self, net: &str) -> BTreeMap<(u32, Ipv4Addr), Counts> {
        let (readers, mut out): (Vec<Reader>, BTreeMap<(u32, Ipv4Addr), Counts>) = {
            let st = self.inner.lb.lock().await;
            let readers = st
                .clients
                .values()
                .filter(|c| c.applied.origin.values().any(|(n, _)| n == net))
                .map(Reader::of)
                .collect();
            let retired = st
                .retired
                .iter()
                .filter(|((n, _, _), _)| n == net)
                .map(|((_, mark, addr), count)| ((*mark, *addr), *count))
                .collect();
            (readers, retired)
        };
        for r in readers {
            for ((_, mark, addr), count) in r.counts(|n| n == net).await {
                *out.entry((mark, addr)).or_default() += count;
            }
        }
        out
    }

    /// Forgets `task`'s client balancer, keeping its last counts among the retired ones.
    pub(super) async fn retire_client(&self, task: &str) {
        let gone = {
            let mut st = self.inner.lb.lock().await;
            st.cleared.remove(task);
            st.clients.remove(task)
        };
        let Some(c) = gone else { return };
        let last = Reader::of(&c).counts(|_| true).await;
        drop(c); // its handle, which would keep the task's namespace alive
        let mut st = self.inner.lb.lock().await;
        for (key, count) in last {
            *st.retired.entry(key).or_default() += count;
        }
    }
}

/// Keeps the retired counts of backends that `tables` still list (a backend gone ends its
/// series).
pub(super) fn prune_retired(retired: &mut BTreeMap<CounterKey, Counts>, tables: &[pb::LbTable]) {
    retired.retain(|(net, mark, addr), _| {
        tables
            .iter()
            .filter(|t| &t.network_id == net)
            .flat_map(|t| &t.services)
            .filter(|s| s.fwmark == *mark)
            .flat_map(|s| &s.backends)
            .any(|b| b.ip.parse::<Ipv4Addr>().ok() == Some(*addr))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(net: &str, third: u8, ingress: bool) -> pb::LbTable {
        pb::LbTable {
            network_id: net.into(),
            ingress,
            lb_addr: format!("10.0.{third}.250/24"),
            services: vec![pb::LbService {
                name: "web".into(),
                fwmark: 0x105,
                vip: format!("10.0.{third}.5/24"),
                backends: vec![pb::LbBackend {
                    ip: format!("10.0.{third}.7"),
                    ..Default::default()
                }],
                ports: vec![pb::LbPort {
                    protocol: pb::Protocol::Tcp as i32,
                    published: 8080,
                    target: 80,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn marks_of_two_networks_do_not_collide() {
        let tables = [table("a", 1, false), table("b", 2, false)];
        let d = client_desired(&["a".into(), "b".into()], &tables);
        let vip_a: Ipv4Addr = "10.0.1.5".parse().unwrap();
        let vip_b: Ipv4Addr = "10.0.2.5".parse().unwrap();
        assert_eq!(d.marks, BTreeMap::from([(vip_a, 0x105), (vip_b, 0x1_0105)]));
        assert_eq!(d.origin[&0x1_0105], ("b".to_string(), 0x105));
        let services: Vec<VirtualService> = d.services.iter().map(|s| s.service).collect();
        assert_eq!(
            services,
            [
                VirtualService::Fwmark(0x105),
                VirtualService::Fwmark(0x1_0105)
            ]
        );
        assert_eq!(d.services[1].backends[0].addr.addr.to_string(), "10.0.2.7");
    }

    #[test]
    fn ingress_and_networks_without_a_table_give_nothing() {
        let tables = [table("in", 0, true)];
        assert!(client_desired(&["in".into(), "x".into()], &tables).is_empty());
    }

    #[test]
    fn retired_counts_go_with_their_backend() {
        let a: Ipv4Addr = "10.0.1.7".parse().unwrap();
        let gone: Ipv4Addr = "10.0.1.8".parse().unwrap();
        let n = |connections| Counts {
            connections,
            ..Default::default()
        };
        let mut retired = BTreeMap::from([
            (("a".to_string(), 0x105, a), n(3)),
            (("a".to_string(), 0x105, gone), n(4)),
            (("b".to_string(), 0x105, a), n(5)),
        ]);
        prune_retired(&mut retired, &[table("a", 1, false)]);
        assert_eq!(
            retired,
            BTreeMap::from([(("a".to_string(), 0x105, a), n(3))])
        );
    }

    #[test]
    fn the_mark_table_matches_tcp_and_udp_only() {
        let marks = BTreeMap::from([("10.0.1.5".parse().unwrap(), 0x105)]);
        let text = client_mark_rules(&marks).to_json().to_string();
        assert!(text.contains(r#""set":["tcp","udp"]"#), "{text}");
        assert!(text.contains(r#"["10.0.1.5",261]"#), "{text}");
        // A nat chain: the connection's first packet only.
        assert!(
            text.contains(r#""table":"shoal_vipmark","type":"nat""#),
            "{text}"
        );
        let empty = client_mark_rules(&BTreeMap::new()).to_json().to_string();
        assert!(!empty.contains("mangle"), "{empty}");
    }
}
