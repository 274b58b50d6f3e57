//! The load-balancer tests, run against each implementation (`lb_nft.rs` here, `lb_ipvs.rs`
//! inside a VM whose kernel has IPVS). Topology, all in throwaway namespaces on one L2 bridge
//! (as an overlay's tasks and `lb_` endpoint are):
//!
//! ```text
//!  client 198.19.0.10 ─┐
//!  lb     198.19.0.2 + VIP 198.19.0.100/32 (balancer, SNAT to .2) ─┤ br0 in "sw"
//!  be1..3 198.19.0.11-13, serving "be1".."be3" on :8080 ─┘
//! ```
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_netlib::lb::{
    self, Backend, BackendAddr, LbChoice, LbConfig, LoadBalancer, Protocol, Scheduler, Snat,
    VirtualService,
};
use shoal_netlib::netns::NetNs;
use shoal_netlib::nft::{expr, Batch, Family, Hook, Nft};
use shoal_netlib::rt::Handle;
use shoal_netlib::sysctl;

use super::{fetch, plug, wait_for, Scratch};

pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 100);
pub const LB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
pub const MARK: u32 = 0x100;
pub const MARK_PORT: u16 = 81;

pub struct Topo {
    pub scratch: Scratch,
    pub client: Arc<NetNs>,
    pub lb_ns: Arc<NetNs>,
    pub lb: Box<dyn LoadBalancer>,
    pub backends: Vec<BackendAddr>,
}

pub fn svc() -> VirtualService {
    VirtualService::Addr {
        proto: Protocol::Tcp,
        addr: VIP,
        port: 80,
    }
}

pub async fn topo(test: &str, choice: LbChoice) -> Topo {
    let mut scratch = Scratch::new(test);
    let sw = scratch.ns("sw").await;
    Handle::in_ns(&sw)
        .unwrap()
        .ensure_bridge("br0")
        .await
        .unwrap();
    Handle::in_ns(&sw).unwrap().ensure_up("br0").await.unwrap();
    let client = scratch.ns("client").await;
    plug(
        &sw,
        "br0",
        &client,
        "p-client",
        Ipv4Addr::new(198, 19, 0, 10),
    )
    .await;
    let lb_ns = scratch.ns("lb").await;
    plug(&sw, "br0", &lb_ns, "p-lb", LB_ADDR).await;
    let h = Handle::in_ns(&lb_ns).unwrap();
    h.ensure_addr("eth0", VIP, 32).await.unwrap();
    sysctl::set(Some(&lb_ns), "net.ipv4.ip_forward", "1").unwrap();
    sysctl::set(Some(&lb_ns), "net.ipv4.conf.all.send_redirects", "0").unwrap();
    let mut backends = Vec::new();
    for i in 1..=3u8 {
        let ns = scratch.ns(&format!("be{i}")).await;
        let addr = Ipv4Addr::new(198, 19, 0, 10 + i);
        plug(&sw, "br0", &ns, &format!("p-be{i}"), addr).await;
        scratch.serve(&ns, 8080, &format!("be{i}"));
        backends.push(BackendAddr { addr, port: 8080 });
    }
    // The caller's own rule that gives fwmark services their mark (Docker does this in mangle).
    let mut b = Batch::new();
    b.add_table(Family::Ip, "marks")
        .add_chain(
            Family::Ip,
            "marks",
            "pre",
            Some(&Hook {
                ty: "filter",
                hook: "prerouting",
                prio: -150,
            }),
        )
        .add_rule(
            Family::Ip,
            "marks",
            "pre",
            vec![
                expr::eq(expr::ip("daddr"), serde_json::json!(VIP.to_string())),
                expr::eq(expr::th("dport"), serde_json::json!(MARK_PORT)),
                expr::set_mark(MARK),
            ],
            None,
        );
    Nft::new(Some(Arc::clone(&lb_ns))).apply(&b).await.unwrap();
    let config = LbConfig {
        table: "lbtest".into(),
        snat: Some(Snat::To(LB_ADDR)),
    };
    let lb = lb::open(choice, Some(Arc::clone(&lb_ns)), config)
        .await
        .unwrap();
    Topo {
        scratch,
        client,
        lb_ns,
        lb,
        backends,
    }
}

impl Topo {
    pub async fn add_all(&self, s: &VirtualService) {
        self.lb
            .ensure_service(s, &Scheduler::RoundRobin)
            .await
            .unwrap();
        for b in &self.backends {
            self.lb
                .ensure_backend(
                    s,
                    &Backend {
                        addr: *b,
                        weight: 1,
                    },
                )
                .await
                .unwrap();
        }
    }

    /// `n` sequential connections from the client to `port` on the VIP.
    pub fn replies(&self, port: u16, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| fetch(&self.client, VIP, port).unwrap_or_else(|| "-".into()))
            .collect()
    }
}

/// Every reply is a backend and the sequence repeats with period `k` over `k` distinct ones.
pub fn assert_strict_rotation(replies: &[String], k: usize) {
    let first: BTreeSet<&String> = replies[..k].iter().collect();
    assert_eq!(
        first.len(),
        k,
        "first {k} replies not distinct: {replies:?}"
    );
    assert!(
        !first.contains(&"-".to_string()),
        "a connection failed: {replies:?}"
    );
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r, &replies[i % k], "not a strict rotation: {replies:?}");
    }
}

pub async fn nine_connections_rotate_over_three_backends(choice: LbChoice) {
    let t = topo("rr", choice).await;
    t.add_all(&svc()).await;
    let replies = t.replies(80, 9);
    assert_strict_rotation(&replies, 3);
    // Counters: 3 connections each (IPVS publishes them from its estimator: allow 5 s).
    let lb = &t.lb;
    let counts = wait_for(5, async || {
        let list = lb.list().await.unwrap();
        let s = list.iter().find(|s| s.service == svc())?;
        let c: Vec<u64> = s.backends.iter().map(|b| b.connections).collect();
        (c == vec![3, 3, 3]).then_some(c)
    })
    .await;
    assert_eq!(
        counts,
        Some(vec![3, 3, 3]),
        "{:?}",
        lb.list().await.unwrap()
    );
    let list = lb.list().await.unwrap();
    assert_eq!(list[0].scheduler, "rr");
    // Bytes both ways for every backend (IPVS' in/out bytes; nftables' byte counters).
    let bytes = wait_for(5, async || {
        let list = lb.list().await.unwrap();
        let s = list.iter().find(|s| s.service == svc())?;
        let b: Vec<(u64, u64)> = s
            .backends
            .iter()
            .map(|b| (b.bytes_in.unwrap_or(0), b.bytes_out.unwrap_or(0)))
            .collect();
        b.iter().all(|(i, o)| *i > 0 && *o > 0).then_some(b)
    })
    .await;
    assert!(bytes.is_some(), "{:?}", lb.list().await.unwrap());
}

pub async fn fwmark_service_rotates(choice: LbChoice) {
    let t = topo("fwm", choice).await;
    let s = VirtualService::Fwmark(MARK);
    t.lb.ensure_service(&s, &Scheduler::RoundRobin)
        .await
        .unwrap();
    for b in &t.backends {
        t.lb.ensure_backend(
            &s,
            &Backend {
                addr: *b,
                weight: 1,
            },
        )
        .await
        .unwrap();
    }
    assert_strict_rotation(&t.replies(MARK_PORT, 6), 3);
}

pub async fn backend_changes_take_effect(choice: LbChoice) {
    let t = topo("chg", choice).await;
    let s = svc();
    t.add_all(&s).await;
    t.lb.remove_backend(&s, &t.backends[1]).await.unwrap();
    let r = t.replies(80, 4);
    assert_strict_rotation(&r, 2);
    assert!(!r.contains(&"be2".to_string()), "{r:?}");
    // Weight 0: kept, but no new connections.
    t.lb.ensure_backend(
        &s,
        &Backend {
            addr: t.backends[2],
            weight: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(t.replies(80, 3), vec!["be1"; 3]);
    t.lb.ensure_backend(
        &s,
        &Backend {
            addr: t.backends[1],
            weight: 1,
        },
    )
    .await
    .unwrap();
    t.lb.ensure_backend(
        &s,
        &Backend {
            addr: t.backends[2],
            weight: 1,
        },
    )
    .await
    .unwrap();
    assert_strict_rotation(&t.replies(80, 6), 3);
    let list = t.lb.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].backends.iter().map(|b| b.addr).collect::<Vec<_>>(),
        t.backends
    );
    // Removing the service: the VIP no longer balances.
    t.lb.remove_service(&s).await.unwrap();
    t.lb.remove_service(&s).await.unwrap();
    assert!(t.lb.list().await.unwrap().is_empty());
    assert_eq!(t.replies(80, 1), vec!["-"]);
}

pub async fn ensure_twice_changes_nothing(choice: LbChoice) {
    let t = topo("idem", choice).await;
    let s = svc();
    t.add_all(&s).await;
    let nft = Nft::new(Some(Arc::clone(&t.lb_ns)));
    let before = (
        t.lb.list().await.unwrap(),
        nft.list_ruleset().await.unwrap(),
    );
    t.add_all(&s).await;
    let after = (
        t.lb.list().await.unwrap(),
        nft.list_ruleset().await.unwrap(),
    );
    assert_eq!(before, after, "a second ensure changed the balancer");
    assert_strict_rotation(&t.replies(80, 3), 3);
}

pub async fn flush_removes_everything(choice: LbChoice) {
    let t = topo("flush", choice).await;
    t.add_all(&svc()).await;
    t.lb.ensure_service(&VirtualService::Fwmark(MARK), &Scheduler::RoundRobin)
        .await
        .unwrap();
    t.lb.flush().await.unwrap();
    assert!(t.lb.list().await.unwrap().is_empty());
    assert_eq!(t.replies(80, 1), vec!["-"]);
    // Still usable after a flush.
    t.add_all(&svc()).await;
    assert_strict_rotation(&t.replies(80, 3), 3);
}

pub async fn reopen_adopts_existing_state(choice: LbChoice) {
    let t = topo("reopen", choice).await;
    t.add_all(&svc()).await;
    let config = LbConfig {
        table: "lbtest".into(),
        snat: Some(Snat::To(LB_ADDR)),
    };
    let again = lb::open(choice, Some(Arc::clone(&t.lb_ns)), config)
        .await
        .unwrap();
    let before = t.lb.list().await.unwrap();
    assert_eq!(again.list().await.unwrap(), before);
    // The reopened balancer knows the backends: removing one works.
    again.remove_backend(&svc(), &t.backends[0]).await.unwrap();
    assert_strict_rotation(&t.replies(80, 4), 2);
}

pub async fn sync_converges_to_the_desired_set(choice: LbChoice) {
    use shoal_netlib::lb::DesiredService;
    let t = topo("sync", choice).await;
    let other = VirtualService::Fwmark(MARK);
    t.lb.ensure_service(&other, &Scheduler::RoundRobin)
        .await
        .unwrap();
    t.lb.ensure_service(&svc(), &Scheduler::RoundRobin)
        .await
        .unwrap();
    t.lb.ensure_backend(
        &svc(),
        &Backend {
            addr: t.backends[0],
            weight: 1,
        },
    )
    .await
    .unwrap();
    let desired = vec![DesiredService {
        service: svc(),
        scheduler: Scheduler::RoundRobin,
        backends: t.backends[1..]
            .iter()
            .map(|b| Backend {
                addr: *b,
                weight: 1,
            })
            .collect(),
    }];
    t.lb.sync(&desired).await.unwrap();
    let list = t.lb.list().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        list[0].backends.iter().map(|b| b.addr).collect::<Vec<_>>(),
        t.backends[1..].to_vec()
    );
    let r = t.replies(80, 4);
    assert_strict_rotation(&r, 2);
    assert!(!r.contains(&"be1".to_string()));
    // Syncing the same set again changes nothing.
    let nft = Nft::new(Some(Arc::clone(&t.lb_ns)));
    let before = nft.list_ruleset().await.unwrap();
    t.lb.sync(&desired).await.unwrap();
    assert_eq!(nft.list_ruleset().await.unwrap(), before);
    t.lb.sync(&[]).await.unwrap();
    assert!(t.lb.list().await.unwrap().is_empty());
}
