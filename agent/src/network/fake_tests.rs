//! The data plane against the recording fake kernel: no root, no namespaces. Each test feeds
//! balancer tables or overlay peers and checks the calls that changed something, written as
//! the commands that would have made them.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_netlib::lb::LbKind;
use shoal_netlib::names;
use shoal_netlib::rt::{format_mac, mac_of_ipv4};
use shoal_proto::pb;

use super::kernel::fake::FakeKernel;
use super::{parse_subnet, DataPlane};

const NET: &str = "net0000000001";
const INGRESS: &str = "ingress000001";

struct Node {
    _dir: tempfile::TempDir,
    dp: DataPlane,
    k: FakeKernel,
}

fn node(kind: LbKind) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let k = FakeKernel::new(kind);
    let dp = DataPlane::with_kernel(
        dir.path(),
        dir.path().join("netns"),
        Arc::new(k.clone()),
        None,
    )
    .unwrap();
    k.take();
    Node { _dir: dir, dp, k }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A service of an overlay table: `(name, mark, backends)`, VIP `10.0.0.<mark + 100>`.
fn service(name: &str, mark: u32, backends: &[&str], published: Option<u32>) -> pb::LbService {
    pb::LbService {
        service_id: format!("svc-{name}"),
        name: name.into(),
        vip: format!("10.0.0.{}/24", mark + 100),
        fwmark: mark,
        ports: published
            .map(|p| pb::LbPort {
                protocol: pb::Protocol::Tcp as i32,
                published: p,
                target: 80,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        backends: backends
            .iter()
            .map(|ip| pb::LbBackend {
                task_id: format!("t-{ip}"),
                name: format!("{name}.{ip}"),
                ip: ip.to_string(),
            })
            .collect(),
    }
}

fn table(net: &str, ingress: bool, vni: u32, services: Vec<pb::LbService>) -> pb::LbTable {
    let third = if ingress { 255 } else { 0 };
    pb::LbTable {
        network_id: net.into(),
        ingress,
        lb_addr: format!("10.{third}.0.250/24"),
        services,
        name: if ingress {
            "ingress".into()
        } else {
            "web_net".into()
        },
        subnet: format!("10.{third}.0.0/24"),
        gateway: format!("10.{third}.0.1"),
        vni,
    }
}

fn web_and_api(web: &[&str]) -> Vec<pb::LbTable> {
    vec![table(
        NET,
        false,
        4097,
        vec![
            service("web", 1, web, None),
            service("api", 2, &["10.0.0.4"], None),
        ],
    )]
}

#[tokio::test]
async fn a_first_table_builds_overlay_balancer_vips_marks_and_services() {
    let n = node(LbKind::Ipvs);
    n.dp.apply_lb(&web_and_api(&["10.0.0.2", "10.0.0.3"]))
        .await
        .unwrap();
    let log = n.k.take();
    let lb = names::lb_ns(NET);
    let ov = names::overlay_ns(NET);
    let vx = names::vxlan(4097);
    for want in [
        format!("ip netns add {ov}"),
        format!("ip link add {vx} type vxlan id 4097"),
        format!("ip link set {vx} netns {ov}"),
        format!("ip netns add {lb}"),
        format!("ip -n {lb} addr add 10.0.0.250/24 dev eth0"),
        format!("ip -n {lb} addr add 10.0.0.101/32 dev eth0"),
        format!("ip -n {lb} addr add 10.0.0.102/32 dev eth0"),
        format!("nft -n {lb} -f (table shoal_mark: 2 rules)"),
        format!("ipvsadm -n {lb} -A -f 1 -s rr"),
        format!("ipvsadm -n {lb} -a -f 1 -r 10.0.0.3"),
        format!("ipvsadm -n {lb} -a -f 2 -r 10.0.0.4"),
        format!("ipvsadm -n {lb} --set 86400 0 0"),
    ] {
        assert!(log.contains(&want), "no {want:?} in {log:#?}");
    }
    assert_eq!(
        n.k.lb(&lb),
        ["FWM 1 -> 10.0.0.2,10.0.0.3", "FWM 2 -> 10.0.0.4"]
    );
}

#[tokio::test]
async fn converging_twice_is_a_no_op() {
    let n = node(LbKind::Ipvs);
    let mut tables = web_and_api(&["10.0.0.2"]);
    tables.push(table(
        INGRESS,
        true,
        4096,
        vec![service("web", 3, &["10.255.0.2"], Some(30080))],
    ));
    n.dp.apply_lb(&tables).await.unwrap();
    assert!(!n.k.take().is_empty());
    n.dp.apply_lb(&tables).await.unwrap();
    assert_eq!(n.k.take(), Vec::<String>::new());
    n.dp.set_peers(vec![(NET.into(), ip("10.0.0.9"), ip("192.168.1.2"))])
        .await;
    assert!(!n.k.take().is_empty());
    n.dp.set_peers(vec![(NET.into(), ip("10.0.0.9"), ip("192.168.1.2"))])
        .await;
    assert_eq!(n.k.take(), Vec::<String>::new());
}

#[tokio::test]
async fn adding_a_backend_touches_only_that_service() {
    let n = node(LbKind::Nftables);
    n.dp.apply_lb(&web_and_api(&["10.0.0.2"])).await.unwrap();
    n.k.take();
    n.dp.apply_lb(&web_and_api(&["10.0.0.2", "10.0.0.3"]))
        .await
        .unwrap();
    let lb = names::lb_ns(NET);
    assert_eq!(n.k.take(), [format!("ipvsadm -n {lb} -a -f 1 -r 10.0.0.3")]);
    // And removing it touches only that backend.
    n.dp.apply_lb(&web_and_api(&["10.0.0.2"])).await.unwrap();
    assert_eq!(n.k.take(), [format!("ipvsadm -n {lb} -d -f 1 -r 10.0.0.3")]);
}

#[tokio::test]
async fn a_service_gone_takes_its_vip_mark_and_virtual_service() {
    let n = node(LbKind::Nftables);
    n.dp.apply_lb(&web_and_api(&["10.0.0.2"])).await.unwrap();
    n.k.take();
    let only_web = vec![table(
        NET,
        false,
        4097,
        vec![service("web", 1, &["10.0.0.2"], None)],
    )];
    n.dp.apply_lb(&only_web).await.unwrap();
    let lb = names::lb_ns(NET);
    assert_eq!(
        n.k.take(),
        [
            format!("ip -n {lb} addr del 10.0.0.102/32 dev eth0"),
            format!("nft -n {lb} -f (table shoal_mark: 1 rules)"),
            format!("ipvsadm -n {lb} -D -f 2"),
        ]
    );
}

#[tokio::test]
async fn removing_a_peer_removes_exactly_its_entries() {
    let n = node(LbKind::Nftables);
    // The balancer brings the network's overlay sandbox to this node.
    n.dp.apply_lb(&web_and_api(&["10.0.0.2"])).await.unwrap();
    n.k.take();
    let (node_a, node_b) = (ip("192.168.1.2"), ip("192.168.1.3"));
    let peer = |a: &str, node| (NET.to_string(), ip(a), node);
    let all = vec![
        peer("10.0.0.2", node_a),
        peer("10.0.0.3", node_a),
        peer("10.0.0.4", node_b),
        // Another network's peer: no sandbox of it here, nothing programmed.
        ("other".to_string(), ip("10.9.0.2"), node_b),
    ];
    n.dp.set_peers(all.clone()).await;
    let (ov, vx) = (names::overlay_ns(NET), names::vxlan(4097));
    let mac = |a: &str| format_mac(&mac_of_ipv4(ip(a)));
    assert_eq!(
        n.k.take().len(),
        2 + 3 + 3,
        "2 flood, 3 fdb, 3 neighbour entries"
    );
    assert_eq!(
        n.k.fdb(&ov, &vx),
        [
            format!("00:00:00:00:00:00 dst {node_a}"),
            format!("00:00:00:00:00:00 dst {node_b}"),
            format!("{} dst {node_a}", mac("10.0.0.2")),
            format!("{} dst {node_a}", mac("10.0.0.3")),
            format!("{} dst {node_b}", mac("10.0.0.4")),
        ]
    );
    // One of node A's two endpoints goes: its entries, and nothing else.
    let without =
        |gone: &str| -> Vec<_> { all.iter().filter(|p| p.1 != ip(gone)).cloned().collect() };
    n.dp.set_peers(without("10.0.0.3")).await;
    assert_eq!(
        n.k.take(),
        [
            format!(
                "bridge -n {ov} fdb del {} dev {vx} dst {node_a}",
                mac("10.0.0.3")
            ),
            format!("ip -n {ov} neigh del 10.0.0.3 dev {vx}"),
        ]
    );
    // Node B's only endpoint goes: its flood entry goes too.
    let rest: Vec<_> = without("10.0.0.3")
        .into_iter()
        .filter(|p| p.1 != ip("10.0.0.4"))
        .collect();
    n.dp.set_peers(rest).await;
    assert_eq!(
        n.k.take(),
        [
            format!("bridge -n {ov} fdb del 00:00:00:00:00:00 dev {vx} dst {node_b}"),
            format!(
                "bridge -n {ov} fdb del {} dev {vx} dst {node_b}",
                mac("10.0.0.4")
            ),
            format!("ip -n {ov} neigh del 10.0.0.4 dev {vx}"),
        ]
    );
}

#[tokio::test]
async fn a_peer_moving_to_another_node_is_replaced_in_place() {
    let n = node(LbKind::Nftables);
    n.dp.apply_lb(&web_and_api(&["10.0.0.2"])).await.unwrap();
    let (node_a, node_b) = (ip("192.168.1.2"), ip("192.168.1.3"));
    n.dp.set_peers(vec![(NET.into(), ip("10.0.0.2"), node_a)])
        .await;
    n.k.take();
    n.dp.set_peers(vec![(NET.into(), ip("10.0.0.2"), node_b)])
        .await;
    let (ov, vx) = (names::overlay_ns(NET), names::vxlan(4097));
    let mac = format_mac(&mac_of_ipv4(ip("10.0.0.2")));
    assert_eq!(
        n.k.take(),
        [
            format!("bridge -n {ov} fdb append 00:00:00:00:00:00 dev {vx} dst {node_b}"),
            format!("bridge -n {ov} fdb replace {mac} dev {vx} dst {node_b}"),
            format!("bridge -n {ov} fdb del 00:00:00:00:00:00 dev {vx} dst {node_a}"),
        ]
    );
}

#[tokio::test]
async fn the_mesh_follows_the_ingress_table_on_the_node() {
    let n = node(LbKind::Ipvs);
    let ingress = |port: Option<u32>| {
        vec![table(
            INGRESS,
            true,
            4096,
            vec![service("web", 3, &["10.255.0.2"], port)],
        )]
    };
    n.dp.apply_lb(&ingress(Some(30080))).await.unwrap();
    let log = n.k.take();
    assert!(log.contains(&"reserve tcp/30080".to_string()), "{log:#?}");
    // The node's own leg on the ingress overlay, with its balancer address, and the mesh's
    // marks (from outside and from the node) and balancer (nftables, whatever the node's
    // choice) in the node's namespace: no ingress_sbox.
    for want in [
        "ip link add swingress type veth peer name swlingress0000 netns ov_ingress00",
        "ip -n ov_ingress00 link set swlingress0000 master br0",
        "ip addr add 10.255.0.250/24 dev swingress",
        "sysctl -w net.ipv4.conf.swingress.route_localnet=1",
        "nft -f (table shoal_mark: 2 rules)",
    ] {
        assert!(log.contains(&want.to_string()), "{want}: {log:#?}");
    }
    assert!(!log.iter().any(|l| l.contains("ingress_sbox")), "{log:#?}");
    let report = n.dp.lb_report(INGRESS).await.unwrap();
    assert_eq!(
        (report.namespace.as_str(), report.kind.as_str()),
        ("node", "nftables")
    );
    let rules = n.k.nft("").expect("the node's table").to_string();
    assert!(
        rules.contains("30080") && rules.contains("tcp reset") && !rules.contains(r#"{"dnat":"#),
        "the node's table only refuses what the balancer did not take: {rules}"
    );
    // The same ports again: the node's table is left alone.
    n.dp.apply_lb(&ingress(Some(30080))).await.unwrap();
    assert_eq!(n.k.take(), Vec::<String>::new());
    // No published port any more: the node's table drops the mesh.
    n.dp.apply_lb(&ingress(None)).await.unwrap();
    let log = n.k.take();
    assert_eq!(
        log,
        [
            "nft -f (table shoal_mark: 0 rules)",
            "unreserve tcp/30080",
            "nft -f (table shoal: 2 rules)",
        ]
    );
    let rules = n.k.nft("").unwrap().to_string();
    assert!(!rules.contains("30080"), "{rules}");
}

#[tokio::test]
async fn balancers_no_network_needs_are_removed_with_their_overlay() {
    let n = node(LbKind::Nftables);
    n.k.leave_ns("lb_crashleftover");
    n.dp.apply_lb(&web_and_api(&["10.0.0.2"])).await.unwrap();
    assert!(n
        .k
        .take()
        .contains(&"ip netns del lb_crashleftover".to_string()));
    n.dp.apply_lb(&[]).await.unwrap();
    assert_eq!(
        n.k.take(),
        [
            format!("ip netns del {}", names::lb_ns(NET)),
            format!("ip netns del {}", names::overlay_ns(NET)),
        ]
    );
    assert!(n.k.namespaces().is_empty());
}

#[tokio::test]
async fn a_user_bridge_and_its_rules_go_with_its_last_task() {
    let n = node(LbKind::Nftables);
    let br = names::bridge("net1aaaaaaaaaaa");
    let subnet = parse_subnet("198.18.101.0/24").unwrap();
    let gw = ip("198.18.101.1");
    n.dp.ensure_bridge(&br, subnet, gw, "t1").await.unwrap();
    assert_eq!(
        n.k.take(),
        [
            format!("ip link add {br} type bridge"),
            format!("ip addr add 198.18.101.1/24 dev {br}"),
            format!("ip link set {br} up"),
            "nft -f (table shoal: 4 rules)".to_string(),
        ]
    );
    n.dp.ensure_bridge(&br, subnet, gw, "t2").await.unwrap();
    assert_eq!(
        n.k.take(),
        Vec::<String>::new(),
        "a second task changes nothing"
    );
    n.dp.release("t1").await;
    assert_eq!(n.k.take(), Vec::<String>::new(), "t2 still uses it");
    n.dp.release("t2").await;
    assert_eq!(
        n.k.take(),
        [
            format!("ip link del {br}"),
            "nft -f (table shoal: 2 rules)".to_string(),
        ]
    );
    assert!(!n.k.nft("").unwrap().to_string().contains(&br));
}

#[tokio::test]
async fn the_janitor_keeps_adopted_tasks_and_plugged_overlays() {
    let n = node(LbKind::Nftables);
    for ns in ["tk_keep", "tk_gone", "ov_unplugged"] {
        n.k.leave_ns(ns);
    }
    n.dp.janitor(&HashSet::from(["keep".to_string()])).await;
    assert_eq!(
        n.k.take(),
        ["ip netns del tk_gone", "ip netns del ov_unplugged"]
    );
    assert_eq!(n.k.namespaces(), ["tk_keep"]);
}
