//! Round trips: an agent that takes deltas ends up with exactly the tables an agent sent them
//! whole holds, commit after commit (an agent's application mirrored here with the shared pure
//! functions of `shoal_proto::tables`; the agent's own is tested in `shoal-agent`).

use super::super::tables::{TableCache, Tables};
use super::super::AssignmentSet;
use crate::store::State;
use shoal_proto::model::{
    AttachedNetwork, EndpointMode, Network, NetworkAttachment, NetworkAttachmentSpec,
    NetworkDriver, Node, NodeState, Service, ServiceSpec, Task, TaskState, TaskStatus, VirtualIp,
};
use shoal_proto::pb;
use shoal_proto::tables::{dns_apply, lb_apply, peers_apply, PeerSet};
use std::collections::BTreeMap;

/// What an agent holds, as the agent keeps it.
#[derive(Default)]
struct Agent {
    lb: BTreeMap<String, (u64, pb::LbTable)>,
    dns: BTreeMap<String, (u64, pb::DnsNetwork)>,
    peers: BTreeMap<String, (u64, PeerSet)>,
    /// Updates that came as deltas, and whole.
    deltas: usize,
    wholes: usize,
}

impl Agent {
    fn apply(&mut self, up: &pb::TableUpdates) {
        if up.reset {
            (self.lb, self.dns, self.peers) = Default::default();
        }
        for u in &up.lb {
            if u.removed {
                self.lb.remove(&u.network_id);
            } else if let Some(t) = &u.full {
                self.wholes += 1;
                self.lb
                    .insert(u.network_id.clone(), (u.to_version, t.clone()));
            } else {
                self.deltas += 1;
                let held = self
                    .lb
                    .get_mut(&u.network_id)
                    .expect("a delta onto a held table");
                assert_eq!(held.0, u.from_version, "the base held");
                lb_apply(&mut held.1, u.delta.as_ref().unwrap());
                held.0 = u.to_version;
            }
        }
        for u in &up.dns {
            if u.removed {
                self.dns.remove(&u.network_id);
            } else if let Some(t) = &u.full {
                self.wholes += 1;
                self.dns
                    .insert(u.network_id.clone(), (u.to_version, t.clone()));
            } else {
                self.deltas += 1;
                let held = self.dns.get_mut(&u.network_id).unwrap();
                assert_eq!(held.0, u.from_version);
                dns_apply(&mut held.1, u.delta.as_ref().unwrap());
                held.0 = u.to_version;
            }
        }
        for u in &up.peers {
            if u.gone {
                self.peers.remove(&u.network_id);
            } else if u.full {
                self.wholes += 1;
                let mut set = PeerSet::new();
                peers_apply(&mut set, &u.put, &[]);
                self.peers.insert(u.network_id.clone(), (u.to_version, set));
            } else {
                self.deltas += 1;
                let held = self.peers.get_mut(&u.network_id).unwrap();
                assert_eq!(held.0, u.from_version);
                peers_apply(&mut held.1, &u.put, &u.removed);
                held.0 = u.to_version;
            }
        }
    }

    /// The tables in the whole form.
    fn whole(&self) -> (Vec<pb::LbTable>, Vec<pb::DnsNetwork>, Vec<pb::OverlayPeer>) {
        let peers = self
            .peers
            .iter()
            .flat_map(|(n, (_, s))| {
                s.iter().map(move |(ip, node_ip)| pb::OverlayPeer {
                    network_id: n.clone(),
                    ip: ip.clone(),
                    node_ip: node_ip.clone(),
                })
            })
            .collect();
        (
            self.lb.values().map(|(_, t)| t.clone()).collect(),
            self.dns.values().map(|(_, t)| t.clone()).collect(),
            peers,
        )
    }
}

fn task(id: &str, slot: u64, node: &str, ip: &str) -> Task {
    Task {
        id: id.into(),
        service_id: "s1".into(),
        service_name: "web".into(),
        slot,
        node_id: node.into(),
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Running,
            ..Default::default()
        },
        networks: vec![NetworkAttachment {
            network_id: "net1".into(),
            addresses: vec![format!("{ip}/16")],
            aliases: vec![],
            network: AttachedNetwork::default(),
        }],
        ..Default::default()
    }
}

fn state() -> State {
    let mut s = State::default();
    s.networks.insert(
        "net1".into(),
        Network {
            id: "net1".into(),
            name: "front".into(),
            driver: NetworkDriver::Overlay,
            subnet: "10.1.0.0/16".into(),
            gateway: "10.1.0.1".into(),
            ..Default::default()
        },
    );
    for i in 1..=3 {
        let id = format!("n{i}");
        s.nodes.insert(
            id.as_str().into(),
            Node {
                id: id.as_str().into(),
                addr: format!("192.0.2.{i}:2377"),
                state: NodeState::Ready,
                lb_addrs: [("net1".into(), format!("10.1.255.{i}/16"))]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        );
    }
    s.services.insert(
        "s1".into(),
        Service {
            id: "s1".into(),
            spec: ServiceSpec {
                name: "web".into(),
                endpoint_mode: EndpointMode::Vip,
                networks: vec![NetworkAttachmentSpec {
                    target: "net1".into(),
                    aliases: vec![],
                }],
                ..Default::default()
            },
            vips: vec![VirtualIp {
                network_id: "net1".into(),
                addr: "10.1.0.2/16".into(),
            }],
            ..Default::default()
        },
    );
    // 100 tasks over 3 nodes, one of them on n1 (so n1 holds net1's tables).
    for i in 0..100u64 {
        let t = task(
            &format!("t{i:03}"),
            i + 1,
            &format!("n{}", i % 3 + 1),
            &format!("10.1.{}.{}", i / 200, 10 + i % 200),
        );
        s.tasks.insert(t.id.clone(), t);
    }
    s.reindex();
    s
}

/// n1's tables whole, as an agent without deltas gets them.
fn truth(
    s: &State,
    tables: &Tables,
) -> (Vec<pb::LbTable>, Vec<pb::DnsNetwork>, Vec<pb::OverlayPeer>) {
    let a = AssignmentSet::new(false)
        .next(s, tables, "n1", true)
        .unwrap();
    (a.lb, a.dns, a.peers)
}

#[test]
fn deltas_give_the_agent_exactly_the_whole_tables() {
    let cache = TableCache::default();
    let mut s = state();
    let mut index = 1;
    let mut set = AssignmentSet::new(true);
    let mut agent = Agent::default();
    let t = cache.get(&s, index);
    let first = set.next(&s, &t, "n1", true).unwrap();
    let up = first.tables.as_ref().unwrap();
    assert!(
        up.reset && !first.lb_full && first.lb.is_empty(),
        "tables only through updates"
    );
    agent.apply(up);
    assert_eq!(agent.whole(), truth(&s, &t));
    assert_eq!(agent.deltas, 0);

    let mut step = |s: &mut State, what: &str, agent: &mut Agent, set: &mut AssignmentSet| {
        s.reindex();
        index += 1;
        let t = cache.get(s, index);
        if let Some(tables) = set.next(s, &t, "n1", false).and_then(|m| m.tables) {
            agent.apply(&tables);
        }
        assert_eq!(agent.whole(), truth(s, &t), "after: {what}");
    };
    // A backend added (on another node: a peer too), then one on n1 (not its own peer).
    let t = task("u001", 101, "n2", "10.1.1.1");
    s.tasks.insert(t.id.clone(), t);
    step(&mut s, "task added", &mut agent, &mut set);
    assert_eq!(agent.deltas, 3, "balancer, DNS and peers as deltas");
    let t = task("u002", 102, "n1", "10.1.1.2");
    s.tasks.insert(t.id.clone(), t);
    step(&mut s, "task added on n1", &mut agent, &mut set);
    // A backend's address replaced.
    s.tasks.get_mut("t001").unwrap().networks[0].addresses = vec!["10.1.2.1/16".into()];
    step(&mut s, "address replaced", &mut agent, &mut set);
    // A task ends; a node goes down (its tasks leave the balancer, not the peers).
    s.tasks.get_mut("t004").unwrap().status.state = TaskState::Complete;
    step(&mut s, "task ended", &mut agent, &mut set);
    s.nodes.get_mut("n3").unwrap().state = NodeState::Down;
    step(&mut s, "node down", &mut agent, &mut set);
    let wholes = agent.wholes;
    assert_eq!(wholes, 3, "nothing sent whole after the first message");
    // Every address at once: bigger as deltas than whole for the peers (each endpoint removed
    // and added), which go whole.
    for t in s.tasks.values_mut() {
        t.networks[0].addresses[0] = t.networks[0].addresses[0].replace("10.1.", "10.1.1");
    }
    step(&mut s, "every address", &mut agent, &mut set);
    assert!(agent.wholes > wholes);
    // The service goes (its tasks stay on the network, as peers).
    s.services.clear();
    step(&mut s, "service removed", &mut agent, &mut set);
    // The network disappears with its tasks.
    s.tasks.clear();
    s.networks.clear();
    for n in s.nodes.values_mut() {
        n.lb_addrs.clear();
    }
    step(&mut s, "network gone", &mut agent, &mut set);
    assert!(agent.lb.is_empty() && agent.dns.is_empty() && agent.peers.is_empty());
}

/// A session that missed several versions gets the chain of steps; one that missed more than
/// is kept, or whose tables are of another cache generation, gets the tables whole.
#[test]
fn old_bases_get_chains_or_whole_tables() {
    let cache = TableCache::default();
    let mut s = state();
    let mut set = AssignmentSet::new(true);
    let mut agent = Agent::default();
    agent.apply(
        &set.next(&s, &cache.get(&s, 1), "n1", true)
            .unwrap()
            .tables
            .unwrap(),
    );
    // Three commits the session does not see, then one message: a chain of 3 per table.
    for i in 0..3u64 {
        let t = task(&format!("v{i}"), 200 + i, "n2", &format!("10.1.3.{i}"));
        s.tasks.insert(t.id.clone(), t);
        s.reindex();
        cache.get(&s, 2 + i);
    }
    let t = cache.get(&s, 5);
    let up = set.next(&s, &t, "n1", false).unwrap().tables.unwrap();
    assert_eq!(up.lb.len(), 3);
    assert!(up.lb.iter().all(|u| u.delta.is_some()));
    agent.apply(&up);
    assert_eq!(agent.whole(), truth(&s, &t));
    // More changes than the history keeps.
    for i in 0..super::super::tables::HISTORY as u64 + 1 {
        let t = task(&format!("w{i}"), 300 + i, "n2", &format!("10.1.4.{i}"));
        s.tasks.insert(t.id.clone(), t);
        s.reindex();
        cache.get(&s, 6 + i);
    }
    let t = cache.get(&s, 100);
    let up = set.next(&s, &t, "n1", false).unwrap().tables.unwrap();
    assert!(
        up.lb.len() == 1 && up.lb[0].full.is_some(),
        "{:?}",
        up.lb.len()
    );
    agent.apply(&up);
    assert_eq!(agent.whole(), truth(&s, &t));
    // Leadership lost and regained: another generation, whole again (at the same index).
    cache.clear();
    s.tasks.remove("w0");
    s.reindex();
    let t = cache.get(&s, 100);
    let up = set.next(&s, &t, "n1", false).unwrap().tables.unwrap();
    assert!(up.lb[0].full.is_some() && up.dns[0].full.is_some() && up.peers[0].full);
    agent.apply(&up);
    assert_eq!(agent.whole(), truth(&s, &t));
}
