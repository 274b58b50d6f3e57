//! The load-balancer suite against the IPVS implementation. It runs where the kernel has IPVS:
//! `tests/vm/run-in-vm.sh` boots such a kernel (this machine's has none) and runs this binary
//! there with `SHOAL_IN_VM=1`, where a missing IPVS is a failure. On a kernel without IPVS each
//! test instead checks that asking for IPVS fails with the one clear error.
mod common;

use common::lb_suite as suite;
use shoal_netlib::lb::LbChoice;

const LB: LbChoice = LbChoice::Ipvs;

#[ignore = "needs root"]
#[tokio::test]
async fn nine_connections_rotate_over_three_backends() {
    if common::root() && ipvs_here() {
        suite::nine_connections_rotate_over_three_backends(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn fwmark_service_rotates() {
    if common::root() && ipvs_here() {
        suite::fwmark_service_rotates(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn backend_changes_take_effect() {
    if common::root() && ipvs_here() {
        suite::backend_changes_take_effect(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn ensure_twice_changes_nothing() {
    if common::root() && ipvs_here() {
        suite::ensure_twice_changes_nothing(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn flush_removes_everything() {
    if common::root() && ipvs_here() {
        suite::flush_removes_everything(LB).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn reopen_adopts_existing_state() {
    if common::root() && ipvs_here() {
        suite::reopen_adopts_existing_state(LB).await;
    }
}

/// True when this kernel has IPVS. When it has none, checks the error says so clearly (and
/// fails under `SHOAL_IN_VM`, whose kernel must have it).
fn ipvs_here() -> bool {
    match shoal_netlib::ipvs::Ipvs::open() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("SHOAL_IN_VM").is_none(),
                "the VM's kernel must have IPVS: {e}"
            );
            assert!(matches!(e, shoal_netlib::ipvs::Error::Unavailable), "{e}");
            assert!(e.to_string().contains("no IPVS"), "{e}");
            eprintln!("skipped: {e}");
            false
        }
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn sync_converges_to_the_desired_set() {
    if common::root() && ipvs_here() {
        suite::sync_converges_to_the_desired_set(LB).await;
    }
}
