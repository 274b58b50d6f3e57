//! Root tests of namespaces, links, VXLAN, FDB and sysctls against the real kernel, in
//! throwaway namespaces (see `common`).
mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::{fetch, plug, Scratch};
use shoal_netlib::netns::{self, NetNs};
use shoal_netlib::rt::{mac_of_ipv4, Handle, Vxlan};
use shoal_netlib::sysctl;

const VNI: u32 = 4097;

fn node_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, i)
}

fn task_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 1, 10 + i)
}

/// One node: its namespace on the underlay, its overlay sandbox (`br0` + VXLAN created in the
/// node and moved into the sandbox, as Docker does), and a task plugged into `br0`.
struct Node {
    node: Arc<NetNs>,
    ov: Arc<NetNs>,
    task: Arc<NetNs>,
}

/// Everything one node needs; every call is an `ensure_*`, so running it twice must change
/// nothing. Returns whether anything changed.
async fn build_node(n: &Node, i: u8, peers: &[u8]) -> bool {
    let mut changed = false;
    let host = Handle::in_ns(&n.node).unwrap();
    let ov = Handle::in_ns(&n.ov).unwrap();
    let task = Handle::in_ns(&n.task).unwrap();
    changed |= ov.ensure_bridge("br0").await.unwrap();
    changed |= ov.ensure_mtu("br0", 1450).await.unwrap();
    changed |= ov.ensure_up("br0").await.unwrap();
    if ov.link("vxlan0").await.unwrap().is_none() {
        let mut v = Vxlan::new("swvx4097", VNI);
        v.local = Some(node_ip(i));
        v.dev = Some(host.link_required("eth0").await.unwrap().index);
        changed |= host.ensure_vxlan(&v).await.unwrap();
        host.move_to("swvx4097", &n.ov).await.unwrap();
        ov.rename("swvx4097", "vxlan0").await.unwrap();
    }
    changed |= ov.ensure_master("vxlan0", "br0").await.unwrap();
    changed |= ov.ensure_up("vxlan0").await.unwrap();
    changed |= ov.ensure_veth("swt0", "eth0", Some(&n.task)).await.unwrap();
    changed |= ov.ensure_mtu("swt0", 1450).await.unwrap();
    changed |= ov.ensure_master("swt0", "br0").await.unwrap();
    changed |= ov.ensure_up("swt0").await.unwrap();
    changed |= task
        .ensure_mac("eth0", mac_of_ipv4(task_ip(i)))
        .await
        .unwrap();
    changed |= task.ensure_mtu("eth0", 1450).await.unwrap();
    changed |= task.ensure_addr("eth0", task_ip(i), 24).await.unwrap();
    changed |= task.ensure_up("eth0").await.unwrap();
    let gw = Ipv4Addr::new(198, 19, 1, 1);
    changed |= task
        .ensure_route(Ipv4Addr::new(198, 19, 200, 0), 24, Some(gw), Some("eth0"))
        .await
        .unwrap();
    for &j in peers {
        changed |= ov.ensure_flood("vxlan0", node_ip(j)).await.unwrap();
        changed |= ov
            .ensure_fdb("vxlan0", mac_of_ipv4(task_ip(j)), node_ip(j))
            .await
            .unwrap();
        changed |= ov
            .ensure_neighbour("vxlan0", task_ip(j), mac_of_ipv4(task_ip(j)))
            .await
            .unwrap();
    }
    changed |= sysctl_set(&n.ov, "net.ipv4.conf.all.forwarding", "1");
    changed
}

fn sysctl_set(ns: &NetNs, key: &str, value: &str) -> bool {
    let before = sysctl::get(Some(ns), key).unwrap();
    sysctl::set(Some(ns), key, value).unwrap();
    before != value
}

/// What `ip link`, `ip addr`, `ip route`, `ip neigh` and `bridge fdb` show in a namespace.
async fn snapshot(ns: &NetNs) -> String {
    let h = Handle::in_ns(ns).unwrap();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        h.links().await.unwrap(),
        h.addrs().await.unwrap(),
        h.routes().await.unwrap(),
        h.neighbours().await.unwrap(),
        h.fdb().await.unwrap()
    )
}

async fn two_nodes(s: &mut Scratch) -> Vec<Node> {
    let ul = s.ns("ul").await;
    Handle::in_ns(&ul)
        .unwrap()
        .ensure_bridge("ulbr0")
        .await
        .unwrap();
    Handle::in_ns(&ul)
        .unwrap()
        .ensure_up("ulbr0")
        .await
        .unwrap();
    let mut nodes = Vec::new();
    for i in 1..=2u8 {
        let node = s.ns(&format!("n{i}")).await;
        plug(&ul, "ulbr0", &node, &format!("ul-n{i}"), node_ip(i)).await;
        let ov = s.ns(&format!("ov{i}")).await;
        let task = s.ns(&format!("t{i}")).await;
        nodes.push(Node { node, ov, task });
    }
    nodes
}

#[ignore = "needs root"]
#[tokio::test]
async fn vxlan_carries_traffic_between_two_nodes_with_static_entries_only() {
    if !common::root() {
        return;
    }
    let mut s = Scratch::new("vxlan");
    let nodes = two_nodes(&mut s).await;
    assert!(build_node(&nodes[0], 1, &[2]).await);
    assert!(build_node(&nodes[1], 2, &[1]).await);
    s.serve(&nodes[1].task, 8080, "hello from t2");
    s.serve(&nodes[0].task, 8080, "hello from t1");
    assert_eq!(
        fetch(&nodes[0].task, task_ip(2), 8080).as_deref(),
        Some("hello from t2")
    );
    assert_eq!(
        fetch(&nodes[1].task, task_ip(1), 8080).as_deref(),
        Some("hello from t1")
    );
    // No learning: the VXLAN FDB holds exactly what we programmed (flood + one MAC).
    let ov = Handle::in_ns(&nodes[0].ov).unwrap();
    let vx = ov.link_required("vxlan0").await.unwrap();
    assert_eq!(vx.vni, Some(VNI));
    assert_eq!(vx.mtu, 1450);
    let fdb: Vec<_> = ov
        .fdb()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.index == vx.index)
        .collect();
    assert_eq!(fdb.len(), 2, "{fdb:?}");
    assert!(fdb.iter().all(|e| e.dst == node_ip(2)));
    // The tunnel really is the path: without the peer's FDB entries it stops working.
    ov.del_fdb("vxlan0", mac_of_ipv4(task_ip(2)), node_ip(2))
        .await
        .unwrap();
    ov.del_fdb("vxlan0", [0; 6], node_ip(2)).await.unwrap();
    assert_eq!(fetch(&nodes[0].task, task_ip(2), 8080), None);
}

#[ignore = "needs root"]
#[tokio::test]
async fn every_ensure_called_twice_changes_nothing_the_second_time() {
    if !common::root() {
        return;
    }
    let mut s = Scratch::new("idem");
    let nodes = two_nodes(&mut s).await;
    assert!(build_node(&nodes[0], 1, &[2]).await);
    let before = (
        snapshot(&nodes[0].ov).await,
        snapshot(&nodes[0].task).await,
        snapshot(&nodes[0].node).await,
    );
    assert!(
        !build_node(&nodes[0], 1, &[2]).await,
        "the second pass reported a change"
    );
    let after = (
        snapshot(&nodes[0].ov).await,
        snapshot(&nodes[0].task).await,
        snapshot(&nodes[0].node).await,
    );
    assert_eq!(before, after);
    let h = Handle::in_ns(&nodes[0].ov).unwrap();
    assert!(h
        .ensure_addr("br0", Ipv4Addr::new(198, 19, 1, 1), 24)
        .await
        .unwrap());
    assert!(!h
        .ensure_addr("br0", Ipv4Addr::new(198, 19, 1, 1), 24)
        .await
        .unwrap());
    // A wrong kind under an existing name is refused, not silently replaced.
    let err = h.ensure_bridge("vxlan0").await.unwrap_err();
    assert!(err.to_string().contains("not a bridge"), "{err}");
}

#[ignore = "needs root"]
#[tokio::test]
async fn deleting_a_namespace_removes_everything_in_it() {
    if !common::root() {
        return;
    }
    let mut s = Scratch::new("del");
    let a = s.ns("a").await;
    let dir = s.dir.clone();
    let b = Arc::new(NetNs::create(&dir, "b").unwrap());
    let ha = Handle::in_ns(&a).unwrap();
    ha.ensure_veth("to-b", "to-a", Some(&b)).await.unwrap();
    let hb = Handle::in_ns(&b).unwrap();
    hb.ensure_bridge("brb").await.unwrap();
    assert!(hb.link("to-a").await.unwrap().is_some());
    assert!(netns::list(&dir).unwrap().contains(&"b".to_string()));
    drop(hb);
    let b = Arc::try_unwrap(b).unwrap();
    b.delete().unwrap();
    assert!(!netns::list(&dir).unwrap().contains(&"b".to_string()));
    // The veth pair dies with its end in b (once the kernel has cleaned the namespace up).
    let gone = common::wait_for(10, async || {
        ha.link("to-b").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the veth peer outlived its namespace");
    // Creating a namespace over an existing name is refused; ensure reuses it.
    assert!(matches!(
        NetNs::create(&dir, "a"),
        Err(netns::Error::Exists(_))
    ));
    let again = NetNs::ensure(&dir, "a").unwrap();
    assert_eq!(again.name(), "a");
}

#[ignore = "needs root"]
#[tokio::test]
async fn sysctls_are_per_namespace() {
    if !common::root() {
        return;
    }
    let mut s = Scratch::new("sysctl");
    let a = s.ns("a").await;
    let host = sysctl::get(None, "net.ipv4.ip_forward").unwrap();
    sysctl::set(Some(&a), "net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(sysctl::get(Some(&a), "net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(sysctl::get(None, "net.ipv4.ip_forward").unwrap(), host);
    let err = sysctl::set(Some(&a), "net.ipv4.no_such_key", "1").unwrap_err();
    assert!(err.to_string().contains("no_such_key"), "{err}");
}

#[ignore = "needs root"]
#[test]
fn uts_and_pid_namespace_helpers_work_on_a_dedicated_thread() {
    if !common::root() {
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (name, pid) = std::thread::spawn(|| {
        netns::unshare(&[netns::Kind::Uts, netns::Kind::Pid]).unwrap();
        netns::set_hostname("tk-test-uts").unwrap();
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        // A new PID namespace applies to children: the first one is PID 1 there.
        let out = std::process::Command::new("sh")
            .args(["-c", "echo $$"])
            .output()
            .unwrap();
        (
            name,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(name.trim(), "tk-test-uts");
    assert_eq!(pid, "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host,
        "the host's name changed"
    );
}
