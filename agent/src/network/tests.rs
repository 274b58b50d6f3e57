//! Root tests of the data plane: a namespace stands in for the node, tasks get real sandboxes,
//! and traffic between them is checked with TCP. Everything lives under a per-test directory
//! and is deleted by exact path when the test ends, even on failure. Addresses stay inside the
//! namespaces the test makes.

use super::*;
use crate::executor::process::ProcessExecutor;
use crate::test_util::root;
use shoal_netlib::names;
use shoal_netlib::netns::{self, NetNs};
use shoal_netlib::rt::Handle;
use shoal_proto::model::{AttachedNetwork, ServiceSpec};
use shoal_proto::model::{NetworkAttachment, NetworkDriver, Task};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

/// A node namespace and a state directory, removed on drop.
pub(super) struct Node {
    pub(super) dir: tempfile::TempDir,
    pub(super) ns: Arc<NetNs>,
    pub(super) dp: DataPlane,
}

impl Node {
    pub(super) async fn new() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("shoal-agent-dp-")
            .tempdir()
            .unwrap();
        let ns = Arc::new(NetNs::create(&dir.path().join("nodes"), "node").unwrap());
        Handle::in_ns(&ns).unwrap().ensure_up("lo").await.unwrap();
        let dp = DataPlane::with_node(dir.path(), Some(Arc::clone(&ns)))
            .await
            .unwrap();
        Node { dir, ns, dp }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for sub in ["netns", "nodes"] {
            let d = self.dir.path().join(sub);
            for n in netns::list(&d).unwrap_or_default() {
                let _ = netns::delete_path(&d.join(n));
            }
            let _ = netns::release_dir(&d);
        }
    }
}

pub(super) fn task(id: &str, nets: Vec<NetworkAttachment>) -> Task {
    Task {
        id: id.into(),
        service_name: "t".into(),
        networks: nets,
        spec: ServiceSpec {
            image: "sh".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub(super) fn net(
    id: &str,
    name: &str,
    driver: NetworkDriver,
    subnet: &str,
    gateway: &str,
) -> NetworkAttachment {
    NetworkAttachment {
        network_id: id.into(),
        network: AttachedNetwork {
            name: name.into(),
            driver,
            subnet: subnet.into(),
            gateway: gateway.into(),
            vni: 0,
        },
        ..Default::default()
    }
}

/// Serves one line on :8080 inside the task's namespace, for at most 60 s.
pub(super) fn serve(sb: &Sandbox, reply: &'static str) {
    let Sandbox::Netns { path, .. } = sb else {
        panic!("no namespace")
    };
    let ns = NetNs::open(path).unwrap();
    let l = ns
        .run(|| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080)))
        .unwrap()
        .unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < end {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write_all(reply.as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

fn fetch(from: &Sandbox, to: Ipv4Addr) -> Option<String> {
    let Sandbox::Netns { path, .. } = from else {
        panic!("no namespace")
    };
    NetNs::open(path)
        .unwrap()
        .run(move || {
            let mut s = TcpStream::connect_timeout(
                &SocketAddrV4::new(to, 8080).into(),
                Duration::from_secs(2),
            )
            .ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        })
        .unwrap()
}

#[ignore = "needs root"]
#[tokio::test]
async fn default_bridge_none_and_host() {
    if !root() {
        return;
    }
    let node = Node::new().await;
    let a = node
        .dp
        .prepare(&task("taska00000001", vec![]))
        .await
        .unwrap();
    let b = node
        .dp
        .prepare(&task("taskb00000002", vec![]))
        .await
        .unwrap();
    assert_eq!(a.first_addr(), Some("172.17.0.2".parse().unwrap()));
    assert_eq!(b.first_addr(), Some("172.17.0.3".parse().unwrap()));
    serve(&b, "hello from b");
    assert_eq!(
        fetch(&a, "172.17.0.3".parse().unwrap()).as_deref(),
        Some("hello from b")
    );
    // The node reaches its tasks through the bridge's gateway address.
    let host = Handle::in_ns(&node.ns).unwrap();
    let br = host.link_required("shoal0").await.unwrap();
    assert!(host
        .addrs()
        .await
        .unwrap()
        .iter()
        .any(|x| x.index == br.index && x.addr == Ipv4Addr::new(172, 17, 0, 1)));

    // Preparing again changes nothing.
    assert_eq!(
        node.dp
            .prepare(&task("taska00000001", vec![]))
            .await
            .unwrap(),
        a
    );

    // none: loopback only, no route.
    let none = net("none-id", "none", NetworkDriver::Null, "", "");
    let n = node
        .dp
        .prepare(&task("taskn00000003", vec![none]))
        .await
        .unwrap();
    let Sandbox::Netns { path, interfaces } = &n else {
        panic!()
    };
    assert!(interfaces.is_empty());
    let inside = Handle::in_ns(&NetNs::open(path).unwrap()).unwrap();
    let links: Vec<String> = inside
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(links, vec!["lo".to_string()]);
    assert!(inside.routes().await.unwrap().is_empty());

    // host: the node's own namespace.
    let h = net("host-id", "host", NetworkDriver::Host, "", "");
    assert_eq!(
        node.dp
            .prepare(&task("taskh00000004", vec![h]))
            .await
            .unwrap(),
        Sandbox::Host
    );

    // Release removes the sandbox; the janitor removes what nobody owns.
    node.dp.release("taskn00000003").await;
    assert!(!netns::list(node.dp.netns_dir())
        .unwrap()
        .contains(&names::task_ns("taskn00000003")));
    node.dp
        .janitor(&HashSet::from(["taska00000001".to_string()]))
        .await;
    assert_eq!(
        netns::list(node.dp.netns_dir()).unwrap(),
        vec![names::task_ns("taska00000001")]
    );
    // b's address is free again.
    let c = node
        .dp
        .prepare(&task("taskc00000005", vec![]))
        .await
        .unwrap();
    assert_eq!(c.first_addr(), Some("172.17.0.3".parse().unwrap()));
}

#[ignore = "needs root"]
#[tokio::test]
async fn user_bridges_are_isolated_from_each_other() {
    if !root() {
        return;
    }
    let node = Node::new().await;
    let n1 = net(
        "net1aaaaaaaaaaa",
        "front",
        NetworkDriver::Bridge,
        "198.18.101.0/24",
        "198.18.101.1",
    );
    let n2 = net(
        "net2bbbbbbbbbbb",
        "back",
        NetworkDriver::Bridge,
        "198.18.102.0/24",
        "198.18.102.1",
    );
    let a1 = node
        .dp
        .prepare(&task("taska1", vec![n1.clone()]))
        .await
        .unwrap();
    let a2 = node.dp.prepare(&task("taska2", vec![n1])).await.unwrap();
    let b1 = node.dp.prepare(&task("taskb1", vec![n2])).await.unwrap();
    serve(&a2, "a2");
    serve(&b1, "b1");
    assert_eq!(fetch(&a1, a2.first_addr().unwrap()).as_deref(), Some("a2"));
    assert_eq!(
        fetch(&a1, b1.first_addr().unwrap()),
        None,
        "two bridge networks must not reach each other"
    );
    let host = Handle::in_ns(&node.ns).unwrap();
    let br1 = names::bridge("net1aaaaaaaaaaa");
    assert!(host.link(&br1).await.unwrap().is_some());
    // The bridge of a user network goes with its last local task; shoal0 would stay.
    node.dp.release("taska1").await;
    assert!(
        host.link(&br1).await.unwrap().is_some(),
        "taska2 still uses it"
    );
    node.dp.release("taska2").await;
    assert!(
        host.link(&br1).await.unwrap().is_none(),
        "an unused user bridge is removed"
    );
}

#[ignore = "needs root"]
#[tokio::test]
async fn a_sandboxed_task_has_its_own_hostname_pid_and_etc() {
    if !root() {
        return;
    }
    let node = Node::new().await;
    let t = Task {
        spec: ServiceSpec {
            image: "sh".into(),
            args: vec![
                "-c".into(),
                "hostname; cat /etc/hostname; echo pid=$$; grep -c . /etc/hosts; ls /sys/class/net | tr '\\n' ' '".into(),
            ],
            ..Default::default()
        },
        ..task("tasks00000009", vec![])
    };
    let sb = node.dp.prepare(&t).await.unwrap();
    let ex = ProcessExecutor::new(node.dir.path().join("tasks"), "n1".into());
    let mut r = ex.start_in(&t, Some(&sb)).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), r.child.wait())
        .await
        .unwrap()
        .unwrap();
    let out: Vec<String> = ex
        .read_log(&t.id, "stdout", 0)
        .unwrap()
        .into_iter()
        .map(|l| String::from_utf8_lossy(&l).to_string())
        .collect();
    let err = ex.read_log(&t.id, "stderr", 0).unwrap();
    assert!(status.success(), "{out:?} {err:?}");
    assert_eq!(out[0], "tasks00000009");
    assert_eq!(out[1], "tasks00000009");
    assert_eq!(out[2], "pid=1");
    assert_eq!(
        out[3], "3",
        "localhost, ip6 localhost and the task's own line"
    );
    assert_eq!(out[4].trim(), "eth0 lo");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(
        host_name.trim(),
        "tasks00000009",
        "the node's host name is unchanged"
    );
}
