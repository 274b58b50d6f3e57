//! Programming cost of the load balancers (root; builds one throwaway namespace). nftables
//! always; IPVS too where the kernel has it (run the bench binary in `tests/vm/run-in-vm.sh`).
//!
//! 1. 1,000 services × 10 backends from empty, in one `sync` (one transaction).
//! 2. One backend change (add, then remove) with those 1,000 services present: the
//!    incremental path the agent takes on every task start/stop.
//! 3. Baselines measured in the same run: the same change with one service present (does
//!    size matter?) and a full reload (flush + the whole set again), what a balancer without
//!    incremental updates pays per change.
//!
//! Run: `cargo bench -p shoal-netlib --bench lb_program` (as root).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_netlib::lb::{
    self, Backend, BackendAddr, DesiredService, LbChoice, LbConfig, LoadBalancer, Protocol,
    Scheduler, Snat, VirtualService,
};
use shoal_netlib::netns::{self, NetNs};

const SERVICES: u16 = 1000;
const BACKENDS: u8 = 10;
const CHANGES: usize = 20;

fn desired(n: u16) -> Vec<DesiredService> {
    (0..n)
        .map(|i| DesiredService {
            service: VirtualService::Addr {
                proto: Protocol::Tcp,
                addr: Ipv4Addr::new(198, 18, (i / 250) as u8 + 100, (i % 250) as u8 + 1),
                port: 80,
            },
            scheduler: Scheduler::RoundRobin,
            backends: (0..BACKENDS)
                .map(|b| Backend {
                    addr: BackendAddr {
                        addr: Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250) as u8),
                        port: 8000 + b as u16,
                    },
                    weight: 1,
                })
                .collect(),
        })
        .collect()
}

/// Median time of `CHANGES` single-backend changes (alternately add and remove) on service 0.
async fn change_latency(lb: &dyn LoadBalancer, svc: &VirtualService) -> Duration {
    let extra = BackendAddr {
        addr: Ipv4Addr::new(198, 19, 255, 254),
        port: 9999,
    };
    let mut times = Vec::new();
    for i in 0..CHANGES {
        let t = Instant::now();
        if i % 2 == 0 {
            lb.ensure_backend(
                svc,
                &Backend {
                    addr: extra,
                    weight: 1,
                },
            )
            .await
            .unwrap();
        } else {
            lb.remove_backend(svc, &extra).await.unwrap();
        }
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(kind: String, lb: &dyn LoadBalancer) {
    // Baseline first: one service only.
    let one = desired(1);
    lb.sync(&one).await.unwrap();
    let small = change_latency(lb, &one[0].service).await;
    lb.flush().await.unwrap();

    let all = desired(SERVICES);
    let t = Instant::now();
    lb.sync(&all).await.unwrap();
    let full = t.elapsed();
    let listed = lb.list().await.unwrap();
    assert_eq!(listed.len(), SERVICES as usize);
    assert!(listed.iter().all(|s| s.backends.len() == BACKENDS as usize));
    let big = change_latency(lb, &all[0].service).await;

    let t = Instant::now();
    lb.flush().await.unwrap();
    lb.sync(&all).await.unwrap();
    let reload = t.elapsed();
    lb.flush().await.unwrap();

    println!(
        "| {kind}: {SERVICES} services x {BACKENDS} backends from empty (sync) | {:.0} ms |",
        ms(full)
    );
    println!("| {kind}: one backend change, {SERVICES} services present (median of {CHANGES}) | {:.2} ms |", ms(big));
    println!(
        "| {kind}: one backend change, 1 service present (baseline, same run) | {:.2} ms |",
        ms(small)
    );
    println!(
        "| {kind}: full reload (flush + sync of all {SERVICES}; baseline, same run) | {:.0} ms |",
        ms(reload)
    );
    println!(
        "| {kind}: ratio change with {SERVICES} services / change with 1 | {:.2}x |",
        ms(big) / ms(small)
    );
    println!(
        "| {kind}: ratio incremental change / full reload | {:.4}x |",
        ms(big) / ms(reload)
    );
}

#[tokio::main]
async fn main() {
    if !shoal_netlib::is_root() {
        eprintln!("lb_program: skipped (needs root to create a network namespace)");
        return;
    }
    let dir = std::path::PathBuf::from(format!("/tmp/shoal-netlib-bench-{}", std::process::id()));
    let ns = Arc::new(NetNs::create(&dir, "bench").unwrap());
    // IPVS refuses destinations while the namespace has no local routing table (lo down).
    shoal_netlib::rt::Handle::in_ns(&ns)
        .unwrap()
        .ensure_up("lo")
        .await
        .unwrap();
    let mut choices = vec![LbChoice::Nftables];
    match shoal_netlib::ipvs::Ipvs::open() {
        Ok(_) => choices.push(LbChoice::Ipvs),
        Err(e) => eprintln!("lb_program: IPVS rows skipped: {e}"),
    }
    for choice in choices {
        let config = LbConfig {
            table: "bench".into(),
            snat: Some(Snat::To(Ipv4Addr::new(198, 18, 0, 2))),
        };
        let lb = lb::open(choice, Some(Arc::clone(&ns)), config)
            .await
            .unwrap();
        measure(format!("{:?}", lb.kind()), lb.as_ref()).await;
    }
    drop(ns);
    for name in netns::list(&dir).unwrap_or_default() {
        let _ = netns::delete_path(&dir.join(name));
    }
    let _ = netns::release_dir(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}
