//! The nftables load balancer: one table per balancer, one atomic `nft -j -f -` transaction
//! per change, touching only the service that changed (kube-proxy's nftables mode does the
//! same: no full reload).
//!
//! ```text
//! table ip T {
//!   map svc_addr { type ipv4_addr . inet_proto . inet_service : verdict }  # VIP . tcp . 80 : goto svc-…
//!   map svc_mark { type mark : verdict }                                   # 256 : goto svc-fwm-256
//!   chain prerouting { type nat hook prerouting priority dstnat
//!       ip daddr . meta l4proto . th dport vmap @svc_addr;  meta mark vmap @svc_mark }
//!   chain output { … the same, for clients in this namespace }
//!   chain svc-tcp-10.0.0.2-80 { counter comment "sched=rr"
//!       numgen inc mod 3 vmap { 0 : goto be-…-10.0.0.5-80, 1 : goto …, 2 : goto … } }
//!   chain be-tcp-10.0.0.2-80-10.0.0.5-80 { counter dnat to 10.0.0.5:80 comment "w=1" }
//!   + snat_vips, snat_marks, postrouting (see snat.rs)
//! }
//! ```
//! NAT chains see only a connection's first packet, so every later packet of a connection
//! follows conntrack to the same backend, and a backend chain's counter counts connections.
//! The table is the source of truth: [`NftLb::open`] reads back what a previous run left.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{
    snat, Backend, BackendAddr, BackendStats, BoxFuture, Error, LbConfig, LbKind, LoadBalancer, Protocol, Result,
    Scheduler, ServiceStats, VirtualService,
};
use crate::netns::NetNs;
use crate::nft::{self, expr, Batch, Family, Hook, Nft};

const SVC_ADDR: &str = "svc_addr";
const SVC_MARK: &str = "svc_mark";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";

#[derive(Debug, Clone, Default, PartialEq)]
struct Svc {
    sched: Scheduler,
    backends: BTreeMap<BackendAddr, u32>,
}

/// The nftables implementation of [`LoadBalancer`].
#[derive(Debug)]
pub struct NftLb {
    nft: Nft,
    config: LbConfig,
    state: tokio::sync::Mutex<BTreeMap<VirtualService, Svc>>,
}

fn key(svc: &VirtualService) -> String {
    match svc {
        VirtualService::Fwmark(m) => format!("fwm-{m}"),
        VirtualService::Addr { proto, addr, port } => format!("{}-{addr}-{port}", proto.as_str()),
    }
}

fn svc_chain(svc: &VirtualService) -> String {
    format!("svc-{}", key(svc))
}

fn be_chain(svc: &VirtualService, b: &BackendAddr) -> String {
    format!("be-{}-{}-{}", key(svc), b.addr, b.port)
}

/// Parses `tcp-10.0.0.2-80` / `fwm-256` (the inverse of `key`) from split parts.
fn parse_key(parts: &[&str]) -> Option<(VirtualService, usize)> {
    match parts.first()? {
        &"fwm" => Some((VirtualService::Fwmark(parts.get(1)?.parse().ok()?), 2)),
        p @ (&"tcp" | &"udp") => {
            let proto = if *p == "tcp" { Protocol::Tcp } else { Protocol::Udp };
            let addr = parts.get(1)?.parse().ok()?;
            let port = parts.get(2)?.parse().ok()?;
            Some((VirtualService::Addr { proto, addr, port }, 3))
        }
        _ => None,
    }
}

fn map_elem(svc: &VirtualService) -> (&'static str, Value) {
    match svc {
        VirtualService::Fwmark(m) => (SVC_MARK, json!(m)),
        VirtualService::Addr { proto, addr, port } => {
            (SVC_ADDR, expr::concat(vec![json!(addr.to_string()), json!(proto.as_str()), json!(port)]))
        }
    }
}

/// The order in which backends take new connections: each backend with a weight once for
/// `rr`; for `wrr`, interleaved in proportion to weights (capped at 64 slots per backend).
fn slots(svc: &Svc) -> Result<Vec<BackendAddr>> {
    let live: Vec<(BackendAddr, u32)> = svc.backends.iter().filter(|(_, w)| **w > 0).map(|(b, w)| (*b, *w)).collect();
    match svc.sched {
        Scheduler::RoundRobin | Scheduler::SourceHash => Ok(live.into_iter().map(|(b, _)| b).collect()),
        Scheduler::WeightedRoundRobin => {
            let max = live.iter().map(|(_, w)| (*w).min(64)).max().unwrap_or(0);
            let mut out = Vec::new();
            for round in 0..max {
                out.extend(live.iter().filter(|(_, w)| (*w).min(64) > round).map(|(b, _)| *b));
            }
            Ok(out)
        }
        ref other => Err(Error::Invalid(format!(
            "the nftables load balancer does rr, wrr and sh; {} needs IPVS",
            other.name()
        ))),
    }
}

impl NftLb {
    /// Opens (creating or adopting) the balancer's table in `ns`.
    pub async fn open(ns: Option<Arc<NetNs>>, config: LbConfig) -> Result<NftLb> {
        config.validate()?;
        let nft = Nft::new(ns);
        let lb = NftLb { nft, config, state: Default::default() };
        let existing = lb.nft.list_table(Family::Ip, &lb.config.table).await?;
        let mut b = Batch::new();
        lb.base(&mut b);
        lb.nft.apply(&b).await?;
        if let Some(doc) = existing {
            *lb.state.lock().await = parse_state(&doc).into_iter().map(|(k, (s, _))| (k, s)).collect();
        }
        Ok(lb)
    }

    fn t(&self) -> &str {
        &self.config.table
    }

    /// The table, maps and hook chains, rewritten in place (idempotent).
    fn base(&self, b: &mut Batch) {
        let t = self.t();
        snat::base(b, t, self.config.snat);
        b.add_map(Family::Ip, t, SVC_ADDR, json!(["ipv4_addr", "inet_proto", "inet_service"]), "verdict")
            .add_map(Family::Ip, t, SVC_MARK, json!("mark"), "verdict");
        for (chain, hook) in [(PREROUTING, Hook::nat_prerouting()), (OUTPUT, Hook::nat_output())] {
            b.add_chain(Family::Ip, t, chain, Some(&hook)).flush_chain(Family::Ip, t, chain);
            let addr_key = expr::concat(vec![expr::ip("daddr"), expr::meta("l4proto"), expr::th("dport")]);
            b.add_rule(Family::Ip, t, chain, vec![expr::vmap(addr_key, expr::set_ref(SVC_ADDR))], None);
            b.add_rule(Family::Ip, t, chain, vec![expr::vmap(expr::meta("mark"), expr::set_ref(SVC_MARK))], None);
        }
    }

    /// Rewrites `svc`'s dispatch rule from `s` (its backend chains must exist).
    fn write_dispatch(&self, b: &mut Batch, svc: &VirtualService, s: &Svc) -> Result<()> {
        let t = self.t();
        let chain = svc_chain(svc);
        b.flush_chain(Family::Ip, t, &chain);
        b.add_rule(Family::Ip, t, &chain, vec![expr::counter()], Some(&format!("sched={}", s.sched.name())));
        let order = slots(s)?;
        if order.is_empty() {
            return Ok(());
        }
        let pairs = order.iter().enumerate().map(|(i, be)| (json!(i), expr::goto(&be_chain(svc, be)))).collect();
        let n = order.len() as u32;
        let key = if s.sched == Scheduler::SourceHash {
            json!({"jhash": {"expr": expr::ip("saddr"), "mod": n, "seed": 0, "offset": 0}})
        } else {
            expr::numgen_inc(n)
        };
        b.add_rule(Family::Ip, t, &chain, vec![expr::vmap(key, expr::anon_map(pairs))], None);
        Ok(())
    }

    fn write_backend(&self, b: &mut Batch, svc: &VirtualService, be: &BackendAddr, weight: u32) {
        let t = self.t();
        let chain = be_chain(svc, be);
        b.add_chain(Family::Ip, t, &chain, None).flush_chain(Family::Ip, t, &chain);
        let mut rule = Vec::new();
        if be.port != 0 {
            // nft maps ports only after a transport protocol match.
            rule.push(expr::eq(expr::meta("l4proto"), json!({"set": ["tcp", "udp"]})));
        }
        rule.extend([expr::counter(), expr::dnat(be.addr, be.port)]);
        b.add_rule(Family::Ip, t, &chain, rule, Some(&format!("w={weight}")));
    }
}

impl LoadBalancer for NftLb {
    fn kind(&self) -> LbKind {
        LbKind::Nftables
    }

    fn ensure_service<'a>(&'a self, svc: &'a VirtualService, sched: &'a Scheduler) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let mut s = state.get(svc).cloned().unwrap_or_default();
            let existed = state.contains_key(svc);
            if existed && s.sched == *sched {
                return Ok(());
            }
            s.sched = sched.clone();
            let t = self.t();
            let mut b = Batch::new();
            b.add_chain(Family::Ip, t, &svc_chain(svc), None);
            self.write_dispatch(&mut b, svc, &s)?;
            if !existed {
                let (map, k) = map_elem(svc);
                b.add_element(Family::Ip, t, map, vec![json!([k, expr::goto(&svc_chain(svc))])]);
                let (set, e) = snat::element(svc);
                b.add_element(Family::Ip, t, set, vec![e]);
            }
            self.nft.apply(&b).await?;
            state.insert(*svc, s);
            Ok(())
        })
    }

    fn remove_service<'a>(&'a self, svc: &'a VirtualService) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let Some(s) = state.get(svc).cloned() else { return Ok(()) };
            let t = self.t();
            let mut b = Batch::new();
            let (map, k) = map_elem(svc);
            b.delete_element(Family::Ip, t, map, vec![k]);
            b.flush_chain(Family::Ip, t, &svc_chain(svc)).delete_chain(Family::Ip, t, &svc_chain(svc));
            for be in s.backends.keys() {
                b.flush_chain(Family::Ip, t, &be_chain(svc, be)).delete_chain(Family::Ip, t, &be_chain(svc, be));
            }
            let (set, e) = snat::element(svc);
            let shared = state.keys().any(|o| o != svc && snat::element(o).1 == e);
            if !shared {
                b.delete_element(Family::Ip, t, set, vec![e]);
            }
            self.nft.apply(&b).await?;
            state.remove(svc);
            Ok(())
        })
    }

    fn ensure_backend<'a>(&'a self, svc: &'a VirtualService, backend: &'a Backend) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let Some(s) = state.get_mut(svc) else {
                return Err(Error::Invalid(format!("no virtual service {svc}: add it before its backends")));
            };
            if s.backends.get(&backend.addr) == Some(&backend.weight) {
                return Ok(());
            }
            let mut next = s.clone();
            next.backends.insert(backend.addr, backend.weight);
            let mut b = Batch::new();
            self.write_backend(&mut b, svc, &backend.addr, backend.weight);
            self.write_dispatch(&mut b, svc, &next)?;
            self.nft.apply(&b).await?;
            *s = next;
            Ok(())
        })
    }

    fn remove_backend<'a>(&'a self, svc: &'a VirtualService, backend: &'a BackendAddr) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let Some(s) = state.get_mut(svc) else { return Ok(()) };
            if !s.backends.contains_key(backend) {
                return Ok(());
            }
            let mut next = s.clone();
            next.backends.remove(backend);
            let t = self.t();
            let mut b = Batch::new();
            self.write_dispatch(&mut b, svc, &next)?;
            b.flush_chain(Family::Ip, t, &be_chain(svc, backend)).delete_chain(Family::Ip, t, &be_chain(svc, backend));
            self.nft.apply(&b).await?;
            *s = next;
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServiceStats>>> {
        Box::pin(async move {
            let Some(doc) = self.nft.list_table(Family::Ip, self.t()).await? else { return Ok(Vec::new()) };
            Ok(parse_state(&doc)
                .into_iter()
                .map(|(service, (s, conns))| ServiceStats {
                    service,
                    scheduler: s.sched.name().to_string(),
                    backends: s
                        .backends
                        .iter()
                        .map(|(addr, w)| BackendStats {
                            addr: *addr,
                            weight: *w,
                            active_conns: None,
                            inactive_conns: None,
                            connections: conns.get(addr).copied().unwrap_or(0),
                        })
                        .collect(),
                })
                .collect())
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let mut b = Batch::new();
            b.add_table(Family::Ip, self.t()).delete_table(Family::Ip, self.t());
            self.base(&mut b);
            self.nft.apply(&b).await?;
            state.clear();
            Ok(())
        })
    }
}

type Parsed = BTreeMap<VirtualService, (Svc, BTreeMap<BackendAddr, u64>)>;

/// Reads services, backends, weights and connection counters back from `nft -j list table`.
fn parse_state(doc: &Value) -> Parsed {
    let mut out: Parsed = BTreeMap::new();
    for chain in nft::objects(doc, "chain") {
        let Some(name) = chain["name"].as_str() else { continue };
        let parts: Vec<&str> = name.split('-').collect();
        match parts.first() {
            Some(&"svc") => {
                let Some((svc, _)) = parse_key(&parts[1..]) else { continue };
                let sched = nft::rules_of(doc, name)
                    .iter()
                    .find_map(|(_, c)| c.and_then(|c| c.strip_prefix("sched=")).and_then(|s| s.parse().ok()))
                    .unwrap_or_default();
                out.entry(svc).or_default().0.sched = sched;
            }
            Some(&"be") => {
                let Some((svc, used)) = parse_key(&parts[1..]) else { continue };
                let rest = &parts[1 + used..];
                let (Some(addr), Some(port)) = (
                    rest.first().and_then(|a| a.parse::<Ipv4Addr>().ok()),
                    rest.get(1).and_then(|p| p.parse::<u16>().ok()),
                ) else {
                    continue;
                };
                let be = BackendAddr { addr, port };
                let rules = nft::rules_of(doc, name);
                let weight = rules
                    .iter()
                    .find_map(|(_, c)| c.and_then(|c| c.strip_prefix("w=")).and_then(|w| w.parse().ok()))
                    .unwrap_or(1);
                let conns = rules.iter().map(|(e, _)| nft::counter_packets(e)).sum();
                let entry = out.entry(svc).or_default();
                entry.0.backends.insert(be, weight);
                entry.1.insert(be, conns);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(last: u8, w: u32) -> (BackendAddr, u32) {
        (BackendAddr { addr: Ipv4Addr::new(10, 0, 0, last), port: 80 }, w)
    }

    #[test]
    fn round_robin_uses_each_live_backend_once() {
        let s = Svc { sched: Scheduler::RoundRobin, backends: [be(1, 1), be(2, 0), be(3, 5)].into() };
        let order: Vec<u8> = slots(&s).unwrap().iter().map(|b| b.addr.octets()[3]).collect();
        assert_eq!(order, vec![1, 3]);
    }

    #[test]
    fn weighted_round_robin_interleaves_by_weight() {
        let s = Svc { sched: Scheduler::WeightedRoundRobin, backends: [be(1, 1), be(2, 3)].into() };
        let order: Vec<u8> = slots(&s).unwrap().iter().map(|b| b.addr.octets()[3]).collect();
        assert_eq!(order, vec![1, 2, 2, 2]);
        let lc = Svc { sched: Scheduler::LeastConn, backends: [be(1, 1)].into() };
        assert!(slots(&lc).is_err());
    }

    #[test]
    fn chain_names_parse_back() {
        let svc = VirtualService::Addr { proto: Protocol::Udp, addr: Ipv4Addr::new(10, 0, 0, 2), port: 53 };
        let b = BackendAddr { addr: Ipv4Addr::new(10, 0, 0, 9), port: 5353 };
        let doc = json!({"nftables": [
            {"chain": {"name": svc_chain(&svc)}},
            {"rule": {"chain": svc_chain(&svc), "expr": [{"counter": {"packets": 3, "bytes": 0}}], "comment": "sched=wrr"}},
            {"chain": {"name": be_chain(&svc, &b)}},
            {"rule": {"chain": be_chain(&svc, &b), "expr": [{"counter": {"packets": 4, "bytes": 0}}, {"dnat": {}}], "comment": "w=7"}},
            {"chain": {"name": "svc-fwm-256"}},
            {"chain": {"name": "prerouting"}}
        ]});
        let parsed = parse_state(&doc);
        assert_eq!(parsed.len(), 2);
        let (s, conns) = &parsed[&svc];
        assert_eq!(s.sched, Scheduler::WeightedRoundRobin);
        assert_eq!(s.backends[&b], 7);
        assert_eq!(conns[&b], 4);
        assert!(parsed.contains_key(&VirtualService::Fwmark(256)));
    }
}
