//! The per-network tables (balancers, DNS names, overlay peers) as this agent holds them, with
//! the version of each, for managers that send them as versioned updates and deltas
//! (`Assignments.tables`, asked for with `SessionRequest.table_deltas`).
//!
//! [`HeldTables::apply`] applies a message's updates and rewrites the message into the form the
//! worker has always taken: `lb_full`/`dns_full`/`peers_full` with every table of that kind,
//! set only for the kinds that changed. So the data plane sees exactly the tables a manager
//! sending them whole would have sent. An update that does not start from the version held is
//! refused before anything is applied ([`Stale`]): the session must start again (its first
//! message carries every table whole).

use shoal_proto::pb;
use shoal_proto::tables::{dns_apply, lb_apply, peers_apply, PeerSet};
use std::collections::BTreeMap;

/// An update whose base is not the version held: resync.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} table of network {network}: an update from version {from}, but this node holds {held:?}; resyncing")]
pub struct Stale {
    /// "balancer", "dns" or "peers".
    pub kind: &'static str,
    /// The network.
    pub network: String,
    /// The version the update starts from.
    pub from: u64,
    /// The version held (none: no such table).
    pub held: Option<u64>,
}

/// The tables held, per network id, each with its version.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HeldTables {
    lb: BTreeMap<String, (u64, pb::LbTable)>,
    dns: BTreeMap<String, (u64, pb::DnsNetwork)>,
    peers: BTreeMap<String, (u64, PeerSet)>,
}

/// One update of any kind, as far as its version chain goes.
struct Link<'a> {
    network: &'a str,
    from: u64,
    to: u64,
    /// A whole table or a removal: no base needed.
    whole: bool,
    removed: bool,
}

/// The balancer and DNS updates have the same shape: a whole table in `full`, or `removed`.
macro_rules! link_from_table_update {
    ($($update:ty),*) => {$(
        impl<'a> From<&'a $update> for Link<'a> {
            fn from(u: &'a $update) -> Self {
                Link {
                    network: &u.network_id,
                    from: u.from_version,
                    to: u.to_version,
                    whole: u.full.is_some(),
                    removed: u.removed,
                }
            }
        }
    )*};
}
link_from_table_update!(pb::LbUpdate, pb::DnsUpdate);

/// Peers say `full` and `gone` where the others have a table and `removed`.
impl<'a> From<&'a pb::PeersUpdate> for Link<'a> {
    fn from(u: &'a pb::PeersUpdate) -> Self {
        Link {
            network: &u.network_id,
            from: u.from_version,
            to: u.to_version,
            whole: u.full,
            removed: u.gone,
        }
    }
}

/// Checks that each delta of `links` starts from the version held (or left by the update of
/// the same network before it).
fn check<'a>(
    kind: &'static str,
    held: impl Fn(&str) -> Option<u64>,
    links: impl Iterator<Item = Link<'a>>,
) -> Result<(), Stale> {
    let mut seen: BTreeMap<&str, Option<u64>> = BTreeMap::new();
    for l in links {
        let have = match seen.get(l.network) {
            Some(v) => *v,
            None => held(l.network),
        };
        if !l.whole && !l.removed && have != Some(l.from) {
            return Err(Stale {
                kind,
                network: l.network.to_string(),
                from: l.from,
                held: have,
            });
        }
        seen.insert(l.network, (!l.removed).then_some(l.to));
    }
    Ok(())
}

impl HeldTables {
    /// Applies the table updates of `a` (if it has any) and puts the tables of the kinds that
    /// changed into its `*_full` fields; a message without them (from a manager that sends
    /// tables whole) is left as it is, and what it carries whole is held at no known version.
    /// On [`Stale`] nothing is applied.
    pub fn apply(&mut self, a: &mut pb::Assignments) -> Result<(), Stale> {
        let Some(up) = a.tables.take() else {
            if a.lb_full {
                self.lb.clear();
            }
            if a.dns_full {
                self.dns.clear();
            }
            if a.peers_full {
                self.peers.clear();
            }
            return Ok(());
        };
        let fresh = up.reset;
        let ver = |v: Option<&u64>| v.copied().filter(|_| !fresh);
        check(
            "balancer",
            |n| ver(self.lb.get(n).map(|(v, _)| v)),
            up.lb.iter().map(Link::from),
        )?;
        check(
            "dns",
            |n| ver(self.dns.get(n).map(|(v, _)| v)),
            up.dns.iter().map(Link::from),
        )?;
        check(
            "peers",
            |n| ver(self.peers.get(n).map(|(v, _)| v)),
            up.peers.iter().map(Link::from),
        )?;
        if fresh {
            *self = HeldTables::default();
        }
        for u in &up.lb {
            if u.removed {
                self.lb.remove(&u.network_id);
            } else if let Some(t) = &u.full {
                self.lb
                    .insert(u.network_id.clone(), (u.to_version, t.clone()));
            } else if let (Some(d), Some(held)) = (&u.delta, self.lb.get_mut(&u.network_id)) {
                lb_apply(&mut held.1, d);
                held.0 = u.to_version;
            }
        }
        for u in &up.dns {
            if u.removed {
                self.dns.remove(&u.network_id);
            } else if let Some(t) = &u.full {
                self.dns
                    .insert(u.network_id.clone(), (u.to_version, t.clone()));
            } else if let (Some(d), Some(held)) = (&u.delta, self.dns.get_mut(&u.network_id)) {
                dns_apply(&mut held.1, d);
                held.0 = u.to_version;
            }
        }
        for u in &up.peers {
            if u.gone {
                self.peers.remove(&u.network_id);
            } else if u.full {
                let mut set = PeerSet::new();
                peers_apply(&mut set, &u.put, &[]);
                self.peers.insert(u.network_id.clone(), (u.to_version, set));
            } else if let Some(held) = self.peers.get_mut(&u.network_id) {
                peers_apply(&mut held.1, &u.put, &u.removed);
                held.0 = u.to_version;
            }
        }
        if fresh || !up.lb.is_empty() {
            a.lb_full = true;
            a.lb = self.lb.values().map(|(_, t)| t.clone()).collect();
        }
        if fresh || !up.dns.is_empty() {
            a.dns_full = true;
            a.dns = self.dns.values().map(|(_, t)| t.clone()).collect();
        }
        if fresh || !up.peers.is_empty() {
            a.peers_full = true;
            a.peers = self
                .peers
                .iter()
                .flat_map(|(net, (_, set))| {
                    set.iter().map(move |(ip, node_ip)| pb::OverlayPeer {
                        network_id: net.clone(),
                        ip: ip.clone(),
                        node_ip: node_ip.clone(),
                    })
                })
                .collect();
        }
        Ok(())
    }

    /// The version held of each kind's table of `network` (balancer, DNS, peers).
    pub fn versions(&self, network: &str) -> (Option<u64>, Option<u64>, Option<u64>) {
        (
            self.lb.get(network).map(|(v, _)| *v),
            self.dns.get(network).map(|(v, _)| *v),
            self.peers.get(network).map(|(v, _)| *v),
        )
    }
}

#[cfg(test)]
mod tests;
