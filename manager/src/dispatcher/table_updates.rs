//! The per-network tables of one node as updates for an agent that takes deltas
//! (`SessionRequest.table_deltas`): per network, nothing when the agent holds the current
//! version, else the kept steps from its version when they are smaller than the table, else the
//! whole table; a removal for a network the node no longer needs. Pure: what the agent holds
//! comes in (the versions last sent), the updates go out.

use super::tables::{Endpoint, PeersVersioned, Tables, Versioned};
use shoal_proto::pb;
use std::collections::BTreeMap;

/// Per network: the version of its balancer table the agent holds and the node's address in it.
pub type LbKeys = BTreeMap<String, (u64, String)>;
/// Per network: the version of a table the agent holds.
pub type Keys = BTreeMap<String, u64>;

/// What to send for one network's table.
enum Plan<'a, D> {
    /// The agent holds the current version.
    Same,
    /// These steps, in order.
    Steps(&'a [std::sync::Arc<super::tables::Step<D>>]),
    /// The whole table.
    Full,
}

/// `held` is the version the agent holds (if any, and if it compares: see `trusted`).
fn plan<T, D>(held: Option<u64>, t: &Versioned<T, D>) -> Plan<'_, D> {
    match held.map(|v| t.steps_from(v)) {
        Some(Some([])) => Plan::Same,
        Some(Some(steps)) => Plan::Steps(steps),
        _ => Plan::Full,
    }
}

/// The balancer updates taking an agent from `held` to `want` (keys from `lb_keys`).
/// `trusted`: whether the versions of `held` were given by the cache that built `tables`.
pub fn lb(tables: &Tables, held: &LbKeys, want: &LbKeys, trusted: bool) -> Vec<pb::LbUpdate> {
    let mut out = Vec::new();
    for (id, (_, addr)) in want {
        let Some(t) = tables.lb.get(id) else {
            continue;
        };
        let base = held
            .get(id)
            .filter(|(_, a)| trusted && a == addr)
            .map(|(v, _)| *v);
        match plan(base, t) {
            Plan::Same => {}
            Plan::Steps(steps) => out.extend(steps.iter().map(|s| pb::LbUpdate {
                network_id: id.clone(),
                from_version: s.from,
                to_version: s.to,
                delta: Some(s.delta.clone()),
                ..Default::default()
            })),
            Plan::Full => {
                let mut full = pb::LbTable::clone(&t.value);
                full.lb_addr = addr.clone();
                out.push(pb::LbUpdate {
                    network_id: id.clone(),
                    to_version: t.version,
                    full: Some(full),
                    ..Default::default()
                });
            }
        }
    }
    out.extend(
        held.keys()
            .filter(|id| !want.contains_key(*id))
            .map(|id| pb::LbUpdate {
                network_id: id.clone(),
                removed: true,
                ..Default::default()
            }),
    );
    out
}

/// The DNS updates taking an agent from `held` to `want`.
pub fn dns(tables: &Tables, held: &Keys, want: &Keys, trusted: bool) -> Vec<pb::DnsUpdate> {
    let mut out = Vec::new();
    for id in want.keys() {
        let Some(t) = tables.dns.get(id) else {
            continue;
        };
        match plan(held.get(id).copied().filter(|_| trusted), t) {
            Plan::Same => {}
            Plan::Steps(steps) => out.extend(steps.iter().map(|s| pb::DnsUpdate {
                network_id: id.clone(),
                from_version: s.from,
                to_version: s.to,
                delta: Some(s.delta.clone()),
                ..Default::default()
            })),
            Plan::Full => out.push(pb::DnsUpdate {
                network_id: id.clone(),
                to_version: t.version,
                full: Some(pb::DnsNetwork::clone(&t.value)),
                ..Default::default()
            }),
        }
    }
    out.extend(
        held.keys()
            .filter(|id| !want.contains_key(*id))
            .map(|id| pb::DnsUpdate {
                network_id: id.clone(),
                removed: true,
                ..Default::default()
            }),
    );
    out
}

/// The endpoints of `eps` that are not on `node_id`, as the agent holds them.
fn entries<'a>(eps: impl IntoIterator<Item = &'a Endpoint>, node_id: &str) -> Vec<pb::PeerEntry> {
    let mut v: Vec<pb::PeerEntry> = eps
        .into_iter()
        .filter(|e| e.node_id != node_id)
        .map(|e| pb::PeerEntry {
            ip: e.ip.clone(),
            node_ip: e.node_ip.clone(),
        })
        .collect();
    v.dedup();
    v
}

/// The overlay peer updates taking the agent of `node_id` from `held` to `want` (its own
/// endpoints left out).
pub fn peers(
    tables: &Tables,
    node_id: &str,
    held: &Keys,
    want: &Keys,
    trusted: bool,
) -> Vec<pb::PeersUpdate> {
    let mut out = Vec::new();
    for id in want.keys() {
        let Some(t): Option<&PeersVersioned> = tables.peers.get(id) else {
            continue;
        };
        match plan(held.get(id).copied().filter(|_| trusted), t) {
            Plan::Same => {}
            Plan::Steps(steps) => {
                for s in steps {
                    let put = entries(&s.delta.added, node_id);
                    let removed = entries(&s.delta.removed, node_id);
                    out.push(pb::PeersUpdate {
                        network_id: id.clone(),
                        from_version: s.from,
                        to_version: s.to,
                        put,
                        removed,
                        ..Default::default()
                    });
                }
            }
            Plan::Full => out.push(pb::PeersUpdate {
                network_id: id.clone(),
                to_version: t.version,
                full: true,
                put: entries(t.value.iter(), node_id),
                ..Default::default()
            }),
        }
    }
    out.extend(
        held.keys()
            .filter(|id| !want.contains_key(*id))
            .map(|id| pb::PeersUpdate {
                network_id: id.clone(),
                gone: true,
                ..Default::default()
            }),
    );
    out
}

#[cfg(test)]
mod tests;
