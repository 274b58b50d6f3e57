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

/// Two services of one balancer with the same backend addresses: the first (the fwmark
/// service) counts the addresses' bytes and the other lists `None`; once the first is gone,
/// the byte maps point at the other's counters in the same transaction, and they count.
#[ignore = "needs root"]
#[tokio::test]
async fn bytes_move_to_the_next_service_holding_an_address() {
    use shoal_netlib::lb::VirtualService;
    if !common::root() {
        return;
    }
    let t = suite::topo("bytes", LB).await;
    let (vip, mark) = (suite::svc(), VirtualService::Fwmark(suite::MARK));
    t.add_all(&vip).await;
    t.add_all(&mark).await;
    let replies = t.replies(suite::MARK_PORT, 3);
    suite::assert_strict_rotation(&replies, 3);
    let list = t.lb.list().await.unwrap();
    let of = |list: &[shoal_netlib::lb::ServiceStats], s: VirtualService| {
        list.iter()
            .find(|x| x.service == s)
            .map(|x| x.backends.clone())
            .unwrap_or_default()
    };
    for b in of(&list, mark) {
        assert!(
            b.bytes_in.unwrap_or(0) > 0 && b.bytes_out.unwrap_or(0) > 0,
            "{list:?}"
        );
    }
    for b in of(&list, vip) {
        assert_eq!((b.bytes_in, b.bytes_out), (None, None), "{list:?}");
    }
    t.lb.remove_service(&mark).await.unwrap();
    let list = t.lb.list().await.unwrap();
    for b in of(&list, vip) {
        assert_eq!((b.bytes_in, b.bytes_out), (Some(0), Some(0)), "{list:?}");
    }
    suite::assert_strict_rotation(&t.replies(80, 3), 3);
    let list = t.lb.list().await.unwrap();
    for b in of(&list, vip) {
        assert!(
            b.bytes_in.unwrap_or(0) > 0 && b.bytes_out.unwrap_or(0) > 0,
            "{list:?}"
        );
    }
}

/// A table written before byte counters (no byte chains, maps or `bi-`/`bo-` counters) is
/// adopted by `open`, which adds them for the backends it finds: they count, and removing a
/// backend afterwards works.
#[ignore = "needs root"]
#[tokio::test]
async fn open_adds_byte_counters_to_an_older_table() {
    use shoal_netlib::lb::{self, LbConfig, Snat};
    use std::sync::Arc;
    if !common::root() {
        return;
    }
    let t = suite::topo("bytesold", LB).await;
    t.add_all(&suite::svc()).await;
    // Make it look like an older table: what `nft` would have left of one.
    let nft = shoal_netlib::nft::Nft::new(Some(Arc::clone(&t.lb_ns)));
    let doc = nft
        .list_table(shoal_netlib::nft::Family::Ip, "lbtest")
        .await
        .unwrap()
        .unwrap();
    let mut script = String::from(
        "delete chain ip lbtest bytes_post\ndelete chain ip lbtest bytes_input\n\
         delete map ip lbtest be_bytes_in\ndelete map ip lbtest be_bytes_out\n",
    );
    for c in shoal_netlib::nft::objects(&doc, "counter") {
        let name = c["name"].as_str().unwrap();
        if name.starts_with("bi-") || name.starts_with("bo-") {
            script.push_str(&format!("delete counter ip lbtest {name}\n"));
        }
    }
    let ok = t
        .lb_ns
        .run_async(move || {
            use std::io::Write;
            let mut child = std::process::Command::new("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            child.wait().unwrap().success()
        })
        .await
        .unwrap();
    assert!(ok, "making the table older");
    let before = t.lb.list().await.unwrap();
    assert!(
        before[0].backends.iter().all(|b| b.bytes_in.is_none()),
        "{before:?}"
    );
    let config = LbConfig {
        table: "lbtest".into(),
        snat: Some(Snat::To(suite::LB_ADDR)),
    };
    let again = lb::open(LB, Some(Arc::clone(&t.lb_ns)), config)
        .await
        .unwrap();
    suite::assert_strict_rotation(&t.replies(80, 3), 3);
    let list = again.list().await.unwrap();
    assert!(
        list[0]
            .backends
            .iter()
            .all(|b| b.bytes_in.unwrap_or(0) > 0 && b.bytes_out.unwrap_or(0) > 0),
        "{list:?}"
    );
    again
        .remove_backend(&suite::svc(), &t.backends[0])
        .await
        .unwrap();
    suite::assert_strict_rotation(&t.replies(80, 2), 2);
}
