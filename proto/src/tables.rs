//! Deltas of the per-network tables the managers send to agents (balancers, DNS names, overlay
//! peers): pure functions that compute the difference of two versions of a table and apply it.
//!
//! The round trip is the contract: for tables `a` and `b` of one network, when
//! `diff(a, b)` is `Some(d)`, applying `d` to `a` gives exactly `b` — the same entries in the
//! same order (the managers sort services, backends and tasks by name, and so does `apply`), so
//! the data plane sees the very tables it would have been sent whole. `diff` gives `None` when
//! the change cannot be a delta (a table's own fields changed, or its keys are not unique); the
//! table is then sent whole.

use crate::pb;
use std::collections::{BTreeSet, HashMap};

/// Every entry of `new` not in `old`, and every entry of `old` not in `new` (both sorted and
/// without duplicates, as the managers keep them): `(added, removed)`.
pub fn sorted_diff<T: Ord + Clone>(old: &[T], new: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut i, mut j) = (0, 0);
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                removed.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                added.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                removed.push(a.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    (added, removed)
}

/// Items keyed by `key`, or `None` when two share a key.
fn keyed<T>(items: &[T], key: impl Fn(&T) -> &str) -> Option<HashMap<&str, &T>> {
    let mut m = HashMap::with_capacity(items.len());
    for it in items {
        if m.insert(key(it), it).is_some() {
            return None;
        }
    }
    Some(m)
}

/// `put` (entries of `new` absent from `old` or different there) and `removed` (keys of `old`
/// absent from `new`), both in the order of their table; `None` when keys repeat.
fn entries_diff<T: PartialEq + Clone>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> &str + Copy,
) -> Option<(Vec<T>, Vec<String>)> {
    let o = keyed(old, key)?;
    let n = keyed(new, key)?;
    let put = new
        .iter()
        .filter(|e| o.get(key(e)).is_none_or(|prev| *prev != *e))
        .cloned()
        .collect();
    let removed = old
        .iter()
        .filter(|e| !n.contains_key(key(e)))
        .map(|e| key(e).to_string())
        .collect();
    Some((put, removed))
}

/// `items` with the entries keyed `removed` dropped and `put` replacing or joining them, then
/// sorted by `order` (stable, as the managers sort).
fn entries_apply<T: Clone, K: Ord>(
    items: &mut Vec<T>,
    put: &[T],
    removed: &[String],
    key: impl Fn(&T) -> &str,
    order: impl Fn(&T) -> K,
) {
    let drop: BTreeSet<&str> = removed
        .iter()
        .map(String::as_str)
        .chain(put.iter().map(&key))
        .collect();
    items.retain(|e| !drop.contains(key(e)));
    items.extend(put.iter().cloned());
    items.sort_by_key(|e| order(e));
}

fn sid(s: &pb::LbService) -> &str {
    &s.service_id
}

fn tid(b: &pb::LbBackend) -> &str {
    &b.task_id
}

fn sname(s: &pb::DnsService) -> &str {
    &s.name
}

fn tname(t: &pb::DnsTask) -> &str {
    &t.name
}

fn lb_header_eq(a: &pb::LbTable, b: &pb::LbTable) -> bool {
    a.network_id == b.network_id
        && a.ingress == b.ingress
        && a.lb_addr == b.lb_addr
        && a.name == b.name
        && a.subnet == b.subnet
        && a.gateway == b.gateway
        && a.vni == b.vni
}

fn lb_service_header_eq(a: &pb::LbService, b: &pb::LbService) -> bool {
    a.service_id == b.service_id
        && a.name == b.name
        && a.vip == b.vip
        && a.fwmark == b.fwmark
        && a.ports == b.ports
}

/// What turns balancer table `old` into `new` (see the module's contract).
pub fn lb_diff(old: &pb::LbTable, new: &pb::LbTable) -> Option<pb::LbDelta> {
    if !lb_header_eq(old, new) {
        return None;
    }
    let o = keyed(&old.services, sid)?;
    keyed(&new.services, sid)?;
    let mut d = pb::LbDelta::default();
    for s in &new.services {
        match o.get(s.service_id.as_str()) {
            Some(p) if lb_service_header_eq(p, s) => {
                let (put, removed) = entries_diff(&p.backends, &s.backends, tid)?;
                if !put.is_empty() || !removed.is_empty() {
                    d.backends.push(pb::LbBackendsDelta {
                        service_id: s.service_id.clone(),
                        put,
                        removed,
                    });
                }
            }
            _ => d.put.push(s.clone()),
        }
    }
    let n: BTreeSet<&str> = new.services.iter().map(sid).collect();
    d.removed = old
        .services
        .iter()
        .filter(|s| !n.contains(s.service_id.as_str()))
        .map(|s| s.service_id.clone())
        .collect();
    Some(d)
}

/// Applies balancer delta `d` to `t` (see the module's contract).
pub fn lb_apply(t: &mut pb::LbTable, d: &pb::LbDelta) {
    for bd in &d.backends {
        if let Some(s) = t
            .services
            .iter_mut()
            .find(|s| s.service_id == bd.service_id)
        {
            entries_apply(&mut s.backends, &bd.put, &bd.removed, tid, |b| {
                b.name.clone()
            });
        }
    }
    entries_apply(&mut t.services, &d.put, &d.removed, sid, |s| s.name.clone());
}

/// Whether balancer delta `d` changes nothing.
pub fn lb_delta_is_empty(d: &pb::LbDelta) -> bool {
    d.put.is_empty() && d.removed.is_empty() && d.backends.is_empty()
}

/// What turns the names of network `old` into `new` (see the module's contract).
pub fn dns_diff(old: &pb::DnsNetwork, new: &pb::DnsNetwork) -> Option<pb::DnsDelta> {
    if old.network_id != new.network_id || old.name != new.name {
        return None;
    }
    let o = keyed(&old.services, sname)?;
    keyed(&new.services, sname)?;
    let mut d = pb::DnsDelta::default();
    for s in &new.services {
        match o.get(s.name.as_str()) {
            Some(p) if p.vip == s.vip && p.aliases == s.aliases => {
                let (put, removed) = entries_diff(&p.tasks, &s.tasks, tname)?;
                if !put.is_empty() || !removed.is_empty() {
                    d.tasks.push(pb::DnsTasksDelta {
                        service: s.name.clone(),
                        put,
                        removed,
                    });
                }
            }
            _ => d.put.push(s.clone()),
        }
    }
    let n: BTreeSet<&str> = new.services.iter().map(sname).collect();
    d.removed = old
        .services
        .iter()
        .filter(|s| !n.contains(s.name.as_str()))
        .map(|s| s.name.clone())
        .collect();
    Some(d)
}

/// Applies DNS delta `d` to `t` (see the module's contract).
pub fn dns_apply(t: &mut pb::DnsNetwork, d: &pb::DnsDelta) {
    for td in &d.tasks {
        if let Some(s) = t.services.iter_mut().find(|s| s.name == td.service) {
            entries_apply(&mut s.tasks, &td.put, &td.removed, tname, |t| {
                t.name.clone()
            });
        }
    }
    entries_apply(&mut t.services, &d.put, &d.removed, sname, |s| {
        s.name.clone()
    });
}

/// Whether DNS delta `d` changes nothing.
pub fn dns_delta_is_empty(d: &pb::DnsDelta) -> bool {
    d.put.is_empty() && d.removed.is_empty() && d.tasks.is_empty()
}

/// A network's remote overlay endpoints as an agent holds them: (overlay ip, node ip).
pub type PeerSet = BTreeSet<(String, String)>;

/// Applies a peers delta: `removed` go, then `put` come.
pub fn peers_apply(t: &mut PeerSet, put: &[pb::PeerEntry], removed: &[pb::PeerEntry]) {
    for p in removed {
        t.remove(&(p.ip.clone(), p.node_ip.clone()));
    }
    t.extend(put.iter().map(|p| (p.ip.clone(), p.node_ip.clone())));
}

#[cfg(test)]
mod tests;
