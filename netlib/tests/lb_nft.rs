//! The load-balancer suite against the nftables implementation (root; real namespaces).
mod common;

use common::lb_suite as suite;
use shoal_netlib::lb::LbChoice;

const LB: LbChoice = LbChoice::Nftables;

#[ignore = "needs root"]
#[tokio::test]
async fn nine_connections_rotate_over_three_backends() {
    if common::root() {
        suite::nine_connections_rotate_over_three_backends(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn fwmark_service_rotates() {
    if common::root() {
        suite::fwmark_service_rotates(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn backend_changes_take_effect() {
    if common::root() {
        suite::backend_changes_take_effect(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn ensure_twice_changes_nothing() {
    if common::root() {
        suite::ensure_twice_changes_nothing(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn flush_removes_everything() {
    if common::root() {
        suite::flush_removes_everything(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn reopen_adopts_existing_state() {
    if common::root() {
        suite::reopen_adopts_existing_state(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn auto_picks_nftables_on_a_kernel_without_ipvs() {
    if !common::root() || std::env::var_os("SHOAL_IN_VM").is_some() {
        return;
    }
    let t = suite::topo("auto", LbChoice::Auto).await;
    assert_eq!(t.lb.kind(), shoal_netlib::lb::LbKind::Nftables);
}

#[ignore = "needs root"]
#[tokio::test]
async fn sync_converges_to_the_desired_set() {
    if common::root() {
        suite::sync_converges_to_the_desired_set(LB).await;
    }
}
