//! `shoal-nodesim`: the measuring half of `bench/scale.sh`.
//!
//! The script starts and stops the three managers; this program simulates N worker nodes in one
//! process (see [`sim`]) and measures, phase by phase, printing one `RESULT phase=… k=v …` line
//! per phase on stdout and its progress on stderr:
//!
//! 1. `join`: N nodes join (bounded concurrency) and open their sessions; time until all joined,
//!    until all hold a session, until the managers list them all Ready.
//! 2. `rest`: bytes per second per session with nothing happening.
//! 3. `services`: S services of R replicas created back to back; time until every task is
//!    reported running and the report committed.
//! 4. `rest_tasks`: the same at rest with the tasks running.
//! 5. `failover` (with `--kill-leader`): kill -9 the raft leader; time until every node holds a
//!    session again and the managers list them all Ready; tasks rescheduled meanwhile.
//!
//! Each phase also gives the leader's CPU (average and peak over 1 s windows, % of one core) and
//! its peak RSS, from /proc. Everything is bounded: at most `--max-nodes` nodes, every wait has a
//! deadline and the whole run stops after `--duration`.

mod probe;
mod sim;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use probe::Probe;
use shoal_cli::client::{connect_with, ClientConfig};
use shoal_proto::pb::control_client::ControlClient;
use shoal_proto::pb::{self, NodeState};
use sim::{Shared, Stats};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(name = "shoal-nodesim")]
struct Args {
    /// Manager addresses (`ip:port`, comma-separated); nodes join through the first.
    #[arg(long, value_delimiter = ',', required = true)]
    managers: Vec<String>,
    /// Manager hostnames and pids (`m1=PID,…`), for the leader's CPU and RSS and the kill.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<String>,
    /// The worker join token.
    #[arg(long, env = "SWARM_TOKEN", hide_env_values = true)]
    token: String,
    /// Simulated nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Refuse more nodes than this.
    #[arg(long, default_value_t = 10_000)]
    max_nodes: usize,
    /// Joins under way at once.
    #[arg(long, default_value_t = 32)]
    join_concurrency: usize,
    /// Services to create.
    #[arg(long, default_value_t = 0)]
    services: usize,
    /// Replicas per service.
    #[arg(long, default_value_t = 0)]
    replicas: u64,
    /// Fraction of tasks reported failed instead of running.
    #[arg(long, default_value_t = 0.0)]
    fail_fraction: f64,
    /// Length of each at-rest measurement.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    rest: f64,
    /// Kill -9 the leader at the end and measure the reconnection.
    #[arg(long)]
    kill_leader: bool,
    /// Deadline of each phase.
    #[arg(long, default_value = "300", value_name = "SECONDS")]
    phase_max: u64,
    /// The whole run stops after this long.
    #[arg(long, default_value = "900", value_name = "SECONDS")]
    duration: u64,
    /// Where the nodes' certificates go.
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Ask for the network tables whole, as agents before table deltas did (a before/after
    /// comparison without another build: the managers' whole-table path is the old one).
    #[arg(long, env = "SIM_NO_TABLE_DELTAS")]
    no_table_deltas: bool,
    /// Attach the services to one overlay network of this subnet (e.g. 10.128.0.0/16), so that
    /// every node holds its balancer, DNS and peer tables and each task changes them.
    #[arg(long, env = "SIM_NETWORK_SUBNET")]
    network_subnet: Option<String>,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async move {
        let cap = Duration::from_secs(args.duration);
        tokio::select! {
            r = tokio::time::timeout(cap, run(args)) => match r {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => { eprintln!("nodesim: {e:#}"); 1 }
                Err(_) => { eprintln!("nodesim: --duration reached: stopping"); 2 }
            },
            _ = tokio::signal::ctrl_c() => { eprintln!("nodesim: interrupted"); 130 }
        }
    });
    // The nodes' tasks are dropped with the runtime; no need to wait for their connections.
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[nodesim {}] {}", chrono_now(), msg.as_ref());
}

fn chrono_now() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// Control client through manager `addr` (mutual TLS with SWARM_CERT_DIR, as bench/lib.sh sets).
async fn control(addr: &str) -> anyhow::Result<ControlClient<Channel>> {
    let cfg = ClientConfig {
        connect_timeout: Duration::from_secs(3),
        request_timeout: Some(Duration::from_secs(30)),
        cert_dir: std::env::var_os("SWARM_CERT_DIR").map(Into::into),
        plaintext: std::env::var("SWARM_PLAINTEXT").is_ok_and(|v| v == "1"),
        consistent: false,
    };
    connect_with(&format!("tcp://{addr}"), &cfg).await
}

/// The leader's hostname, as `addr` sees it.
async fn leader(addr: &str) -> anyhow::Result<String> {
    let mut c = control(addr).await?;
    let l = c.get_cluster(pb::Empty {}).await?.into_inner().raft_leader;
    if l.is_empty() {
        bail!("no leader known at {addr}");
    }
    Ok(l)
}

/// Worker nodes Ready, and all nodes, as `addr` sees them.
async fn ready_workers(addr: &str) -> anyhow::Result<(usize, usize)> {
    let mut c = control(addr).await?;
    let nodes = c.list_nodes(pb::Empty {}).await?.into_inner().nodes;
    let ready = nodes
        .iter()
        .filter(|n| n.role() == pb::NodeRole::Worker && n.state() == NodeState::Ready)
        .count();
    Ok((ready, nodes.len()))
}

/// Waits until `done()` with a deadline, logging `what` every 5 s.
async fn wait_for<F, Fut>(what: &str, max: Duration, mut done: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let t0 = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let (ok, view) = done().await;
        if ok {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > max {
            bail!("{what}: not done after {max:?}: {view}");
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            log(format!("{what}: {view}"));
            last_log = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes > args.max_nodes {
        bail!(
            "{} nodes: more than --max-nodes {}",
            args.nodes,
            args.max_nodes
        );
    }
    let pids: HashMap<String, i32> = args
        .pids
        .iter()
        .map(|p| {
            let (n, pid) = p
                .split_once('=')
                .ok_or_else(|| anyhow!("--pids {p:?}: NAME=PID"))?;
            Ok((n.to_string(), pid.parse().context("pid")?))
        })
        .collect::<anyhow::Result<_>>()?;
    let max = Duration::from_secs(args.phase_max);
    let first = args.managers[0].clone();
    let leader_pid = |name: &str| pids.get(name).copied();
    let lname = leader(&first).await?;
    let lpid = leader_pid(&lname).ok_or_else(|| anyhow!("no pid for leader {lname}"))?;
    log(format!("leader {lname} (pid {lpid}); {} nodes", args.nodes));
    std::fs::create_dir_all(&args.dir)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stats = Arc::new(Stats::default());
    let sh = Shared {
        managers: args.managers.clone(),
        token: args.token.clone(),
        dir: args.dir.clone(),
        fail_fraction: args.fail_fraction,
        table_deltas: !args.no_table_deltas,
        stats: stats.clone(),
        opens: Arc::new((0..args.nodes).map(|_| AtomicU64::new(0)).collect()),
        stop: stop_rx,
    };

    // ------------------------------------------------------------------------------ 1. join
    let probe = Probe::start(lpid);
    let t0 = Instant::now();
    let sem = Arc::new(Semaphore::new(args.join_concurrency.max(1)));
    let mut nodes = tokio::task::JoinSet::new();
    for i in 0..args.nodes {
        let (sh, sem) = (sh.clone(), sem.clone());
        nodes.spawn(async move {
            let Ok(permit) = sem.acquire_owned().await else {
                return;
            };
            let Some((id, transport)) = sim::join_node(&sh, i).await else {
                return;
            };
            drop(permit);
            sim::run_node(sh, i, id, transport).await;
        });
    }
    let n = args.nodes as u64;
    let joined = wait_for("join", max, || async {
        let j = stats.joined.load(Relaxed);
        (
            j >= n,
            format!(
                "{j}/{n} joined, {} join errors",
                stats.join_errors.load(Relaxed)
            ),
        )
    })
    .await?;
    log(format!("{n} joined in {}", secs(joined)));
    let sessions = wait_for("sessions", max, || async {
        let s = stats.sessions.load(Relaxed);
        (s >= n as i64, format!("{s}/{n} sessions"))
    })
    .await?;
    let ready = wait_for("ready", max, || async {
        match ready_workers(&first).await {
            Ok((r, all)) => (r >= args.nodes, format!("{r}/{n} Ready ({all} nodes)")),
            Err(e) => (false, format!("{e:#}")),
        }
    })
    .await?;
    let p = probe.stop().await;
    println!(
        "RESULT phase=join nodes={n} joined_s={} sessions_s={} ready_s={} join_errors={} {}",
        secs(joined),
        secs(sessions),
        secs(ready),
        stats.join_errors.load(Relaxed),
        p
    );

    // ------------------------------------------------------------------------------ 2. rest
    rest("rest", &stats, n, lpid, args.rest).await;

    // -------------------------------------------------------------------------- 3. services
    if args.services > 0 && args.replicas > 0 {
        let want = (args.services as u64 * args.replicas) as i64;
        let mut c = control(&first).await?;
        // Managers run no tasks here: only the simulated nodes do.
        for node in c.list_nodes(pb::Empty {}).await?.into_inner().nodes {
            if node.role() == pb::NodeRole::Manager {
                c.update_node(pb::UpdateNodeRequest {
                    id: node.id,
                    set_availability: true,
                    availability: pb::Availability::Drain as i32,
                    ..Default::default()
                })
                .await?;
            }
        }
        let networks = match &args.network_subnet {
            Some(subnet) => vec![sim_network(&mut c, subnet).await?],
            None => Vec::new(),
        };
        let probe = Probe::start(lpid);
        let base = stats.running.load(Relaxed);
        let bytes0 = stats.bytes_in.load(Relaxed);
        let t0 = Instant::now();
        for s in 0..args.services {
            let spec = pb::ServiceSpec {
                name: format!("sim{s:03}"),
                replicas: args.replicas,
                image: "sleep".into(),
                runtime: pb::Runtime::Process as i32,
                args: vec!["1000".into()],
                networks: networks.clone(),
                ..Default::default()
            };
            c.create_service(pb::CreateServiceRequest { spec: Some(spec) })
                .await?;
        }
        let created = t0.elapsed();
        let done = wait_for("services", max, || async {
            let r = stats.running.load(Relaxed) - base;
            (
                r >= want,
                format!(
                    "{r}/{want} running, {} failed, {} messages",
                    stats.failed.load(Relaxed),
                    stats.messages.load(Relaxed)
                ),
            )
        })
        .await?;
        // From the first create, not from the last.
        let _ = done;
        let done = t0.elapsed();
        let p = probe.stop().await;
        let per_s = want as f64 / done.as_secs_f64();
        let per_session = (stats.bytes_in.load(Relaxed) - bytes0) as f64 / n.max(1) as f64;
        println!(
            "RESULT phase=services services={} replicas={} tasks={want} created_s={} running_s={} tasks_per_s={per_s:.0} failed={} in_bytes_per_session={per_session:.0} table_deltas={} resyncs={} {}",
            args.services,
            args.replicas,
            secs(created),
            secs(done),
            stats.failed.load(Relaxed),
            !args.no_table_deltas,
            stats.resyncs.load(Relaxed),
            p
        );
        rest("rest_tasks", &stats, n, lpid, args.rest).await;
    }

    // -------------------------------------------------------------------------- 4. failover
    if args.kill_leader {
        let lname = leader(&first).await?;
        let lpid = leader_pid(&lname).ok_or_else(|| anyhow!("no pid for leader {lname}"))?;
        let survivor = args
            .managers
            .iter()
            .zip(["m1", "m2", "m3"])
            .find(|(_, name)| *name != lname)
            .map(|(a, _)| a.clone())
            .ok_or_else(|| anyhow!("no survivor"))?;
        let opens: Vec<u64> = sh.opens.iter().map(|o| o.load(Relaxed)).collect();
        let new_before = stats.new_tasks.load(Relaxed);
        let running_before = stats.running.load(Relaxed);
        log(format!("kill -9 leader {lname} (pid {lpid})"));
        // Both survivors are watched from the kill on: the new leader is known only later.
        let probes: Vec<(String, Probe)> = pids
            .iter()
            .filter(|(name, _)| **name != lname)
            .map(|(name, pid)| (name.clone(), Probe::start(*pid)))
            .collect();
        probe::kill9(lpid)?;
        let t0 = Instant::now();
        let reconnected = wait_for("reconnect", max, || async {
            let back = sh
                .opens
                .iter()
                .zip(&opens)
                .filter(|(o, before)| o.load(Relaxed) > **before)
                .count();
            (back >= args.nodes, format!("{back}/{n} reconnected"))
        })
        .await?;
        let new_leader = leader(&survivor).await.unwrap_or_default();
        let ready = wait_for("ready after failover", max, || async {
            match ready_workers(&survivor).await {
                Ok((r, all)) => (r >= args.nodes, format!("{r}/{n} Ready ({all} nodes)")),
                Err(e) => (false, format!("{e:#}")),
            }
        })
        .await?;
        let _ = ready;
        let ready = t0.elapsed();
        // Let anything that would be rescheduled show up before counting.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut p = None;
        for (name, probe) in probes {
            let seen = probe.stop().await;
            if name == new_leader {
                p = Some(seen);
            }
        }
        let p = p.unwrap_or_default();
        println!(
            "RESULT phase=failover old_leader={lname} new_leader={new_leader} reconnected_s={} ready_s={} rescheduled={} running_before={running_before} running_after={} {}",
            secs(reconnected),
            secs(ready),
            stats.new_tasks.load(Relaxed) - new_before,
            stats.running.load(Relaxed),
            p
        );
    }
    log(format!("done in {}", secs(t0.elapsed())));
    let _ = stop_tx.send(true);
    nodes.abort_all();
    Ok(())
}

/// Creates the overlay network `simnet` of `subnet` for the services (see `--network-subnet`).
async fn sim_network(
    c: &mut ControlClient<Channel>,
    subnet: &str,
) -> anyhow::Result<pb::NetworkAttachmentSpec> {
    let net = c
        .create_network(pb::CreateNetworkRequest {
            name: "simnet".into(),
            driver: pb::NetworkDriver::Overlay as i32,
            subnet: subnet.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(pb::NetworkAttachmentSpec {
        target: net.id,
        ..Default::default()
    })
}

/// Bytes and messages per session per second while nothing happens, for `secs` seconds.
async fn rest(phase: &str, stats: &Stats, n: u64, lpid: i32, secs_: f64) {
    let probe = Probe::start(lpid);
    let (i0, o0, m0, h0) = (
        stats.bytes_in.load(Relaxed),
        stats.bytes_out.load(Relaxed),
        stats.messages.load(Relaxed),
        stats.heartbeats.load(Relaxed),
    );
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs_)).await;
    let dt = t0.elapsed().as_secs_f64() * n.max(1) as f64;
    let p = probe.stop().await;
    println!(
        "RESULT phase={phase} in_bytes_per_s_per_session={:.1} out_bytes_per_s_per_session={:.1} messages_per_s_per_session={:.3} heartbeats_per_s={:.0} {}",
        (stats.bytes_in.load(Relaxed) - i0) as f64 / dt,
        (stats.bytes_out.load(Relaxed) - o0) as f64 / dt,
        (stats.messages.load(Relaxed) - m0) as f64 / dt,
        (stats.heartbeats.load(Relaxed) - h0) as f64 / t0.elapsed().as_secs_f64(),
        p
    );
}
