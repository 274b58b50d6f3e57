//! Security end to end: mutual TLS between real swarmd processes — who may call what, removed
//! nodes, certificate renewal before expiry, root CA rotation.

use shoal_proto::pb::raft_client::RaftClient;
use shoal_proto::pb::{self, control_client::ControlClient, dispatcher_client::DispatcherClient};
use shoal_security::{ca, Credentials, Transport};
use shoal_tests::{wait_for, Cluster, Timings};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn channel(t: &Transport, addr: &str) -> Channel {
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    t.lazy(ep)
}

fn node_creds(dir: &Path) -> Transport {
    Transport::Node(
        Credentials::load(dir)
            .expect("readable certificates")
            .expect("certificates present"),
    )
}

fn anonymous(certs: &Path) -> Transport {
    let roots = std::fs::read_to_string(certs.join("ca.crt")).expect("ca.crt");
    Transport::trusting(&roots).expect("roots")
}

/// Expects `r` to fail with `code` and a message containing `needle`.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>, code: Code, needle: &str) {
    match r {
        Ok(v) => panic!("{what}: should be refused, got {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{what}: {s:?}");
            assert!(s.message().contains(needle), "{what}: {:?}", s.message());
        }
    }
}

fn not_after(certs: &Path) -> i64 {
    let pem = std::fs::read_to_string(certs.join("node.crt")).expect("node.crt");
    ca::cert_info(&pem).expect("certificate").not_after
}

fn sessions(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("session established")
        .count()
}

#[test]
fn certificates_decide_who_may_call_what() {
    let t0 = Instant::now();
    let c = Cluster::start(1, 2);
    let (m, w1, w2) = (c.node(0), c.node(1), c.node(2));
    let tcp = format!("tcp://{}", m.addr);

    // Files: the key is for root only, the state dir too.
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [
        (w1.certs().join("node.key"), 0o600),
        (w1.certs(), 0o700),
        (m.dir.clone(), 0o700),
        (m.socket(), 0o600),
    ] {
        let got = std::fs::metadata(&p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(got, mode, "{}", p.display());
    }

    // swarmctl over TCP: a manager's certificate works, a worker's is refused, none is refused.
    assert_eq!(
        c.ctl_host(&tcp, &["node", "ls", "-q"])
            .stdout
            .lines()
            .count(),
        3
    );
    let w1_certs = w1.certs().display().to_string();
    let out = c.ctl_host(&tcp, &["--cert-dir", &w1_certs, "node", "ls"]);
    assert!(
        !out.success() && out.stderr.contains("worker certificate"),
        "{out}"
    );
    let empty = c.root().join("no-certificates");
    std::fs::create_dir_all(&empty).unwrap();
    let out = c.ctl_host(
        &tcp,
        &["--cert-dir", &empty.display().to_string(), "node", "ls"],
    );
    assert!(!out.success() && out.stderr.contains("mutual TLS"), "{out}");

    let w1_id = c.node_id(1);
    let w2_id = c.node_id(2);
    rt().block_on(async {
        let worker = channel(&node_creds(&w1.certs()), &m.addr);
        let anon = channel(&anonymous(&m.certs()), &m.addr);
        let raft = |ch: Channel| async move {
            RaftClient::new(ch)
                .vote(pb::RaftBytes {
                    data: b"{}".to_vec(),
                })
                .await
        };
        refused(
            "raft with a worker certificate",
            raft(worker.clone()).await,
            Code::PermissionDenied,
            "worker certificate",
        );
        refused(
            "raft without a certificate",
            raft(anon.clone()).await,
            Code::Unauthenticated,
            "certificate",
        );
        refused(
            "control with a worker certificate",
            ControlClient::new(worker.clone())
                .list_nodes(pb::Empty {})
                .await,
            Code::PermissionDenied,
            "worker certificate",
        );
        let session = |ch: Channel, id: String| async move {
            DispatcherClient::new(ch)
                .session(pb::SessionRequest {
                    node_id: id,
                    hostname: String::new(),
                    table_deltas: false,
                })
                .await
                .map(|_| ())
        };
        refused(
            "a session without a certificate",
            session(anon.clone(), w1_id.clone()).await,
            Code::Unauthenticated,
            "certificate",
        );
        let w2_ch = channel(&node_creds(&w2.certs()), &m.addr);
        refused(
            "a session for another node",
            session(w2_ch.clone(), w1_id.clone()).await,
            Code::PermissionDenied,
            "cannot act for",
        );
        // What a joining node may do without a certificate: fetch the root CA.
        let roots = DispatcherClient::new(anon)
            .get_root_ca(pb::Empty {})
            .await
            .expect("root CA without a certificate")
            .into_inner()
            .roots_pem;
        assert!(roots.contains("BEGIN CERTIFICATE"));
    });
    eprintln!(
        "[{:>5.1}s] calls checked against certificates",
        t0.elapsed().as_secs_f64()
    );

    // Remove worker2 while it runs: its session is cut and it cannot come back.
    c.ctl_ok(0, &["node", "rm", "--force", "worker2"]);
    wait_for(
        "worker2's removal to be final",
        Duration::from_secs(15),
        || {
            if c.node_ls(0).iter().any(|n| n.hostname == "worker2") {
                return Err("worker2 still listed".into());
            }
            let log = std::fs::read_to_string(w2.log_path()).unwrap_or_default();
            if !log.contains("was removed from the swarm") {
                return Err("worker2 has not logged its removal".into());
            }
            Ok(())
        },
    );
    rt().block_on(async {
        let w2_ch = channel(&node_creds(&w2.certs()), &m.addr);
        refused(
            "a removed node's session",
            DispatcherClient::new(w2_ch)
                .session(pb::SessionRequest {
                    node_id: w2_id.clone(),
                    hostname: String::new(),
                    table_deltas: false,
                })
                .await
                .map(|_| ()),
            Code::PermissionDenied,
            "was removed from the swarm",
        );
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!c.node_ls(0).iter().any(|n| n.hostname == "worker2"));
    eprintln!(
        "[{:>5.1}s] a removed node stays out",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn certificates_renew_before_they_expire() {
    let t0 = Instant::now();
    let c = Cluster::start_args(1, 1, Timings::default(), &["--cert-expiry", "12s"]);
    let (m, w) = (c.node(0), c.node(1));
    let first = (not_after(&m.certs()), not_after(&w.certs()));
    // Renewal at 50–80 % of 12 s: two renewals of each within ~20 s.
    let mut seen = vec![first];
    wait_for(
        "two renewals of each certificate",
        Duration::from_secs(40),
        || {
            let now = (not_after(&m.certs()), not_after(&w.certs()));
            if seen.last() != Some(&now) {
                seen.push(now);
            }
            let renewed = |k: fn(&(i64, i64)) -> i64| {
                let mut v: Vec<i64> = seen.iter().map(k).collect();
                v.dedup();
                v.len() - 1
            };
            if renewed(|p| p.0) >= 2 && renewed(|p| p.1) >= 2 {
                Ok(())
            } else {
                Err(format!("expiries seen so far: {seen:?}"))
            }
        },
    );
    eprintln!("[{:>5.1}s] renewed: {seen:?}", t0.elapsed().as_secs_f64());
    // Sessions were never dropped, the nodes never went down, and the managers know the new
    // expiry.
    assert_eq!(
        sessions(&w.log_path()),
        1,
        "the worker's session was re-established"
    );
    for n in c.node_ls(0) {
        assert_eq!(n.state, "ready", "{n:?}");
    }
    let v = c.ctl_json(0, &["node", "inspect", "worker1"]);
    let recorded = v[0]["certificate"]["not_after_ms"]
        .as_i64()
        .unwrap_or_default();
    assert!(
        (recorded / 1000 - not_after(&w.certs())).abs() <= 12,
        "recorded {recorded}, file {}",
        not_after(&w.certs())
    );
    // New connections use the renewed certificates on both ends.
    let tcp = format!("tcp://{}", m.addr);
    assert!(c.ctl_host(&tcp, &["node", "ls"]).success());
}

#[test]
fn root_ca_rotation_keeps_nodes_working() {
    let t0 = Instant::now();
    let mut c = Cluster::start(1, 1);
    let before = c.ctl_json(0, &["swarm", "inspect"]);
    let old_digest = before["ca"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let old_token = c
        .ctl_ok(0, &["swarm", "join-token", "worker", "-q"])
        .trim()
        .to_string();
    let out = c.ctl_ok(0, &["swarm", "ca", "--rotate"]);
    assert!(out.contains("Root CA rotated"), "{out}");
    let v = wait_for("the rotation to complete", Duration::from_secs(30), || {
        let v = c.ctl_json(0, &["swarm", "inspect"]);
        if v["ca"]["rotating"].as_bool() == Some(false) {
            Ok(v)
        } else {
            Err(format!("{}", v["ca"]))
        }
    });
    let new_digest = v["ca"]["digest"].as_str().unwrap_or_default().to_string();
    assert_ne!(new_digest, old_digest);
    eprintln!("[{:>5.1}s] rotation complete", t0.elapsed().as_secs_f64());
    // Every node trusts only the new root now, and its certificate chains to it.
    for i in 0..2 {
        let certs = c.node(i).certs();
        wait_for(
            "the node to trust only the new root",
            Duration::from_secs(10),
            || {
                let roots = std::fs::read_to_string(certs.join("ca.crt")).unwrap_or_default();
                if roots.matches("BEGIN CERTIFICATE").count() == 1 {
                    Ok(())
                } else {
                    Err(roots)
                }
            },
        );
        let t = node_creds(&certs);
        let digests = t.credentials().expect("creds").current().root_digests();
        assert_eq!(digests, vec![new_digest.clone()]);
    }
    assert_eq!(
        sessions(&c.node(1).log_path()),
        1,
        "the worker's session was re-established"
    );
    for n in c.node_ls(0) {
        assert_eq!(n.state, "ready", "{n:?}");
    }
    // Tokens carry the new digest: the old one is refused, the new one joins.
    let token = c
        .ctl_ok(0, &["swarm", "join-token", "worker", "-q"])
        .trim()
        .to_string();
    assert!(token.contains(&new_digest), "{token}");
    let (out, _) = c.swarmd_once(
        "old-token",
        &["--join", &c.node(0).addr.clone(), "--token", &old_token],
        Duration::from_secs(20),
    );
    assert!(
        !out.success()
            && out
                .stderr
                .contains("does not hold the root CA named by the token"),
        "{out}"
    );
    c.join("worker2", false, &token);
    // And a manager's TCP API is reachable with its renewed certificate.
    let tcp = format!("tcp://{}", c.node(0).addr);
    assert!(c.ctl_host(&tcp, &["node", "ls"]).success());
}
