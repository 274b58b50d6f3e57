//! A 3-manager cluster in one process, over real gRPC on 127.0.0.1: replication, writes through
//! a follower, leader failure and restart from disk, on both storage engines.

use shoal_manager::raft::storage::EngineKind;
use shoal_manager::route::forwarded;
use shoal_manager::{Manager, ManagerConfig};
use shoal_proto::model::{now_ms, Cluster, Command, Network, Node, NodeRole, NodeState};
use shoal_proto::pb::{self, control_client::ControlClient};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Member {
    m: Arc<Manager>,
    stop: Option<oneshot::Sender<()>>,
    dir: std::path::PathBuf,
    addr: String,
    raft_id: u64,
}

async fn start(
    dir: &std::path::Path,
    raft_id: u64,
    listener: TcpListener,
    engine: EngineKind,
) -> Member {
    let addr = listener.local_addr().unwrap().to_string();
    let mut cfg = ManagerConfig::new(
        format!("node{raft_id}"),
        raft_id,
        addr.clone(),
        dir.to_path_buf(),
    );
    cfg.engine = engine;
    cfg.election_timeout = Duration::from_millis(150);
    cfg.raft_heartbeat = Duration::from_millis(40);
    cfg.snapshot_every = 50; // exercise snapshots and purge
    let m = Manager::start(cfg).await.expect("manager starts");
    let (tx, rx) = oneshot::channel();
    let srv = m.clone();
    tokio::spawn(async move {
        let _ = shoal_manager::server::serve_tcp(srv, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    Member {
        m,
        stop: Some(tx),
        dir: dir.to_path_buf(),
        addr,
        raft_id,
    }
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn net(name: &str) -> Command {
    Command::CreateNetwork(Network {
        id: format!("id-{name}").into(),
        name: name.into(),
        ..Default::default()
    })
}

async fn three_managers(engine: EngineKind) {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = Vec::new();
    for i in 1..=3u64 {
        let dir = tmp.path().join(format!("m{i}"));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.push(start(&dir, i, l, engine).await);
    }
    let m1 = members[0].m.clone();
    m1.initialize().await.unwrap();
    wait_for("m1 to lead", Duration::from_secs(5), || m1.is_leader()).await;
    m1.write(Command::InitCluster(Cluster {
        id: "c".into(),
        default_addr_pool: "10.0.0.0/8".into(),
        subnet_size: 24,
        ..Default::default()
    }))
    .await
    .unwrap();
    // Registering manager nodes in the store is what makes the leader add them to raft.
    for mem in &members {
        let node = Node {
            id: format!("node{}", mem.raft_id).into(),
            hostname: format!("m{}", mem.raft_id),
            role: NodeRole::Manager,
            state: NodeState::Ready,
            addr: mem.addr.clone(),
            raft_id: mem.raft_id,
            created_ms: now_ms(),
            ..Default::default()
        };
        m1.write(Command::PutNode(node)).await.unwrap();
    }
    wait_for("3 voters", Duration::from_secs(10), || {
        m1.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .count()
            == 3
    })
    .await;

    // A write through a follower is forwarded to the leader and applied everywhere.
    members[2].m.write(net("lp_net")).await.unwrap();
    for mem in &members {
        let m = mem.m.clone();
        wait_for("replication", Duration::from_secs(5), || {
            m.store.read().network("lp_net").is_ok()
        })
        .await;
    }
    // A refused command comes back as an error from a follower too, and changes nothing.
    let err = members[1].m.write(net("lp_net")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "network with name \"lp_net\" already exists"
    );

    // A follower forwards the calls only the leader answers, once.
    let mut ctl = ControlClient::connect(format!("http://{}", members[2].addr))
        .await
        .unwrap();
    let exec = pb::ExecTaskRequest {
        task: "nosuch".into(),
        cmd: vec!["true".into()],
        timeout_ms: 0,
    };
    let err = ctl.exec_task(exec.clone()).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::NotFound, "task nosuch not found"),
        "answered by the leader"
    );
    let err = ctl.exec_task(forwarded(exec, None)).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            tonic::Code::Unavailable,
            "no raft leader right now; retry shortly"
        ),
        "a forwarded call is never forwarded again"
    );
    let nodes = ctl.list_nodes(pb::Empty {}).await.unwrap().into_inner();
    assert_eq!(nodes.nodes.len(), 3);

    // Enough writes to snapshot and purge the log.
    for i in 0..120 {
        m1.write(net(&format!("n{i}"))).await.unwrap();
    }

    // Kill the leader: a new one is elected and writes work again, nothing committed is lost.
    let mut old = members.remove(0);
    let killed = Instant::now();
    let _ = old.stop.take().unwrap().send(());
    old.m.shutdown().await;
    let survivor = members[0].m.clone();
    survivor.write(net("after-failover")).await.unwrap();
    eprintln!(
        "{engine}: leader kill -> next acknowledged write: {:?}",
        killed.elapsed()
    );
    for mem in &members {
        let m = mem.m.clone();
        wait_for(
            "every committed network on every survivor",
            Duration::from_secs(10),
            || m.store.read().networks.len() == 122,
        )
        .await;
    }

    // The old leader restarts from its directory (same raft id) and catches up.
    let l = TcpListener::bind(&old.addr).await.unwrap();
    let back = start(&old.dir, old.raft_id, l, engine).await;
    let bm = back.m.clone();
    wait_for(
        "restarted manager to catch up",
        Duration::from_secs(10),
        || bm.store.read().network("after-failover").is_ok(),
    )
    .await;
    assert_eq!(bm.store.read().networks.len(), 122);
    members.push(back);
    for mut mem in members {
        let _ = mem.stop.take().unwrap().send(());
        mem.m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_redb() {
    three_managers(EngineKind::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_sled() {
    three_managers(EngineKind::Sled).await;
}
