//! The names a task can resolve, built from the managers' tables (no gossip): per network,
//! `service` (its VIP, or every task with `--endpoint-mode dnsrr`), `tasks.service` (every
//! running task), aliases and `tasks.alias`, `service.slot.taskid` and
//! `service.slot.taskid.network` (one task), and reverse entries for task addresses.

use shoal_proto::pb;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// These addresses, in this order (a VIP, one task).
    Fixed(Vec<Ipv4Addr>),
    /// These addresses, shuffled per answer (`tasks.X`, dnsrr services).
    Shuffled(Vec<Ipv4Addr>),
}

/// One network's names.
#[derive(Debug, Default, Clone)]
pub struct NetIndex {
    names: HashMap<String, Target>,
    ptr: HashMap<Ipv4Addr, String>,
}

/// Every network's names, by network id.
#[derive(Debug, Default, Clone)]
pub struct Index {
    nets: HashMap<String, NetIndex>,
}

/// Lowercase, without the trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Index {
    /// The index of `tables`.
    pub fn build(tables: &[pb::DnsNetwork]) -> Index {
        let mut nets = HashMap::new();
        for t in tables {
            let net = normalize(&t.name);
            let mut ix = NetIndex::default();
            for s in &t.services {
                let tasks: Vec<Ipv4Addr> =
                    s.tasks.iter().filter_map(|t| t.ip.parse().ok()).collect();
                let service = match s.vip.parse::<Ipv4Addr>() {
                    Ok(vip) => Target::Fixed(vec![vip]),
                    Err(_) => Target::Shuffled(tasks.clone()),
                };
                for name in std::iter::once(&s.name).chain(&s.aliases) {
                    let name = normalize(name);
                    if name.is_empty() {
                        continue;
                    }
                    ix.names
                        .insert(format!("tasks.{name}"), Target::Shuffled(tasks.clone()));
                    ix.names.insert(name, service.clone());
                }
                for task in &s.tasks {
                    let Ok(ip) = task.ip.parse::<Ipv4Addr>() else {
                        continue;
                    };
                    let name = normalize(&task.name);
                    ix.names
                        .insert(format!("{name}.{net}"), Target::Fixed(vec![ip]));
                    ix.ptr.insert(ip, format!("{name}.{net}."));
                    ix.names.insert(name, Target::Fixed(vec![ip]));
                }
            }
            nets.insert(t.network_id.clone(), ix);
        }
        Index { nets }
    }

    /// `name` (normalized) on the first of `networks` that knows it.
    pub fn lookup(&self, networks: &[String], name: &str) -> Option<&Target> {
        networks
            .iter()
            .filter_map(|n| self.nets.get(n))
            .find_map(|ix| ix.names.get(name))
    }

    /// The name of the task at `ip` on one of `networks`.
    pub fn reverse(&self, networks: &[String], ip: Ipv4Addr) -> Option<&str> {
        networks
            .iter()
            .filter_map(|n| self.nets.get(n))
            .find_map(|ix| ix.ptr.get(&ip).map(String::as_str))
    }
}

/// The address in a reverse name (`4.3.2.1.in-addr.arpa` → 1.2.3.4).
pub fn reverse_addr(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [d, c, b, a] => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tables() -> Vec<pb::DnsNetwork> {
        let task = |name: &str, ip: &str| pb::DnsTask {
            name: name.into(),
            ip: ip.into(),
        };
        vec![
            pb::DnsNetwork {
                network_id: "n1".into(),
                name: "lp_net".into(),
                services: vec![
                    pb::DnsService {
                        name: "web".into(),
                        vip: "10.0.1.2".into(),
                        aliases: vec!["api".into()],
                        tasks: vec![task("web.1.aaa", "10.0.1.3"), task("web.2.bbb", "10.0.1.4")],
                    },
                    pb::DnsService {
                        name: "rr".into(),
                        vip: String::new(),
                        aliases: vec![],
                        tasks: vec![task("rr.1.ccc", "10.0.1.5")],
                    },
                ],
            },
            pb::DnsNetwork {
                network_id: "n2".into(),
                name: "other".into(),
                services: vec![pb::DnsService {
                    name: "db".into(),
                    vip: "10.0.2.2".into(),
                    aliases: vec![],
                    tasks: vec![task("db.1.ddd", "10.0.2.3")],
                }],
            },
        ]
    }

    #[test]
    fn names_per_network() {
        let ix = Index::build(&tables());
        let n1 = vec!["n1".to_string()];
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            ix.lookup(&n1, "web"),
            Some(&Target::Fixed(vec![ip("10.0.1.2")]))
        );
        assert_eq!(
            ix.lookup(&n1, "api"),
            Some(&Target::Fixed(vec![ip("10.0.1.2")]))
        );
        assert_eq!(
            ix.lookup(&n1, "tasks.web"),
            Some(&Target::Shuffled(vec![ip("10.0.1.3"), ip("10.0.1.4")]))
        );
        assert_eq!(
            ix.lookup(&n1, "web.2.bbb"),
            Some(&Target::Fixed(vec![ip("10.0.1.4")]))
        );
        assert_eq!(
            ix.lookup(&n1, "web.2.bbb.lp_net"),
            Some(&Target::Fixed(vec![ip("10.0.1.4")]))
        );
        assert_eq!(
            ix.lookup(&n1, "rr"),
            Some(&Target::Shuffled(vec![ip("10.0.1.5")]))
        );
        // Scoped: a task on n1 does not see n2's names, nor the other way round.
        assert_eq!(ix.lookup(&n1, "db"), None);
        assert_eq!(ix.lookup(&["n2".to_string()], "web"), None);
        assert_eq!(ix.reverse(&n1, ip("10.0.1.3")), Some("web.1.aaa.lp_net."));
        assert_eq!(ix.reverse(&n1, ip("10.0.2.3")), None);
        assert_eq!(reverse_addr("3.1.0.10.in-addr.arpa"), Some(ip("10.0.1.3")));
        assert_eq!(reverse_addr("1.0.10.in-addr.arpa"), None);
        assert_eq!(reverse_addr("x.1.0.10.in-addr.arpa"), None);
        assert_eq!(normalize("WEB.lp_net."), "web.lp_net");
    }
}
