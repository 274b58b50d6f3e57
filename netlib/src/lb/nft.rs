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
//!   counter c-tcp-10.0.0.2-80-10.0.0.5-80 { }                              # one per backend
//!   chain svc-tcp-10.0.0.2-80 {
//!       meta l4proto { tcp, udp }
//!       counter name numgen inc mod 3 map { 0 : "c-…-10.0.0.5-80", 1 : …, 2 : … }
//!       dnat ip to numgen inc mod 3 map { 0 : 10.0.0.5 . 80, 1 : …, 2 : … }  comment "sched=rr" }
//!   + snat_vips, snat_marks, postrouting (see snat.rs)
//!   counter bi-tcp-10.0.0.2-80-10.0.0.5-80 { }  counter bo-…                # bytes, per backend
//!   map be_bytes_in  { type ipv4_addr : counter }                          # 10.0.0.5 : "bi-…"
//!   map be_bytes_out { type ipv4_addr : counter }                          # 10.0.0.5 : "bo-…"
//!   chain bytes_post  { type filter hook postrouting priority 99
//!       ct status dnat ct direction original counter name ip daddr map @be_bytes_in
//!       ct status dnat ct direction reply counter name ip saddr map @be_bytes_out }
//!   chain bytes_input { type filter hook input priority 99; the same two rules }
//! }
//! ```
//! The two `numgen inc` expressions of a rule advance together (both run once per packet that
//! reaches them), so the counter named for slot k counts exactly the connections sent to the
//! backend of slot k. No chain per backend: the kernel validates every jump of a table on
//! each commit, and 10,000 backend chains made a 1,000-service table take 12 s to load
//! (measured here) against 1 s without them.
//! NAT chains see only a connection's first packet, so every later packet of a connection
//! follows conntrack to the same backend, and a backend chain's counter counts connections.
//! The table is the source of truth: [`NftLb::open`] reads back what a previous run left.
//!
//! Bytes need every packet, which the NAT chains never see after the first, so two filter
//! chains of the same table count them, after DNAT and before the replies' reverse NAT (that is
//! done at `postrouting`/`input` priority 100): there a connection's original-direction packets
//! have the backend as destination and its replies have it as source. `ct status dnat` keeps
//! other traffic out; each packet does one map lookup, by address, into the backend's named
//! counters `bi-…` (to it) and `bo-…` (from it), made and deleted with the backend like `c-…`.
//! A map has one element per address: when services of one balancer share a backend address,
//! the first (in service, then backend order) owns the element and counts the address's bytes,
//! and the others list `None` (Shoal's balancers never share: one service per task address).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{
    snat, Backend, BackendAddr, BackendStats, BoxFuture, DesiredService, Error, LbConfig, LbKind,
    LoadBalancer, Protocol, Result, Scheduler, ServiceStats, VirtualService,
};
use crate::netns::NetNs;
use crate::nft::{self, expr, Batch, Family, Hook, Nft};

const SVC_ADDR: &str = "svc_addr";
const SVC_MARK: &str = "svc_mark";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
const BYTES_IN: &str = "be_bytes_in";
const BYTES_OUT: &str = "be_bytes_out";
const BYTES_POST: &str = "bytes_post";
const BYTES_INPUT: &str = "bytes_input";
/// Before the reverse NAT of replies (srcnat, 100) and after DNAT (dstnat, -100).
const BYTES_PRIO: i32 = 99;

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

/// `tcp-10.0.0.2-80-10.0.0.5-80`: what names a backend's counters after their prefix.
fn backend_key(svc: &VirtualService, b: &BackendAddr) -> String {
    format!("{}-{}-{}", key(svc), b.addr, b.port)
}

fn counter_name(svc: &VirtualService, b: &BackendAddr) -> String {
    format!("c-{}", backend_key(svc, b))
}

/// The backend's byte counters: to it (`bi-…`) and from it (`bo-…`).
fn bytes_names(svc: &VirtualService, b: &BackendAddr) -> [String; 2] {
    let k = backend_key(svc, b);
    [format!("bi-{k}"), format!("bo-{k}")]
}

/// Which backend owns each address's element in the byte maps: the first holding it, in
/// service then backend order. Values are [`backend_key`]s.
fn byte_owners(state: &BTreeMap<VirtualService, Svc>) -> BTreeMap<std::net::Ipv4Addr, String> {
    let mut out = BTreeMap::new();
    for (svc, s) in state {
        for be in s.backends.keys() {
            out.entry(be.addr).or_insert_with(|| backend_key(svc, be));
        }
    }
    out
}

/// Deletes the byte maps' elements of `before` that `after` drops or points elsewhere (before
/// the counters they name can go).
fn unlink_bytes(
    b: &mut Batch,
    t: &str,
    before: &BTreeMap<std::net::Ipv4Addr, String>,
    after: &BTreeMap<std::net::Ipv4Addr, String>,
) {
    let gone: Vec<Value> = before
        .iter()
        .filter(|(a, k)| after.get(*a) != Some(*k))
        .map(|(a, _)| json!(a.to_string()))
        .collect();
    if !gone.is_empty() {
        b.delete_element(Family::Ip, t, BYTES_IN, gone.clone())
            .delete_element(Family::Ip, t, BYTES_OUT, gone);
    }
}

/// Adds the byte maps' elements of `after` that `before` lacks or pointed elsewhere (once the
/// counters they name exist).
fn link_bytes(
    b: &mut Batch,
    t: &str,
    before: &BTreeMap<std::net::Ipv4Addr, String>,
    after: &BTreeMap<std::net::Ipv4Addr, String>,
) {
    let new: Vec<(&std::net::Ipv4Addr, &String)> = after
        .iter()
        .filter(|(a, k)| before.get(*a) != Some(*k))
        .collect();
    if new.is_empty() {
        return;
    }
    for (map, prefix) in [(BYTES_IN, "bi"), (BYTES_OUT, "bo")] {
        let elems = new
            .iter()
            .map(|(a, k)| json!([a.to_string(), format!("{prefix}-{k}")]))
            .collect();
        b.add_element(Family::Ip, t, map, elems);
    }
}

/// Adds (or, with `delete`, deletes) the three named counters of a backend.
fn backend_counters(b: &mut Batch, t: &str, svc: &VirtualService, be: &BackendAddr, delete: bool) {
    let [bi, bo] = bytes_names(svc, be);
    for name in [counter_name(svc, be), bi, bo] {
        if delete {
            b.delete_counter(Family::Ip, t, &name);
        } else {
            b.add_counter(Family::Ip, t, &name);
        }
    }
}

/// Parses `tcp-10.0.0.2-80` / `fwm-256` (the inverse of `key`) from split parts.
fn parse_key(parts: &[&str]) -> Option<(VirtualService, usize)> {
    match parts.first()? {
        &"fwm" => Some((VirtualService::Fwmark(parts.get(1)?.parse().ok()?), 2)),
        p @ (&"tcp" | &"udp") => {
            let proto = if *p == "tcp" {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
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
        VirtualService::Addr { proto, addr, port } => (
            SVC_ADDR,
            expr::concat(vec![
                json!(addr.to_string()),
                json!(proto.as_str()),
                json!(port),
            ]),
        ),
    }
}

/// The order in which backends take new connections: each backend with a weight once for
/// `rr`; for `wrr`, interleaved in proportion to weights (capped at 64 slots per backend).
fn slots(svc: &Svc) -> Result<Vec<BackendAddr>> {
    let live: Vec<(BackendAddr, u32)> = svc
        .backends
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(b, w)| (*b, *w))
        .collect();
    match svc.sched {
        Scheduler::RoundRobin | Scheduler::SourceHash => {
            Ok(live.into_iter().map(|(b, _)| b).collect())
        }
        Scheduler::WeightedRoundRobin => {
            let max = live.iter().map(|(_, w)| (*w).min(64)).max().unwrap_or(0);
            let mut out = Vec::new();
            for round in 0..max {
                out.extend(
                    live.iter()
                        .filter(|(_, w)| (*w).min(64) > round)
                        .map(|(b, _)| *b),
                );
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
        let lb = NftLb {
            nft,
            config,
            state: Default::default(),
        };
        let existing = lb.nft.list_table(Family::Ip, &lb.config.table).await?;
        let mut b = Batch::new();
        lb.base(&mut b);
        let mut state = BTreeMap::new();
        if let Some(doc) = &existing {
            state = parse_state(doc)
                .into_iter()
                .map(|(k, (s, _))| (k, s))
                .collect();
            // A table from before byte counters (or a half-made one) gets them now: adding a
            // counter that exists changes nothing; elements are made to match their owners.
            for (svc, s) in &state {
                for be in s.backends.keys() {
                    backend_counters(&mut b, lb.t(), svc, be, false);
                }
            }
            let have = byte_elements(doc);
            let want = byte_owners(&state);
            unlink_bytes(&mut b, lb.t(), &have, &want);
            link_bytes(&mut b, lb.t(), &have, &want);
        }
        lb.nft.apply(&b).await?;
        *lb.state.lock().await = state;
        Ok(lb)
    }

    fn t(&self) -> &str {
        &self.config.table
    }

    /// The table, maps and hook chains, rewritten in place (idempotent).
    fn base(&self, b: &mut Batch) {
        let t = self.t();
        snat::base(b, t, self.config.snat);
        b.add_map(
            Family::Ip,
            t,
            SVC_ADDR,
            json!(["ipv4_addr", "inet_proto", "inet_service"]),
            "verdict",
        )
        .add_map(Family::Ip, t, SVC_MARK, json!("mark"), "verdict")
        .add_map(Family::Ip, t, BYTES_IN, json!("ipv4_addr"), "counter")
        .add_map(Family::Ip, t, BYTES_OUT, json!("ipv4_addr"), "counter");
        for (chain, hook) in [(BYTES_POST, "postrouting"), (BYTES_INPUT, "input")] {
            let hook = Hook {
                ty: "filter",
                hook,
                prio: BYTES_PRIO,
            };
            b.add_chain(Family::Ip, t, chain, Some(&hook))
                .flush_chain(Family::Ip, t, chain);
            for (dir, field, map) in [
                ("original", "daddr", BYTES_IN),
                ("reply", "saddr", BYTES_OUT),
            ] {
                let rule = vec![
                    expr::has(expr::ct("status"), json!("dnat")),
                    expr::eq(expr::ct("direction"), json!(dir)),
                    expr::counter_named(expr::map_lookup(expr::ip(field), expr::set_ref(map))),
                ];
                b.add_rule(Family::Ip, t, chain, rule, None);
            }
        }
        for (chain, hook) in [
            (PREROUTING, Hook::nat_prerouting()),
            (OUTPUT, Hook::nat_output()),
        ] {
            b.add_chain(Family::Ip, t, chain, Some(&hook))
                .flush_chain(Family::Ip, t, chain);
            let addr_key = expr::concat(vec![
                expr::ip("daddr"),
                expr::meta("l4proto"),
                expr::th("dport"),
            ]);
            b.add_rule(
                Family::Ip,
                t,
                chain,
                vec![expr::vmap(addr_key, expr::set_ref(SVC_ADDR))],
                None,
            );
            b.add_rule(
                Family::Ip,
                t,
                chain,
                vec![expr::vmap(expr::meta("mark"), expr::set_ref(SVC_MARK))],
                None,
            );
        }
    }

    /// Removes `svc` (state `s`): its dispatch element, chain and backend counters.
    fn drop_service(&self, b: &mut Batch, svc: &VirtualService, s: &Svc) {
        let t = self.t();
        let (map, k) = map_elem(svc);
        b.delete_element(Family::Ip, t, map, vec![k]);
        b.flush_chain(Family::Ip, t, &svc_chain(svc))
            .delete_chain(Family::Ip, t, &svc_chain(svc));
        for be in s.backends.keys() {
            backend_counters(b, t, svc, be, true);
        }
    }

    /// Rewrites `svc`'s dispatch rule from `s` (its backends' counters must exist).
    fn write_dispatch(&self, b: &mut Batch, svc: &VirtualService, s: &Svc) -> Result<()> {
        let t = self.t();
        let chain = svc_chain(svc);
        b.flush_chain(Family::Ip, t, &chain);
        let comment = format!("sched={}", s.sched.name());
        let order = slots(s)?;
        if order.is_empty() {
            b.add_rule(Family::Ip, t, &chain, vec![expr::counter()], Some(&comment));
            return Ok(());
        }
        let with_port = order.iter().filter(|be| be.port != 0).count();
        if with_port != 0 && with_port != order.len() {
            return Err(Error::Invalid(format!(
                "{svc}: backends must all have a port or all have none (port 0) with nftables"
            )));
        }
        let n = order.len() as u32;
        let pick = || {
            if s.sched == Scheduler::SourceHash {
                json!({"jhash": {"expr": expr::ip("saddr"), "mod": n, "seed": 0, "offset": 0}})
            } else {
                expr::numgen_inc(n)
            }
        };
        let counters = order
            .iter()
            .enumerate()
            .map(|(i, be)| (json!(i), json!(counter_name(svc, be))))
            .collect();
        let targets = order
            .iter()
            .enumerate()
            .map(|(i, be)| {
                let to = if be.port == 0 {
                    json!(be.addr.to_string())
                } else {
                    expr::concat(vec![json!(be.addr.to_string()), json!(be.port)])
                };
                (json!(i), to)
            })
            .collect();
        let rule = vec![
            // First, so that both numgen expressions below see exactly the same packets.
            expr::eq(expr::meta("l4proto"), json!({"set": ["tcp", "udp"]})),
            expr::counter_named(expr::map_lookup(pick(), expr::anon_map(counters))),
            expr::dnat_to(expr::map_lookup(pick(), expr::anon_map(targets))),
        ];
        b.add_rule(Family::Ip, t, &chain, rule, Some(&comment));
        Ok(())
    }
}

impl LoadBalancer for NftLb {
    fn kind(&self) -> LbKind {
        LbKind::Nftables
    }

    fn ensure_service<'a>(
        &'a self,
        svc: &'a VirtualService,
        sched: &'a Scheduler,
    ) -> BoxFuture<'a, Result<()>> {
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
                b.add_element(
                    Family::Ip,
                    t,
                    map,
                    vec![json!([k, expr::goto(&svc_chain(svc))])],
                );
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
            let Some(s) = state.get(svc).cloned() else {
                return Ok(());
            };
            let t = self.t();
            let mut next = state.clone();
            next.remove(svc);
            let (before, after) = (byte_owners(&state), byte_owners(&next));
            let mut b = Batch::new();
            unlink_bytes(&mut b, t, &before, &after);
            self.drop_service(&mut b, svc, &s);
            link_bytes(&mut b, t, &before, &after);
            let (set, e) = snat::element(svc);
            let shared = state.keys().any(|o| o != svc && snat::element(o).1 == e);
            if !shared {
                b.delete_element(Family::Ip, t, set, vec![e]);
            }
            self.nft.apply(&b).await?;
            *state = next;
            Ok(())
        })
    }

    fn ensure_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a Backend,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let Some(s) = state.get(svc) else {
                return Err(Error::Invalid(format!(
                    "no virtual service {svc}: add it before its backends"
                )));
            };
            if s.backends.get(&backend.addr) == Some(&backend.weight) {
                return Ok(());
            }
            let mut next = state.clone();
            let ns = next.entry(*svc).or_default();
            ns.backends.insert(backend.addr, backend.weight);
            let ns = ns.clone();
            let t = self.t();
            let (before, after) = (byte_owners(&state), byte_owners(&next));
            let mut b = Batch::new();
            backend_counters(&mut b, t, svc, &backend.addr, false);
            self.write_dispatch(&mut b, svc, &ns)?;
            unlink_bytes(&mut b, t, &before, &after);
            link_bytes(&mut b, t, &before, &after);
            self.nft.apply(&b).await?;
            *state = next;
            Ok(())
        })
    }

    fn remove_backend<'a>(
        &'a self,
        svc: &'a VirtualService,
        backend: &'a BackendAddr,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let Some(s) = state.get(svc) else {
                return Ok(());
            };
            if !s.backends.contains_key(backend) {
                return Ok(());
            }
            let mut next = state.clone();
            let ns = next.entry(*svc).or_default();
            ns.backends.remove(backend);
            let ns = ns.clone();
            let t = self.t();
            let (before, after) = (byte_owners(&state), byte_owners(&next));
            let mut b = Batch::new();
            self.write_dispatch(&mut b, svc, &ns)?;
            unlink_bytes(&mut b, t, &before, &after);
            link_bytes(&mut b, t, &before, &after);
            backend_counters(&mut b, t, svc, backend, true);
            self.nft.apply(&b).await?;
            *state = next;
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServiceStats>>> {
        Box::pin(async move {
            let Some(doc) = self.nft.list_table(Family::Ip, self.t()).await? else {
                return Ok(Vec::new());
            };
            Ok(parse_state(&doc)
                .into_iter()
                .map(|(service, (s, counts))| ServiceStats {
                    service,
                    scheduler: s.sched.name().to_string(),
                    backends: s
                        .backends
                        .iter()
                        .map(|(addr, w)| {
                            let c = counts.get(addr).copied().unwrap_or_default();
                            BackendStats {
                                addr: *addr,
                                weight: *w,
                                active_conns: None,
                                inactive_conns: None,
                                connections: c.connections,
                                bytes_in: c.bytes_in,
                                bytes_out: c.bytes_out,
                            }
                        })
                        .collect(),
                })
                .collect())
        })
    }

    fn sync<'a>(&'a self, desired: &'a [DesiredService]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let t = self.t();
            let mut b = Batch::new();
            let mut next: BTreeMap<VirtualService, Svc> = BTreeMap::new();
            for d in desired {
                let s = Svc {
                    sched: d.scheduler.clone(),
                    backends: d.backends.iter().map(|x| (x.addr, x.weight)).collect(),
                };
                next.insert(d.service, s);
            }
            // Byte map elements that change go first (before their counters can go), and
            // come back last (once the new counters exist).
            let (owners_now, owners_next) = (byte_owners(&state), byte_owners(&next));
            unlink_bytes(&mut b, t, &owners_now, &owners_next);
            // Removed services first (their chains go before anything is re-added).
            for (svc, old) in state.iter().filter(|(k, _)| !next.contains_key(*k)) {
                self.drop_service(&mut b, svc, old);
            }
            let snat_now: std::collections::BTreeSet<String> = state
                .keys()
                .map(|k| snat::element(k).1.to_string())
                .collect();
            let snat_next: std::collections::BTreeSet<String> = next
                .keys()
                .map(|k| snat::element(k).1.to_string())
                .collect();
            for svc in state.keys() {
                let (set, e) = snat::element(svc);
                if !snat_next.contains(&e.to_string()) {
                    b.add_element(Family::Ip, t, set, vec![e.clone()])
                        .delete_element(Family::Ip, t, set, vec![e]);
                }
            }
            for (svc, s) in &next {
                let old = state.get(svc);
                if old == Some(s) {
                    continue;
                }
                let empty = Svc::default();
                let before = old.unwrap_or(&empty);
                if old.is_none() {
                    b.add_chain(Family::Ip, t, &svc_chain(svc), None);
                }
                for be in s
                    .backends
                    .keys()
                    .filter(|be| !before.backends.contains_key(*be))
                {
                    backend_counters(&mut b, t, svc, be, false);
                }
                self.write_dispatch(&mut b, svc, s)?;
                for be in before
                    .backends
                    .keys()
                    .filter(|be| !s.backends.contains_key(*be))
                {
                    backend_counters(&mut b, t, svc, be, true);
                }
                if old.is_none() {
                    let (map, k) = map_elem(svc);
                    b.add_element(
                        Family::Ip,
                        t,
                        map,
                        vec![json!([k, expr::goto(&svc_chain(svc))])],
                    );
                    let (set, e) = snat::element(svc);
                    if !snat_now.contains(&e.to_string()) {
                        b.add_element(Family::Ip, t, set, vec![e]);
                    }
                }
            }
            link_bytes(&mut b, t, &owners_now, &owners_next);
            self.nft.apply(&b).await?;
            *state = next;
            Ok(())
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let mut b = Batch::new();
            b.add_table(Family::Ip, self.t())
                .delete_table(Family::Ip, self.t());
            self.base(&mut b);
            self.nft.apply(&b).await?;
            state.clear();
            Ok(())
        })
    }
}

/// A backend's counters as listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    connections: u64,
    bytes_in: Option<u64>,
    bytes_out: Option<u64>,
}

type Parsed = BTreeMap<VirtualService, (Svc, BTreeMap<BackendAddr, Counts>)>;

/// The byte maps' elements in a listing: address → the [`backend_key`] of the counter it names
/// (from `be_bytes_in`; `be_bytes_out` is written alongside it).
fn byte_elements(doc: &Value) -> BTreeMap<std::net::Ipv4Addr, String> {
    map_elements(doc, BYTES_IN, "bi-")
}

/// The elements `ADDR : "PREFIXkey"` of map `name`.
fn map_elements(doc: &Value, name: &str, prefix: &str) -> BTreeMap<std::net::Ipv4Addr, String> {
    nft::objects(doc, "map")
        .filter(|m| m["name"] == name)
        .filter_map(|m| m["elem"].as_array())
        .flatten()
        .filter_map(|e| {
            let addr = e.get(0)?.as_str()?.parse().ok()?;
            let k = e.get(1)?.as_str()?.strip_prefix(prefix)?;
            Some((addr, k.to_string()))
        })
        .collect()
}

/// `tcp-10.0.0.2-80-10.0.0.5-80` → service and backend.
fn parse_backend(parts: &[&str]) -> Option<(VirtualService, BackendAddr)> {
    let (svc, used) = parse_key(parts)?;
    let rest = &parts[used..];
    let addr = rest.first()?.parse().ok()?;
    let port = rest.get(1)?.parse().ok()?;
    Some((svc, BackendAddr { addr, port }))
}

/// The backends of a dispatch rule's `dnat` map, one per slot.
fn slot_backends(exprs: &Value) -> Vec<BackendAddr> {
    let data = exprs
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|e| e.get("dnat"))
        .and_then(|d| d["addr"]["map"]["data"]["set"].as_array());
    data.into_iter()
        .flatten()
        .filter_map(|pair| {
            let v = pair.get(1)?;
            if let Some(parts) = v.get("concat").and_then(Value::as_array) {
                let addr = parts.first()?.as_str()?.parse().ok()?;
                let port = u16::try_from(parts.get(1)?.as_u64()?).ok()?;
                Some(BackendAddr { addr, port })
            } else {
                Some(BackendAddr {
                    addr: v.as_str()?.parse().ok()?,
                    port: 0,
                })
            }
        })
        .collect()
}

/// The objects of `kind` whose name is `PREFIX-…`: each object, its name, and the name's
/// `-`-separated parts after the prefix.
fn named<'a>(
    doc: &'a Value,
    kind: &'a str,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a Value, &'a str, Vec<&'a str>)> + 'a {
    nft::objects(doc, kind).filter_map(move |o| {
        let name = o["name"].as_str()?;
        let mut parts = name.split('-');
        (parts.next() == Some(prefix)).then(|| (o, name, parts.collect()))
    })
}

/// Reads services, backends, weights and counters back from `nft -j list table`. Weights come
/// from the slots: a backend's number of slots under `wrr`, 1 under `rr` and `sh`, 0 for a
/// backend that has a counter but no slot. A backend's bytes are its `bi-`/`bo-` counters' when
/// the byte maps point its address at them, `None` otherwise.
fn parse_state(doc: &Value) -> Parsed {
    let mut out: Parsed = BTreeMap::new();
    for (_, name, parts) in named(doc, "chain", "svc") {
        let Some((svc, _)) = parse_key(&parts) else {
            continue;
        };
        let rules = nft::rules_of(doc, name);
        let sched: Scheduler = rules
            .iter()
            .find_map(|(_, c)| {
                c.and_then(|c| c.strip_prefix("sched="))
                    .and_then(|s| s.parse().ok())
            })
            .unwrap_or_default();
        let entry = out.entry(svc).or_default();
        for (exprs, _) in &rules {
            for be in slot_backends(exprs) {
                let w = entry.0.backends.entry(be).or_insert(0);
                *w = if sched == Scheduler::WeightedRoundRobin {
                    *w + 1
                } else {
                    1
                };
            }
        }
        entry.0.sched = sched;
    }
    for (counter, _, parts) in named(doc, "counter", "c") {
        let Some((svc, be)) = parse_backend(&parts) else {
            continue;
        };
        let Some(entry) = out.get_mut(&svc) else {
            continue;
        };
        entry.0.backends.entry(be).or_insert(0);
        entry.1.entry(be).or_default().connections = counter["packets"].as_u64().unwrap_or(0);
    }
    for (map, prefix) in [(BYTES_IN, "bi"), (BYTES_OUT, "bo")] {
        let owners = map_elements(doc, map, &format!("{prefix}-"));
        for (counter, _, parts) in named(doc, "counter", prefix) {
            let Some((svc, be)) = parse_backend(&parts) else {
                continue;
            };
            if owners.get(&be.addr) != Some(&backend_key(&svc, &be)) {
                continue;
            }
            let Some(entry) = out.get_mut(&svc) else {
                continue;
            };
            let bytes = counter["bytes"].as_u64().unwrap_or(0);
            let c = entry.1.entry(be).or_default();
            if map == BYTES_IN {
                c.bytes_in = Some(bytes);
            } else {
                c.bytes_out = Some(bytes);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Backend `10.0.0.LAST:PORT`.
    fn at(last: u8, port: u16) -> BackendAddr {
        BackendAddr {
            addr: Ipv4Addr::new(10, 0, 0, last),
            port,
        }
    }

    fn be(last: u8, w: u32) -> (BackendAddr, u32) {
        (at(last, 80), w)
    }

    #[test]
    fn round_robin_uses_each_live_backend_once() {
        let s = Svc {
            sched: Scheduler::RoundRobin,
            backends: [be(1, 1), be(2, 0), be(3, 5)].into(),
        };
        let order: Vec<u8> = slots(&s)
            .unwrap()
            .iter()
            .map(|b| b.addr.octets()[3])
            .collect();
        assert_eq!(order, vec![1, 3]);
    }

    #[test]
    fn weighted_round_robin_interleaves_by_weight() {
        let s = Svc {
            sched: Scheduler::WeightedRoundRobin,
            backends: [be(1, 1), be(2, 3)].into(),
        };
        let order: Vec<u8> = slots(&s)
            .unwrap()
            .iter()
            .map(|b| b.addr.octets()[3])
            .collect();
        assert_eq!(order, vec![1, 2, 2, 2]);
        let lc = Svc {
            sched: Scheduler::LeastConn,
            backends: [be(1, 1)].into(),
        };
        assert!(slots(&lc).is_err());
    }

    #[test]
    fn state_parses_back_from_a_listing() {
        let svc = VirtualService::Addr {
            proto: Protocol::Udp,
            addr: Ipv4Addr::new(10, 0, 0, 2),
            port: 53,
        };
        let b1 = at(9, 5353);
        let b2 = at(10, 5353);
        let b3 = at(11, 5353);
        let s = Svc {
            sched: Scheduler::WeightedRoundRobin,
            backends: [(b1, 2), (b2, 1), (b3, 0)].into(),
        };
        let nft = NftLb {
            nft: Nft::default(),
            config: LbConfig::default(),
            state: Default::default(),
        };
        let mut batch = Batch::new();
        nft.write_dispatch(&mut batch, &svc, &s).unwrap();
        // Turn the batch into what `nft -j list` prints: the rule, the chain, the counters.
        let cmds = batch.to_json();
        let rule = cmds["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|c| c["add"].get("rule"))
            .unwrap()
            .clone();
        let doc = json!({"nftables": [
            {"chain": {"name": svc_chain(&svc)}},
            {"rule": rule},
            {"counter": {"name": counter_name(&svc, &b1), "packets": 4}},
            {"counter": {"name": counter_name(&svc, &b2), "packets": 2}},
            {"counter": {"name": counter_name(&svc, &b3), "packets": 0}},
            {"chain": {"name": "svc-fwm-256"}},
            {"chain": {"name": "prerouting"}}
        ]});
        let parsed = parse_state(&doc);
        assert_eq!(parsed.len(), 2);
        let (got, conns) = &parsed[&svc];
        assert_eq!(got, &s);
        assert_eq!(conns[&b1].connections, 4);
        assert!(parsed.contains_key(&VirtualService::Fwmark(256)));
    }

    fn addr_svc(last: u8) -> VirtualService {
        VirtualService::Addr {
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(10, 0, 0, last),
            port: 80,
        }
    }

    /// The commands of `b` as `(verb, object, body)`.
    fn cmds(b: &Batch) -> Vec<(String, String, Value)> {
        b.to_json()["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("metainfo").is_none())
            .filter_map(|c| {
                let (verb, o) = c.as_object()?.iter().next()?;
                let (obj, body) = o.as_object()?.iter().next()?;
                Some((verb.clone(), obj.clone(), body.clone()))
            })
            .collect()
    }

    #[test]
    fn the_byte_chains_look_up_the_backend_once_per_packet_after_dnat() {
        let nft = NftLb {
            nft: Nft::default(),
            config: LbConfig::default(),
            state: Default::default(),
        };
        let mut b = Batch::new();
        nft.base(&mut b);
        let c = cmds(&b);
        for m in [BYTES_IN, BYTES_OUT] {
            assert!(
                c.iter().any(|(v, o, x)| v == "add"
                    && o == "map"
                    && x["name"] == m
                    && x["map"] == "counter"),
                "{c:?}"
            );
        }
        for (chain, hook) in [(BYTES_POST, "postrouting"), (BYTES_INPUT, "input")] {
            let def = c
                .iter()
                .find(|(v, o, x)| v == "add" && o == "chain" && x["name"] == chain)
                .unwrap();
            assert_eq!(def.2["type"], "filter");
            assert_eq!(def.2["hook"], hook);
            // After DNAT (-100), before the replies' reverse NAT (100).
            assert_eq!(def.2["prio"], BYTES_PRIO);
            let rules: Vec<&Value> = c
                .iter()
                .filter(|(v, o, x)| v == "add" && o == "rule" && x["chain"] == chain)
                .map(|(_, _, x)| &x["expr"])
                .collect();
            assert_eq!(rules.len(), 2);
            for (rule, (dir, field, map)) in rules.iter().zip([
                ("original", "daddr", BYTES_IN),
                ("reply", "saddr", BYTES_OUT),
            ]) {
                let e = rule.as_array().unwrap();
                assert_eq!(e[0]["match"]["left"]["ct"]["key"], "status");
                assert_eq!(e[0]["match"]["right"], "dnat");
                assert_eq!(e[1]["match"]["right"], dir);
                // One lookup: the address, in the map of named counters.
                let lookup = &e[2]["counter"]["map"];
                assert_eq!(lookup["key"]["payload"]["field"], field);
                assert_eq!(lookup["data"], format!("@{map}"));
                assert_eq!(e.len(), 3);
            }
        }
    }

    #[test]
    fn byte_elements_follow_the_first_owner_of_an_address() {
        let shared = at(5, 80);
        let other = at(6, 80);
        let svc = |bs: &[BackendAddr]| Svc {
            sched: Scheduler::RoundRobin,
            backends: bs.iter().map(|b| (*b, 1)).collect(),
        };
        let (a, z) = (addr_svc(2), addr_svc(3));
        let before: BTreeMap<VirtualService, Svc> =
            [(a, svc(&[shared])), (z, svc(&[shared, other]))].into();
        let owners = byte_owners(&before);
        assert_eq!(owners[&shared.addr], backend_key(&a, &shared));
        assert_eq!(owners[&other.addr], backend_key(&z, &other));
        // a goes: z's backend takes the shared address over; 10.0.0.6 is untouched.
        let after: BTreeMap<VirtualService, Svc> = [(z, svc(&[shared, other]))].into();
        let next = byte_owners(&after);
        let mut b = Batch::new();
        unlink_bytes(&mut b, "t", &owners, &next);
        link_bytes(&mut b, "t", &owners, &next);
        let c = cmds(&b);
        let verbs: Vec<(&str, &str)> = c
            .iter()
            .map(|(v, _, x)| (v.as_str(), x["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            verbs,
            [
                ("delete", BYTES_IN),
                ("delete", BYTES_OUT),
                ("add", BYTES_IN),
                ("add", BYTES_OUT)
            ]
        );
        assert_eq!(c[0].2["elem"], json!(["10.0.0.5"]));
        let [bi, bo] = bytes_names(&z, &shared);
        assert_eq!(c[2].2["elem"], json!([["10.0.0.5", bi]]));
        assert_eq!(c[3].2["elem"], json!([["10.0.0.5", bo]]));
        // Nothing changes: nothing is written.
        let mut b = Batch::new();
        unlink_bytes(&mut b, "t", &next, &next);
        link_bytes(&mut b, "t", &next, &next);
        assert!(b.is_empty());
    }

    #[test]
    fn a_backend_counts_bytes_only_where_the_maps_point_at_it() {
        let (a, z) = (addr_svc(2), addr_svc(3));
        let shared = at(5, 80);
        let (ca, cz) = (counter_name(&a, &shared), counter_name(&z, &shared));
        let [ia, oa] = bytes_names(&a, &shared);
        let [iz, oz] = bytes_names(&z, &shared);
        let doc = json!({"nftables": [
            {"chain": {"name": svc_chain(&a)}},
            {"chain": {"name": svc_chain(&z)}},
            {"map": {"name": BYTES_IN, "type": "ipv4_addr", "map": "counter",
                     "elem": [["10.0.0.5", ia]]}},
            {"map": {"name": BYTES_OUT, "type": "ipv4_addr", "map": "counter",
                     "elem": [["10.0.0.5", oa]]}},
            {"counter": {"name": ca, "packets": 3, "bytes": 180}},
            {"counter": {"name": cz, "packets": 1, "bytes": 60}},
            {"counter": {"name": ia, "packets": 30, "bytes": 2000}},
            {"counter": {"name": oa, "packets": 20, "bytes": 9000}},
            {"counter": {"name": iz, "packets": 0, "bytes": 0}},
            {"counter": {"name": oz, "packets": 0, "bytes": 0}}
        ]});
        let parsed = parse_state(&doc);
        let got = parsed[&a].1[&shared];
        assert_eq!(
            got,
            Counts {
                connections: 3,
                bytes_in: Some(2000),
                bytes_out: Some(9000)
            }
        );
        let got = parsed[&z].1[&shared];
        assert_eq!(
            (got.connections, got.bytes_in, got.bytes_out),
            (1, None, None)
        );
        assert_eq!(byte_elements(&doc)[&shared.addr], backend_key(&a, &shared));
    }

    #[test]
    fn mixed_backend_ports_are_refused() {
        let svc = VirtualService::Fwmark(1);
        let s = Svc {
            sched: Scheduler::RoundRobin,
            backends: [(at(1, 0), 1), be(2, 1)].into(),
        };
        let nft = NftLb {
            nft: Nft::default(),
            config: LbConfig::default(),
            state: Default::default(),
        };
        assert!(nft.write_dispatch(&mut Batch::new(), &svc, &s).is_err());
    }
}
