//! `shoal-loadgen`: the measuring half of `bench/control-plane.sh`.
//!
//! The script starts and stops the processes (swarmd, etcd); this program talks to them and
//! measures. Every subcommand prints one `RESULT key=value ...` line on stdout (easy to read from
//! bash) and its progress on stderr. Every loop is bounded by a count and a deadline.
//!
//! * `write`: N concurrent clients, each one connection, each writing back-to-back for a fixed
//!   time: Shoal `UpdateService` (a label on the client's own 0-replica service) or etcd `Put`
//!   (the client's own key). Throughput and latency percentiles after a warm-up.
//! * `failover`: kill -9 the raft leader, time until a write through a survivor is acknowledged.
//! * `replace`: kill -9 a worker, time until its node is DOWN and its task runs elsewhere.
//! * `converge`: create a service with K replicas, time until K tasks are RUNNING.
//! * `pull`: pulls an image into an empty image store with `shoal_image` (what a node does
//!   before its first task of that image: manifest, config, layers verified, root unpacked).
//! * helpers: `ports`, `token`, `wait-healthy`, `rm-service`.

mod etcd;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use shoal_cli::client::{connect_with, ClientConfig};
use shoal_proto::pb::control_client::ControlClient;
use shoal_proto::pb::{self, NodeState, TaskState};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(name = "shoal-loadgen")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum System {
    Shoal,
    Etcd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// Every client connects to the current raft leader.
    Leader,
    /// Client i connects to member i mod 3 (followers forward to the leader).
    All,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Prints N free TCP ports on 127.0.0.1 (space separated).
    Ports { n: usize },
    /// Prints the worker or manager join token.
    Token {
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value = "worker")]
        role: String,
    },
    /// Waits until the cluster seen through ENDPOINT has NODES nodes, all READY, one leader and
    /// every other manager reachable. Prints the time it took.
    WaitHealthy {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        nodes: usize,
        #[arg(long, default_value = "60", value_name = "SECONDS")]
        timeout: u64,
    },
    /// Concurrent write benchmark.
    Write {
        #[arg(long, value_enum)]
        system: System,
        /// Comma-separated member URLs (shoal: tcp://IP:PORT, etcd: http://IP:PORT).
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        #[arg(long, value_enum, default_value = "leader")]
        target: Target,
        #[arg(long)]
        clients: usize,
        #[arg(long, default_value = "10", value_name = "SECONDS")]
        duration: f64,
        #[arg(long, default_value = "2", value_name = "SECONDS")]
        warmup: f64,
        /// etcd value size in bytes.
        #[arg(long, default_value_t = 256)]
        value_size: usize,
        /// Server pids whose CPU time is sampled over the measured window (comma-separated).
        #[arg(long, value_delimiter = ',')]
        server_pids: Vec<i32>,
    },
    /// kill -9 the leader, then time until a write through a survivor is acknowledged.
    Failover {
        #[arg(long, value_enum)]
        system: System,
        /// Comma-separated NAME=URL (shoal NAME = node hostname; etcd NAME = member name).
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        /// Comma-separated NAME=PID.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<String>,
        /// Per-request timeout of the writer (ms).
        #[arg(long, default_value_t = 500)]
        request_timeout_ms: u64,
        /// Give up after this long.
        #[arg(long, default_value = "60", value_name = "SECONDS")]
        max: u64,
        /// Tag for probe names.
        #[arg(long, default_value = "0")]
        run: String,
    },
    /// kill -9 a worker's swarmd, then time until it is DOWN and its tasks run elsewhere.
    Replace {
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value = "web")]
        service: String,
        #[arg(long, default_value_t = 5)]
        replicas: u64,
        /// Hostname of the worker to kill.
        #[arg(long)]
        victim: String,
        #[arg(long)]
        pid: i32,
        /// `kill` = SIGKILL (the kernel closes its connections); `stop` = SIGSTOP (the node
        /// goes silent with its connections open, like a hung or partitioned host).
        #[arg(long, default_value = "kill")]
        signal: String,
        #[arg(long, default_value = "60", value_name = "SECONDS")]
        max: u64,
    },
    /// Creates a service with REPLICAS tasks and times until they are all RUNNING; removes it.
    Converge {
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value = "conv")]
        name: String,
        #[arg(long, default_value_t = 50)]
        replicas: u64,
        #[arg(long, default_value = "60", value_name = "SECONDS")]
        max: u64,
    },
    /// Pulls IMAGE into the image store at STORE (which must not exist yet: a cold pull) over
    /// plain HTTP from the registries in --insecure-registry; prints the time it took.
    Pull {
        #[arg(long)]
        store: std::path::PathBuf,
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        image: String,
    },
    /// Removes a service and waits until none of its tasks is running.
    RmService {
        #[arg(long)]
        endpoint: String,
        name: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli.cmd)) {
        eprintln!("shoal-loadgen: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Ports { n } => {
            let ls: Vec<std::net::TcpListener> =
                (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
            let ports: Vec<String> = ls.iter().map(|l| l.local_addr().map(|a| a.port().to_string())).collect::<Result<_, _>>()?;
            println!("{}", ports.join(" "));
            Ok(())
        }
        Cmd::Token { endpoint, role } => {
            let role = match role.as_str() {
                "worker" => pb::NodeRole::Worker,
                "manager" => pb::NodeRole::Manager,
                r => bail!("role {r:?}: expected worker or manager"),
            };
            let mut c = shoal(&endpoint, Duration::from_secs(5)).await?;
            let r = c.get_join_token(pb::JoinTokenRequest { role: role as i32, rotate: false }).await?;
            println!("{}", r.into_inner().token);
            Ok(())
        }
        Cmd::WaitHealthy { endpoint, nodes, timeout } => wait_healthy(&endpoint, nodes, timeout).await,
        Cmd::Write { system, endpoints, target, clients, duration, warmup, value_size, server_pids } => {
            write_bench(system, endpoints, target, clients, duration, warmup, value_size, server_pids).await
        }
        Cmd::Failover { system, members, pids, request_timeout_ms, max, run } => {
            failover(system, members, pids, Duration::from_millis(request_timeout_ms), max, &run).await
        }
        Cmd::Replace { endpoint, service, replicas, victim, pid, signal, max } => {
            let sig = match signal.as_str() {
                "kill" => libc::SIGKILL,
                "stop" => libc::SIGSTOP,
                s => bail!("--signal {s}: expected kill or stop"),
            };
            replace(&endpoint, &service, replicas, &victim, pid, sig, max).await
        }
        Cmd::Converge { endpoint, name, replicas, max } => converge(&endpoint, &name, replicas, max).await,
        Cmd::Pull { store, insecure, image } => pull(&store, insecure, &image).await,
        Cmd::RmService { endpoint, name } => {
            let mut c = shoal(&endpoint, Duration::from_secs(10)).await?;
            rm_service(&mut c, &name, 60).await
        }
    }
}

// ------------------------------------------------------------------------------------ helpers

async fn shoal(url: &str, timeout: Duration) -> anyhow::Result<ControlClient<Channel>> {
    // Managers speak mutual TLS: bench/lib.sh points SWARM_CERT_DIR at a manager's certificates
    // (or sets SWARM_PLAINTEXT=1 for an --insecure-plaintext cluster).
    let cfg = ClientConfig {
        connect_timeout: Duration::from_secs(3),
        request_timeout: Some(timeout),
        cert_dir: std::env::var_os("SWARM_CERT_DIR").map(Into::into),
        plaintext: std::env::var("SWARM_PLAINTEXT").is_ok_and(|v| v == "1"),
    };
    connect_with(url, &cfg).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `NAME=VALUE` pairs, in order.
fn pairs(items: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| s.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| anyhow!("{what} {s:?}: expected NAME=VALUE")))
        .collect()
}

fn kill9(pid: i32) -> anyhow::Result<()> {
    signal(pid, libc::SIGKILL)
}

#[allow(unsafe_code)]
fn signal(pid: i32, sig: i32) -> anyhow::Result<()> {
    if pid <= 1 {
        bail!("refusing to signal pid {pid}");
    }
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is one the script started.
    let r = unsafe { libc::kill(pid, sig) };
    if r != 0 {
        bail!("kill -{sig} {pid}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The Shoal leader's hostname and its `tcp://` control endpoint, as seen through `url`.
async fn shoal_leader(url: &str) -> anyhow::Result<(String, String)> {
    let mut c = shoal(url, Duration::from_secs(3)).await?;
    let cluster = c.get_cluster(pb::Empty {}).await?.into_inner();
    if cluster.raft_leader.is_empty() {
        bail!("no raft leader known at {url}");
    }
    let nodes = c.list_nodes(pb::Empty {}).await?.into_inner().nodes;
    let n = nodes
        .iter()
        .find(|n| n.hostname == cluster.raft_leader)
        .ok_or_else(|| anyhow!("leader {} is not in the node list", cluster.raft_leader))?;
    Ok((cluster.raft_leader.clone(), format!("tcp://{}", n.addr)))
}

/// The URL of the etcd member that is the leader.
async fn etcd_leader(urls: &[String]) -> anyhow::Result<String> {
    let mut ids = Vec::new();
    let mut leader = 0;
    for u in urls {
        let (me, l) = etcd::member_and_leader(u, Duration::from_secs(3)).await?;
        ids.push((me, u.clone()));
        if l != 0 {
            leader = l;
        }
    }
    ids.into_iter().find(|(id, _)| *id == leader).map(|(_, u)| u).ok_or_else(|| anyhow!("no etcd leader among {urls:?}"))
}

async fn wait_healthy(endpoint: &str, want: usize, timeout: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(timeout);
    let mut last = String::from("no answer yet");
    for _ in 0..100_000 {
        if Instant::now() > deadline {
            break;
        }
        match healthy_view(endpoint, want).await {
            Ok((true, _)) => {
                println!("RESULT healthy_ms={:.0}", ms(start.elapsed()));
                return Ok(());
            }
            Ok((false, v)) => last = v,
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("cluster at {endpoint} not healthy after {timeout} s: {last}")
}

async fn healthy_view(endpoint: &str, expected: usize) -> anyhow::Result<(bool, String)> {
    let mut c = shoal(endpoint, Duration::from_secs(2)).await?;
    let nodes = c.list_nodes(pb::Empty {}).await?.into_inner().nodes;
    let view: Vec<String> =
        nodes.iter().map(|n| format!("{}:{:?}:{}", n.hostname, n.state(), n.manager_status)).collect();
    let leaders = nodes.iter().filter(|n| n.manager_status == "Leader").count();
    let managers = nodes.iter().filter(|n| n.role() == pb::NodeRole::Manager).count();
    let reachable = nodes.iter().filter(|n| n.manager_status == "Reachable").count();
    let ready = nodes.iter().all(|n| n.state() == NodeState::Ready);
    let ok = nodes.len() == expected && ready && leaders == 1 && reachable + 1 == managers;
    Ok((ok, view.join(" ")))
}

// ------------------------------------------------------------------------------ write bench

#[derive(Default)]
struct ClientStats {
    lat_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

#[allow(clippy::too_many_arguments)]
async fn write_bench(
    system: System,
    endpoints: Vec<String>,
    target: Target,
    clients: usize,
    duration: f64,
    warmup: f64,
    value_size: usize,
    server_pids: Vec<i32>,
) -> anyhow::Result<()> {
    if endpoints.is_empty() || clients == 0 {
        bail!("need endpoints and at least one client");
    }
    let timeout = Duration::from_secs(10);
    let urls: Vec<String> = match target {
        Target::Leader => vec![match system {
            System::Shoal => shoal_leader(&endpoints[0]).await?.1,
            System::Etcd => etcd_leader(&endpoints).await?,
        }],
        Target::All => endpoints.clone(),
    };
    eprintln!("write: {system:?}, {clients} clients over {urls:?}, warm-up {warmup} s, measured {duration} s");

    // Setup: one connection per client (and for Shoal one 0-replica service per client).
    let mut conns: Vec<Conn> = Vec::with_capacity(clients);
    let req_bytes;
    match system {
        System::Shoal => {
            let mut admin = shoal(&endpoints[0], timeout).await?;
            let existing: HashMap<String, pb::Service> = admin
                .list_services(pb::Empty {})
                .await?
                .into_inner()
                .services
                .into_iter()
                .filter_map(|s| s.spec.as_ref().map(|sp| (sp.name.clone(), s.clone())))
                .collect();
            let mut svcs = Vec::new();
            for i in 0..clients {
                let name = format!("bench-{i:03}");
                let svc = match existing.get(&name) {
                    Some(s) => s.clone(),
                    None => {
                        let spec = pb::ServiceSpec {
                            name: name.clone(),
                            replicas: 0,
                            image: "sleep".into(),
                            runtime: pb::Runtime::Process as i32,
                            args: vec!["1000".into()],
                            ..Default::default()
                        };
                        admin.create_service(pb::CreateServiceRequest { spec: Some(spec) }).await?.into_inner()
                    }
                };
                svcs.push(svc);
            }
            let sample = pb::UpdateServiceRequest {
                id: svcs[0].id.clone(),
                spec: svcs[0].spec.clone(),
                version: svcs[0].version,
                rollback: false,
                skip_unchanged: false,
            };
            req_bytes = prost::Message::encoded_len(&sample);
            // Let the creations reach the followers before anyone reads them there.
            tokio::time::sleep(Duration::from_millis(300)).await;
            for (i, svc) in svcs.into_iter().enumerate() {
                let c = shoal(&urls[i % urls.len()], timeout).await?;
                conns.push(Conn::Shoal(c, svc.id.clone(), svc.spec.unwrap_or_default(), svc.version));
            }
        }
        System::Etcd => {
            let value = vec![b'x'; value_size];
            req_bytes = prost::Message::encoded_len(&etcd::PutRequest { key: b"bench/000".to_vec(), value: value.clone() });
            for i in 0..clients {
                let c = etcd::Client::connect(&urls[i % urls.len()], timeout).await?;
                conns.push(Conn::Etcd(c, format!("bench/{i:03}").into_bytes(), value.clone()));
            }
        }
    }

    let begin = Instant::now() + Duration::from_millis(200);
    let measure_from = begin + Duration::from_secs_f64(warmup);
    let end = measure_from + Duration::from_secs_f64(duration);
    let mut tasks = Vec::new();
    for mut conn in conns {
        tasks.push(tokio::spawn(async move {
            let mut st = ClientStats::default();
            tokio::time::sleep_until(begin.into()).await;
            for n in 0u64..u64::MAX {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let r = conn.write(n).await;
                let dt = now.elapsed();
                // Counted: requests issued in the measured window and answered before its end.
                if now >= measure_from && now + dt <= end {
                    match r {
                        Ok(()) => st.lat_us.push(dt.as_micros().min(u32::MAX as u128) as u32),
                        Err(e) => *st.errors.entry(e).or_default() += 1,
                    }
                }
            }
            st
        }));
    }
    // CPU time of the servers and of this process, and the raft log index, over the measured
    // window (the index tells how many log entries the writes cost).
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu0 = (cpu_ticks(&server_pids), self_cpu(), machine_busy_ticks());
    let idx0 = log_index(system, &urls[0]).await;
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = (cpu_ticks(&server_pids), self_cpu(), machine_busy_ticks());
    let idx1 = log_index(system, &urls[0]).await;
    let entries = match (idx0, idx1) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64,
        _ => f64::NAN,
    };
    let server_cpu = (cpu1.0 - cpu0.0) as f64 / clock_ticks();
    let self_cpu_s = cpu1.1 - cpu0.1;
    // Everything else running on the machine meanwhile (other engineers' builds and tests).
    let machine_cpu = (cpu1.2 - cpu0.2) as f64 / clock_ticks();
    let other_cpu = (machine_cpu - server_cpu - self_cpu_s).max(0.0);
    finish(system, target, clients, duration, tasks, req_bytes, server_cpu, self_cpu_s, entries, other_cpu).await
}

/// The last applied (Shoal) or committed (etcd) raft index at the member `url`.
async fn log_index(system: System, url: &str) -> Option<u64> {
    match system {
        System::Shoal => {
            let mut c = shoal(url, Duration::from_secs(2)).await.ok()?;
            Some(c.get_cluster(pb::Empty {}).await.ok()?.into_inner().raft_last_applied)
        }
        System::Etcd => {
            let mut c = etcd::Client::connect(url, Duration::from_secs(2)).await.ok()?;
            Some(c.status().await.ok()?.raft_index)
        }
    }
}

/// utime + stime of `pids` in clock ticks (0 for pids that are gone).
fn cpu_ticks(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

#[allow(unsafe_code)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Busy clock ticks of the whole machine so far (all CPUs; /proc/stat minus idle and iowait).
fn machine_busy_ticks() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else { return 0 };
    let Some(line) = s.lines().next() else { return 0 };
    let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let total: u64 = f.iter().take(8).sum();
    total.saturating_sub(f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0))
}

/// CPU seconds (user + system) used by this process so far.
#[allow(unsafe_code)]
fn self_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct we pass; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if r != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One benchmark client: its connection and what it writes.
enum Conn {
    /// Service id, spec and version: each write sets label `bench=<n>`, naming the version the
    /// previous write returned (an update must name the version it read).
    Shoal(ControlClient<Channel>, String, pb::ServiceSpec, u64),
    /// Key and value: each write puts the key with `<n>` stamped into the value.
    Etcd(etcd::Client, Vec<u8>, Vec<u8>),
}

impl Conn {
    async fn write(&mut self, n: u64) -> Result<(), String> {
        let code = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
        match self {
            Conn::Shoal(c, id, spec, version) => {
                let mut s = spec.clone();
                s.labels.insert("bench".into(), n.to_string());
                let req = pb::UpdateServiceRequest { id: id.clone(), spec: Some(s), version: *version, rollback: false, skip_unchanged: false };
                let svc = c.update_service(req).await.map_err(code)?.into_inner();
                *version = svc.version;
                Ok(())
            }
            Conn::Etcd(c, key, value) => {
                let mut v = value.clone();
                let tag = n.to_string();
                let l = tag.len().min(v.len());
                v[..l].copy_from_slice(&tag.as_bytes()[..l]);
                c.put(key.clone(), v).await.map(|_| ()).map_err(code)
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    system: System,
    target: Target,
    clients: usize,
    duration: f64,
    tasks: Vec<tokio::task::JoinHandle<ClientStats>>,
    req_bytes: usize,
    server_cpu: f64,
    self_cpu: f64,
    entries: f64,
    other_cpu: f64,
) -> anyhow::Result<()> {
    let mut lat: Vec<u32> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let st = t.await?;
        lat.extend(st.lat_us);
        for (k, v) in st.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (lat.len() as f64 - 1.0)).round() as usize;
        lat[i.min(lat.len() - 1)] as f64 / 1e3
    };
    let n = lat.len();
    let mean = if n == 0 { f64::NAN } else { lat.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1e3 };
    let nerr: u64 = errors.values().sum();
    for (k, v) in &errors {
        eprintln!("  error x{v}: {k}");
    }
    println!(
        "RESULT system={} target={} clients={} ops={} errors={} rate={:.1} p50_ms={:.3} p99_ms={:.3} mean_ms={:.3} max_ms={:.3} req_bytes={} server_cpu_pct={:.0} loadgen_cpu_pct={:.0} server_cpu_us_per_write={:.0} log_entries_per_write={:.2} other_cpu_pct={:.0}",
        format!("{system:?}").to_lowercase(),
        format!("{target:?}").to_lowercase(),
        clients,
        n,
        nerr,
        n as f64 / duration,
        pct(50.0),
        pct(99.0),
        mean,
        pct(100.0),
        req_bytes,
        server_cpu / duration * 100.0,
        self_cpu / duration * 100.0,
        if n == 0 { f64::NAN } else { server_cpu * 1e6 / n as f64 },
        entries / n as f64,
        other_cpu / duration * 100.0,
    );
    Ok(())
}

// --------------------------------------------------------------------------------- failover

async fn failover(
    system: System,
    members: Vec<String>,
    pids: Vec<String>,
    req_timeout: Duration,
    max: u64,
    run: &str,
) -> anyhow::Result<()> {
    let members = pairs(&members, "--members")?;
    let pids: HashMap<String, i32> = pairs(&pids, "--pids")?
        .into_iter()
        .map(|(n, p)| p.parse::<i32>().map(|p| (n, p)).context("pid"))
        .collect::<Result<_, _>>()?;
    let urls: Vec<String> = members.iter().map(|(_, u)| u.clone()).collect();
    // Who leads now?
    let leader = match system {
        System::Shoal => shoal_leader(&urls[0]).await?.0,
        System::Etcd => {
            let u = etcd_leader(&urls).await?;
            members.iter().find(|(_, x)| *x == u).map(|(n, _)| n.clone()).unwrap_or_default()
        }
    };
    let pid = *pids.get(&leader).ok_or_else(|| anyhow!("no pid given for the leader {leader}"))?;
    let (survivor, surl) = members.iter().find(|(n, _)| *n != leader).cloned().ok_or_else(|| anyhow!("no survivor"))?;
    eprintln!("failover {run}: leader {leader} (pid {pid}); writing through {survivor}");

    // Warm-up writes through the survivor: the path works and its connection is open.
    let mut writer = Writer::new(system, &surl, req_timeout).await?;
    let mut warm = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        writer.write(&format!("probe-{run}-w{i}")).await.map_err(|e| anyhow!("warm-up write failed: {e}"))?;
        warm.push(ms(t.elapsed()));
    }

    // The watcher polls the survivor for a new leader; the writer writes back to back.
    let old = leader.clone();
    let (wsys, wurl, wurls, wmembers) = (system, surl.clone(), urls.clone(), members.clone());
    let t0 = Instant::now();
    kill9(pid)?;
    let watcher = tokio::spawn(async move {
        let deadline = t0 + Duration::from_secs(max);
        while Instant::now() < deadline {
            let seen = match wsys {
                System::Shoal => match shoal(&wurl, Duration::from_millis(200)).await {
                    Ok(mut c) => c.get_cluster(pb::Empty {}).await.ok().map(|r| r.into_inner().raft_leader),
                    Err(_) => None,
                },
                System::Etcd => {
                    let alive: Vec<String> =
                        wurls.iter().filter(|u| wmembers.iter().any(|(n, x)| x == *u && *n != old)).cloned().collect();
                    match tokio::time::timeout(Duration::from_millis(300), etcd_leader(&alive)).await {
                        Ok(Ok(u)) => wmembers.iter().find(|(_, x)| *x == u).map(|(n, _)| n.clone()),
                        _ => None,
                    }
                }
            };
            if let Some(l) = seen {
                if !l.is_empty() && l != old {
                    return Some((t0.elapsed(), l));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    });
    let deadline = t0 + Duration::from_secs(max);
    let mut attempts = 0u64;
    let mut last_err = String::new();
    let mut gap = None;
    while Instant::now() < deadline && attempts < 100_000 {
        attempts += 1;
        match writer.write(&format!("probe-{run}-{attempts}")).await {
            Ok(()) => {
                gap = Some(t0.elapsed());
                break;
            }
            Err(e) => {
                last_err = e;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let Some(gap) = gap else { bail!("no write acknowledged {max} s after the kill ({attempts} attempts; last error: {last_err})") };
    let elected = watcher.await?;
    let (lms, newl) = elected.map(|(d, l)| (format!("{:.0}", ms(d)), l)).unwrap_or(("nan".into(), "?".into()));
    warm.sort_by(f64::total_cmp);
    println!(
        "RESULT system={} old_leader={leader} new_leader={newl} gap_ms={:.0} leader_ms={lms} attempts={attempts} warm_write_ms={:.2} last_error={:?}",
        format!("{system:?}").to_lowercase(),
        ms(gap),
        warm[warm.len() / 2],
        last_err
    );
    Ok(())
}

/// One writer used by `failover`: Shoal creates a 0-replica service per write (like the Swarm
/// anchor's `service create`), etcd puts a key.
enum Writer {
    Shoal(ControlClient<Channel>, Duration),
    Etcd(etcd::Client),
}

impl Writer {
    async fn new(system: System, url: &str, timeout: Duration) -> anyhow::Result<Writer> {
        Ok(match system {
            System::Shoal => Writer::Shoal(shoal(url, Duration::from_secs(30)).await?, timeout),
            System::Etcd => Writer::Etcd(etcd::Client::connect(url, timeout).await?),
        })
    }

    async fn write(&mut self, name: &str) -> Result<(), String> {
        match self {
            Writer::Shoal(c, timeout) => {
                let spec = pb::ServiceSpec {
                    name: name.to_string(),
                    replicas: 0,
                    image: "sleep".into(),
                            runtime: pb::Runtime::Process as i32,
                    args: vec!["1000".into()],
                    ..Default::default()
                };
                let mut req = tonic::Request::new(pb::CreateServiceRequest { spec: Some(spec) });
                req.set_timeout(*timeout);
                c.create_service(req).await.map(|_| ()).map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            }
            Writer::Etcd(c) => c
                .put(format!("probe/{name}").into_bytes(), vec![b'x'; 64])
                .await
                .map(|_| ())
                .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
        }
    }
}

// ------------------------------------------------------------------------ worker replacement

async fn node_ids(c: &mut ControlClient<Channel>) -> anyhow::Result<HashMap<String, pb::Node>> {
    Ok(c.list_nodes(pb::Empty {}).await?.into_inner().nodes.into_iter().map(|n| (n.id.clone(), n)).collect())
}

/// Tasks of `service` that should run and do, as (node id, task id).
async fn running(c: &mut ControlClient<Channel>, service: &str) -> anyhow::Result<Vec<(String, String)>> {
    let tasks = c
        .list_tasks(pb::TaskFilter { service: service.to_string(), node: String::new(), all: false, up_to_date: false })
        .await?
        .into_inner()
        .tasks;
    Ok(tasks
        .into_iter()
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .filter(|t| t.status.as_ref().is_some_and(|s| s.state == TaskState::Running as i32))
        .map(|t| (t.node_id, t.id))
        .collect())
}

async fn replace(endpoint: &str, service: &str, replicas: u64, victim: &str, pid: i32, sig: i32, max: u64) -> anyhow::Result<()> {
    let mut c = shoal(endpoint, Duration::from_secs(3)).await?;
    let nodes = node_ids(&mut c).await?;
    let victim_id = nodes.values().find(|n| n.hostname == victim).map(|n| n.id.clone()).ok_or_else(|| anyhow!("no node {victim}"))?;
    let exists = c.get_service(pb::IdRequest { id: service.to_string() }).await.is_ok();
    if !exists {
        let spec = pb::ServiceSpec {
            name: service.to_string(),
            replicas,
            image: "sleep".into(),
                            runtime: pb::Runtime::Process as i32,
            args: vec!["1000".into()],
            ..Default::default()
        };
        c.create_service(pb::CreateServiceRequest { spec: Some(spec) }).await?;
    }
    // All replicas running, one of them on the victim.
    let start = Instant::now();
    loop {
        let r = running(&mut c, service).await?;
        if r.len() as u64 >= replicas && r.iter().any(|(n, _)| *n == victim_id) {
            let mut per: BTreeMap<String, usize> = BTreeMap::new();
            for (n, _) in &r {
                *per.entry(nodes.get(n).map(|x| x.hostname.clone()).unwrap_or_else(|| n.clone())).or_default() += 1;
            }
            eprintln!("replace: {service} {}/{replicas} running: {per:?}", r.len());
            break;
        }
        if start.elapsed() > Duration::from_secs(max) {
            bail!("{service}: not {replicas} running with one on {victim} after {max} s ({} running)", r.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t0 = Instant::now();
    signal(pid, sig)?;
    let deadline = t0 + Duration::from_secs(max);
    let (mut down, mut repl) = (None, None);
    let mut polls = 0u64;
    while Instant::now() < deadline && polls < 1_000_000 {
        polls += 1;
        if down.is_none() {
            if let Ok(n) = c.get_node(pb::IdRequest { id: victim_id.clone() }).await {
                if n.into_inner().state() == NodeState::Down {
                    down = Some(t0.elapsed());
                }
            }
        }
        if let Ok(r) = running(&mut c, service).await {
            if r.iter().filter(|(n, _)| *n != victim_id).count() as u64 >= replicas {
                repl = Some(t0.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let repl = repl.ok_or_else(|| anyhow!("{service}: the tasks of {victim} were not replaced within {max} s"))?;
    let down = down.map(|d| format!("{:.0}", ms(d))).unwrap_or_else(|| "nan".into());
    println!("RESULT down_ms={down} replaced_ms={:.0} polls={polls}", ms(repl));
    Ok(())
}

// ---------------------------------------------------------------------------------- converge

async fn converge(endpoint: &str, name: &str, replicas: u64, max: u64) -> anyhow::Result<()> {
    let mut c = shoal(endpoint, Duration::from_secs(10)).await?;
    if c.get_service(pb::IdRequest { id: name.to_string() }).await.is_ok() {
        rm_service(&mut c, name, max).await?;
    }
    let spec = pb::ServiceSpec {
        name: name.to_string(),
        replicas,
        image: "sleep".into(),
                            runtime: pb::Runtime::Process as i32,
        args: vec!["1000".into()],
        ..Default::default()
    };
    let t0 = Instant::now();
    c.create_service(pb::CreateServiceRequest { spec: Some(spec) }).await?;
    let ack = t0.elapsed();
    let deadline = t0 + Duration::from_secs(max);
    let mut done = None;
    let mut n = 0;
    for _ in 0..1_000_000 {
        if Instant::now() > deadline {
            break;
        }
        if let Ok(r) = running(&mut c, name).await {
            n = r.len();
            if n as u64 >= replicas {
                done = Some(t0.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = done.ok_or_else(|| anyhow!("{name}: {n}/{replicas} running after {max} s"))?;
    let nodes = node_ids(&mut c).await?;
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for (node, _) in running(&mut c, name).await? {
        *per.entry(nodes.get(&node).map(|x| x.hostname.clone()).unwrap_or(node)).or_default() += 1;
    }
    eprintln!("converge: {replicas} running, per node {per:?}");
    rm_service(&mut c, name, max).await?;
    println!("RESULT ack_ms={:.0} running_ms={:.0}", ms(ack), ms(done));
    Ok(())
}

async fn rm_service(c: &mut ControlClient<Channel>, name: &str, max: u64) -> anyhow::Result<()> {
    let svc = c.get_service(pb::IdRequest { id: name.to_string() }).await?.into_inner();
    c.remove_service(pb::IdRequest { id: svc.id.clone() }).await?;
    let deadline = Instant::now() + Duration::from_secs(max);
    while Instant::now() < deadline {
        let tasks = c.list_tasks(pb::TaskFilter::default()).await?.into_inner().tasks;
        let left = tasks
            .iter()
            .filter(|t| t.service_id == svc.id)
            .filter(|t| t.status.as_ref().is_some_and(|s| s.state <= TaskState::Running as i32))
            .count();
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("tasks of {name} still running {max} s after its removal")
}

/// `pull`: one cold pull with the node's image code (`Store::pull`), timed from the client's
/// creation to the unpacked root.
async fn pull(dir: &std::path::Path, insecure: Vec<String>, image: &str) -> anyhow::Result<()> {
    use shoal_image::registry::{Client, RegistryConfig};
    if dir.exists() {
        bail!("{} exists: the pull must start from an empty store", dir.display());
    }
    let r = shoal_image::Reference::parse(image).with_context(|| format!("image {image:?}"))?;
    let t0 = Instant::now();
    let cfg = RegistryConfig { insecure, ..RegistryConfig::default() };
    let client = Client::new(cfg)?;
    let store = shoal_image::Store::open(dir)?;
    let img = store.pull(&client, &r, &|_| {}).await?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(store.root(&img).is_dir(), "no root unpacked for {image}");
    println!("RESULT pull_ms={ms:.1} layers={} bytes={}", img.layers.len(), img.size);
    Ok(())
}
