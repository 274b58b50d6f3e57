//! Root tests of the balancers on one node namespace, with either backend: a service VIP on an
//! overlay network reached from another task, and the routing mesh reached from the node itself
//! (`localhost`) and from a namespace outside it — each strict round robin over three tasks.
//! `ipvs` runs where the kernel has IPVS (the emulated VM of `tests/vm`, see `deploy/test.sh`)
//! and is skipped elsewhere unless `SHOAL_REQUIRE_IPVS=1`.

use super::tests::{net, serve, task, Node};
use super::*;
use crate::test_util::root;
use shoal_netlib::lb::LbChoice;
use shoal_netlib::names;
use shoal_netlib::netns::{self, NetNs};
use shoal_netlib::rt::Handle;
use shoal_proto::model::{NetworkAttachment, NetworkDriver, Protocol};
use shoal_proto::model::{PortConfig, PublishMode};
use shoal_proto::pb;
use std::io::Read;
use std::net::Ipv4Addr;
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;

const PUBLISHED: u16 = 30080;

fn attach(mut a: NetworkAttachment, vni: u32, addr: &str) -> NetworkAttachment {
    a.network.vni = vni;
    a.addresses = vec![addr.into()];
    a
}

fn lp_net(addr: &str) -> NetworkAttachment {
    attach(
        net(
            "lpnet000001",
            "lp_net",
            NetworkDriver::Overlay,
            "10.9.0.0/24",
            "10.9.0.1",
        ),
        4100,
        addr,
    )
}

fn ingress(addr: &str) -> NetworkAttachment {
    attach(
        net(
            "ingress0001",
            "ingress",
            NetworkDriver::Overlay,
            "10.8.0.0/24",
            "10.8.0.1",
        ),
        4101,
        addr,
    )
}

/// One line from `to:port`, connecting from inside `ns`.
fn get(ns: &NetNs, to: Ipv4Addr, port: u16) -> String {
    ns.run(move || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddrV4::new(to, port).into(), Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok::<_, String>(out)
    })
    .unwrap()
    .unwrap_or_else(|e| format!("FAIL {e}"))
}

fn assert_rr(what: &str, answers: &[String]) {
    for w in answers.windows(3) {
        let mut v: Vec<&String> = w.iter().collect();
        v.sort();
        v.dedup();
        assert_eq!(
            v.len(),
            3,
            "{what}: not round robin over web1..3: {answers:?}"
        );
    }
    assert!(
        answers.iter().all(|a| a.starts_with("web")),
        "{what}: {answers:?}"
    );
}

fn table(ingress: bool, web_ips: &[&str]) -> pb::LbTable {
    let (id, name, subnet, gw, vni, lb, vip) = if ingress {
        (
            "ingress0001",
            "ingress",
            "10.8.0.0/24",
            "10.8.0.1",
            4101,
            "10.8.0.200/24",
            "10.8.0.2/24",
        )
    } else {
        (
            "lpnet000001",
            "lp_net",
            "10.9.0.0/24",
            "10.9.0.1",
            4100,
            "10.9.0.200/24",
            "10.9.0.2/24",
        )
    };
    pb::LbTable {
        network_id: id.into(),
        ingress,
        lb_addr: lb.into(),
        name: name.into(),
        subnet: subnet.into(),
        gateway: gw.into(),
        vni,
        services: vec![pb::LbService {
            service_id: "websvc".into(),
            name: "web".into(),
            vip: vip.into(),
            fwmark: 0x102,
            ports: if ingress {
                vec![pb::LbPort {
                    protocol: pb::Protocol::Tcp as i32,
                    published: u32::from(PUBLISHED),
                    target: 8080,
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            backends: web_ips
                .iter()
                .enumerate()
                .map(|(i, ip)| pb::LbBackend {
                    task_id: format!("web{}", i + 1),
                    name: format!("web.{}.web{}", i + 1, i + 1),
                    ip: (*ip).into(),
                })
                .collect(),
        }],
    }
}

async fn vip_and_mesh(choice: LbChoice) {
    let node = Node::new().await;
    node.dp.set_lb_backend(choice).await;
    // Three tasks of `web` on ingress and lp_net, published 30080 -> 8080; a client on lp_net.
    let mut webs = Vec::new();
    for i in 1..=3u8 {
        let mut t = task(
            &format!("web{i}"),
            vec![
                ingress(&format!("10.8.0.1{i}/24")),
                lp_net(&format!("10.9.0.1{i}/24")),
            ],
        );
        t.spec.ports = vec![PortConfig {
            protocol: Protocol::Tcp,
            target: 8080,
            published: PUBLISHED,
            mode: PublishMode::Ingress,
            traffic: Default::default(),
        }];
        let sb = node.dp.prepare(&t).await.unwrap();
        serve(&sb, ["web1", "web2", "web3"][usize::from(i - 1)]);
        webs.push(sb);
    }
    let client = node
        .dp
        .prepare(&task("client", vec![lp_net("10.9.0.50/24")]))
        .await
        .unwrap();
    let tables = vec![
        table(true, &["10.8.0.11", "10.8.0.12", "10.8.0.13"]),
        table(false, &["10.9.0.11", "10.9.0.12", "10.9.0.13"]),
    ];
    node.dp.apply_lb(&tables).await.unwrap();
    // Idempotent: a second pass changes nothing and fails nothing.
    node.dp.apply_lb(&tables).await.unwrap();

    // The VIP, from the client task.
    let Sandbox::Netns { path, .. } = &client else {
        panic!()
    };
    let client_ns = NetNs::open(path).unwrap();
    let answers: Vec<String> = (0..6)
        .map(|_| get(&client_ns, "10.9.0.2".parse().unwrap(), 8080))
        .collect();
    assert_rr("client -> VIP", &answers);

    // The mesh from the node itself.
    let answers: Vec<String> = (0..6)
        .map(|_| get(&node.ns, Ipv4Addr::LOCALHOST, PUBLISHED))
        .collect();
    assert_rr("node -> localhost", &answers);

    // The mesh from outside: a namespace on a link to the node.
    let outside = NetNs::create(&node.dir.path().join("nodes"), "outside").unwrap();
    let h = Handle::in_ns(&node.ns).unwrap();
    h.ensure_veth("up0", "eth0", Some(&outside)).await.unwrap();
    h.ensure_addr("up0", "198.18.200.1".parse().unwrap(), 30)
        .await
        .unwrap();
    h.ensure_up("up0").await.unwrap();
    let o = Handle::in_ns(&outside).unwrap();
    o.ensure_addr("eth0", "198.18.200.2".parse().unwrap(), 30)
        .await
        .unwrap();
    o.ensure_up("eth0").await.unwrap();
    o.ensure_up("lo").await.unwrap();
    let answers: Vec<String> = (0..6)
        .map(|_| get(&outside, "198.18.200.1".parse().unwrap(), PUBLISHED))
        .collect();
    assert_rr("outside -> node:published", &answers);

    // What the balancers say, with counters (IPVS sums its per-CPU counters every 2 s).
    let counted = |net: &'static str, want: u64| {
        let dp = node.dp.clone();
        async move {
            for _ in 0..50 {
                let r = dp.lb_report(net).await.unwrap();
                let conns: Vec<u64> = r.services[0]
                    .backends
                    .iter()
                    .map(|b| b.connections)
                    .collect();
                if conns == vec![want; 3] {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!(
                "{net}: counters never reached {want} each: {:?}",
                dp.lb_report(net).await
            );
        }
    };
    let report = counted("lpnet000001", 2).await;
    assert_eq!(report.namespace, names::lb_ns("lpnet000001"));
    let s = &report.services[0];
    assert_eq!(
        (s.fwmark, s.scheduler.as_str(), s.name.as_str()),
        (0x102, "rr", "web")
    );
    let report = counted("ingress0001", 4).await;
    // The mesh balances in the node's own namespace, always with nftables.
    assert_eq!(
        (report.namespace.as_str(), report.kind.as_str()),
        ("node", "nftables")
    );
    if choice == LbChoice::Ipvs {
        let lp = node.dp.lb_report("lpnet000001").await.unwrap();
        assert_eq!(lp.kind, "ipvs");
        // As the reference article shows it.
        let ns = NetNs::open(
            &node
                .dir
                .path()
                .join("netns")
                .join(names::lb_ns("lpnet000001")),
        )
        .unwrap();
        let out = ns
            .run(|| std::process::Command::new("ipvsadm").arg("-Ln").output())
            .unwrap()
            .expect("ipvsadm");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{text}");
        assert!(text.contains("FWM  258 rr"), "{text}");
        for ip in ["10.9.0.11", "10.9.0.12", "10.9.0.13"] {
            assert!(
                text.lines()
                    .any(|l| l.contains(&format!("-> {ip}:0")) && l.contains("Masq")),
                "{text}"
            );
        }
    }

    // A neighbour that routes to an ingress address through the node does not get in: the node
    // forwards into the ingress network only what its balancer DNATed.
    o.ensure_route(
        "10.8.0.0".parse().unwrap(),
        24,
        Some("198.18.200.1".parse().unwrap()),
        None,
    )
    .await
    .unwrap();
    let straight = get(&outside, "10.8.0.11".parse().unwrap(), 8080);
    assert!(straight.starts_with("FAIL"), "{straight}");
    let mesh = get(&outside, "198.18.200.1".parse().unwrap(), PUBLISHED);
    assert!(mesh.starts_with("web"), "the mesh still answers: {mesh}");

    // Scale to one backend, then no table at all: the balancers follow, then go.
    let one = vec![table(true, &["10.8.0.12"]), table(false, &["10.9.0.12"])];
    node.dp.apply_lb(&one).await.unwrap();
    for _ in 0..3 {
        assert_eq!(get(&client_ns, "10.9.0.2".parse().unwrap(), 8080), "web2");
        assert_eq!(get(&node.ns, Ipv4Addr::LOCALHOST, PUBLISHED), "web2");
    }
    // The client balanced its VIP connections itself; its counts outlive it (the sums only grow).
    let web2 = |r: pb::LbNodeReport| r.services[0].backends[0].connections;
    let before = web2(node.dp.lb_report("lpnet000001").await.unwrap());
    assert!(before >= 5, "2 + 3 connections to web2: {before}");
    node.dp.release("client").await;
    assert_eq!(
        web2(node.dp.lb_report("lpnet000001").await.unwrap()),
        before
    );
    node.dp.apply_lb(&[]).await.unwrap();
    let left = netns::list(&node.dir.path().join("netns")).unwrap();
    assert!(
        !left
            .iter()
            .any(|n| n.starts_with(names::LB_NS) || n == names::INGRESS_SBOX),
        "{left:?}"
    );
    assert!(get(&node.ns, Ipv4Addr::LOCALHOST, PUBLISHED).starts_with("FAIL"));
    // Nothing of the mesh is left in the node's namespace: no leg, no tables of its own.
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        node.ns
            .run(move || {
                std::process::Command::new(&args[0])
                    .args(&args[1..])
                    .output()
            })
            .unwrap()
            .expect("runs")
    };
    assert!(!run(&["ip", "link", "show", names::INGRESS_LEG])
        .status
        .success());
    let tables = String::from_utf8_lossy(&run(&["nft", "list", "tables"]).stdout).to_string();
    assert!(
        !tables.contains("shoal_mesh") && !tables.contains("shoal_mark"),
        "{tables}"
    );
    for sb in webs {
        let _ = sb;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn vip_and_mesh_nftables() {
    if !root() {
        return;
    }
    vip_and_mesh(LbChoice::Nftables).await;
}

#[ignore = "needs root"]
#[tokio::test]
async fn vip_and_mesh_ipvs() {
    if !root() {
        return;
    }
    if shoal_netlib::ipvs::Ipvs::open().is_err() {
        assert!(
            std::env::var("SHOAL_REQUIRE_IPVS").as_deref() != Ok("1"),
            "SHOAL_REQUIRE_IPVS=1 but this kernel has no IPVS"
        );
        eprintln!("vip_and_mesh_ipvs: skipped, no IPVS in this kernel (it runs in tests/vm)");
        return;
    }
    vip_and_mesh(LbChoice::Ipvs).await;
}
