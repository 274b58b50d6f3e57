//! What the Control API tests share: one real manager serving gRPC on 127.0.0.1.

use shoal_manager::{Manager, ManagerConfig};
use shoal_proto::model::{Cluster, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A single-manager cluster in `dir`, leading and initialised, serving the Control API on a
/// free port of 127.0.0.1: the manager, its `http://` address, and the sender that stops the
/// server.
pub async fn manager(
    dir: &std::path::Path,
) -> (Arc<Manager>, String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut cfg = ManagerConfig::new("node1".into(), 1, addr.clone(), dir.to_path_buf());
    cfg.election_timeout = Duration::from_millis(150);
    cfg.raft_heartbeat = Duration::from_millis(40);
    let m = Manager::start(cfg).await.expect("manager starts");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let srv = m.clone();
    tokio::spawn(async move {
        let _ = shoal_manager::server::serve_tcp(srv, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    m.initialize().await.unwrap();
    let start = Instant::now();
    while !m.is_leader() {
        assert!(start.elapsed() < Duration::from_secs(10), "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    m.write(Command::InitCluster(Cluster {
        id: "c".into(),
        default_addr_pool: "10.0.0.0/8".into(),
        subnet_size: 24,
        ..Default::default()
    }))
    .await
    .unwrap();
    (m, format!("http://{addr}"), tx)
}
