//! `swarmctl lab up`: check, build the network, start swarmd on every node, wait until the
//! cluster is whole. A failure midway tears down what was made (the same code as `lab down`)
//! and shows the end of the failing node's log.

use super::config::{check_link_names, host_link, LabSpec, Role, SAFE_RANGE};
use super::ready::{check_node, POLL};
use super::state::{self, LabDir, LabFile, RegistryRecord};
use super::{down, health, name_flag, net, procs, registry, require_root, Health, Printer};
use crate::client::{self, ClientConfig, RpcResultExt};
use crate::ctl::output::Table;
use anyhow::{anyhow, bail, Context};
use serde_json::json;
use shoal_netlib::netns::NetNs;
use shoal_proto::model::Ipv4Net;
use shoal_proto::pb;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long `lab up` waits, from the first swarmd's start, for every node to be Ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of a failing node's log shown with the error.
const LOG_LINES: usize = 30;

/// Runs `lab up` for `spec`.
pub async fn up(spec: LabSpec, p: &mut Printer) -> anyhow::Result<()> {
    let warnings = spec.validate().map_err(anyhow::Error::msg)?;
    check_link_names(&spec).map_err(anyhow::Error::msg)?;
    for w in warnings {
        eprintln!("{w}");
    }
    require_root("up")?;
    // The root made and resolved first, so that the paths given to swarmd (and compared with
    // /proc/<pid>/cwd by `lab down`) are canonical.
    let root = state::root();
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let root = root.canonicalize().unwrap_or(root);
    let dir = LabDir::new(&root, &spec.name);
    preflight(&spec, &dir, &root).await?;
    let swarmd = procs::find_swarmd()?;
    let registry_bin = registry::find()?;
    let images = images_layout(&spec)?;
    let registry_addr = registry::address(spec.host_address());
    // Every node pulls docker.io images through the lab's registry. A swarmd built before it
    // had the flags would exit on them: then the nodes start without, and say so.
    let mirror = procs::swarmd_has_flag(&swarmd, "--registry-mirror").then_some(registry_addr);
    if mirror.is_none() {
        eprintln!(
            "warning: {} has no --registry-mirror: the nodes will not pull from the lab's registry",
            swarmd.display()
        );
    }
    let extra = registry::node_extra(mirror, procs::extra_args());
    // Every node serves metrics on its underlay address (for `lab ui`'s request rates), when
    // this swarmd has the flag.
    let metrics = procs::swarmd_has_flag(&swarmd, "--metrics-addr");
    // Claim the name: of two `lab up` racing for it, the second stops here, before it could
    // tear down the first one's lab on failure.
    std::fs::create_dir(&dir.dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!(
            "lab {} is being created by another `swarmctl lab up`",
            spec.name
        ),
        _ => anyhow!("cannot create {}: {e}", dir.dir.display()),
    })?;

    let mut b = Builder {
        file: LabFile::plan(&spec, &dir, shoal_proto::model::now_ms()),
        spec,
        dir,
        swarmd,
        extra,
        metrics,
        registry_bin,
        images,
        children: Vec::new(),
        failing: None,
        started: Instant::now(),
    };
    p.say(&format!(
        "Creating lab {:?}: {} on {} (state in {})",
        b.spec.name,
        super::ls::plural_counts(b.spec.managers, b.spec.workers),
        b.spec.subnet,
        b.dir.dir.display()
    ));
    // A Ctrl-C while building tears the half-made lab down instead of leaving it behind.
    let (r, interrupted) = tokio::select! {
        r = b.run(p) => (r, false),
        _ = tokio::signal::ctrl_c() => (Err(anyhow!("interrupted")), true),
    };
    if interrupted {
        b.failing = None;
    }
    match r {
        Ok(nodes) => {
            b.report(p, &nodes);
            Ok(())
        }
        Err(e) => {
            if let Some(node) = &b.failing {
                let log = b.dir.log(node);
                let tail = procs::tail(&log, LOG_LINES);
                if tail.is_empty() {
                    eprintln!("lab up failed on {node}");
                } else {
                    eprintln!(
                        "lab up failed on {node}; last lines of {}:\n{tail}",
                        log.display()
                    );
                }
            }
            eprintln!("Tearing down what was made:");
            // Handles on our children only; dropping them neither waits nor kills.
            b.children.clear();
            // The teardown goes to stderr with the error, whatever the format.
            match down::remove(&b.dir).await {
                Ok(r) if !r.is_empty() => eprintln!("  {}", r.summary(&b.spec.name)),
                Ok(_) => {}
                Err(e2) => eprintln!("Error: tearing down: {e2:#}"),
            }
            Err(e.context(format!("lab up {} failed", b.spec.name)))
        }
    }
}

/// The layout whose images go into the lab's registry: `--images DIR`, which must be one, else
/// the demo images' cache when `deploy/images.sh` has built it; `Err` for a `--images` that is
/// not a layout, `Ok(Err(default))` when the cache is missing (a hint, not a failure).
fn images_layout(spec: &LabSpec) -> anyhow::Result<Result<PathBuf, PathBuf>> {
    match &spec.images {
        Some(dir) => {
            anyhow::ensure!(
                registry::is_layout(dir),
                "--images {}: not an OCI image layout (no index.json there)",
                dir.display()
            );
            Ok(Ok(dir.canonicalize().unwrap_or_else(|_| dir.clone())))
        }
        None => {
            let dir = registry::default_layout();
            Ok(if registry::is_layout(&dir) {
                Ok(dir)
            } else {
                Err(dir)
            })
        }
    }
}

/// Refuses to build over an existing lab or its leftovers, or on a subnet already in use.
async fn preflight(spec: &LabSpec, dir: &LabDir, root: &std::path::Path) -> anyhow::Result<()> {
    let flag = name_flag(&spec.name);
    if dir.dir.exists() {
        let file = dir.load().ok().flatten();
        match health(dir, file.as_ref()) {
            Health::Running => bail!(
                "lab {} is already running ({} nodes on {}): use it, or run `swarmctl lab down{flag}` first",
                spec.name,
                file.as_ref().map_or(0, |f| f.nodes.len()),
                file.as_ref().map_or(String::new(), |f| f.subnet.to_string()),
            ),
            h => bail!(
                "lab {} already exists in {} ({h}): run `swarmctl lab down{flag}` first",
                spec.name,
                dir.dir.display()
            ),
        }
    }
    let link = host_link(&spec.name);
    if net::host_has_link(&link) {
        bail!(
            "link {link} already exists in the host namespace (left by an earlier lab {}?): \
             run `swarmctl lab down{flag}` first",
            spec.name
        );
    }
    let mut used: Vec<Ipv4Net> = Vec::new();
    let mut clash: Option<String> = None;
    for other in state::list(root) {
        if let Ok(Some(f)) = LabDir::new(root, &other).load() {
            if f.subnet.overlaps(spec.subnet) && clash.is_none() {
                clash = Some(format!("lab {other} uses {}", f.subnet));
            }
            used.push(f.subnet);
        }
    }
    for (ifname, net) in net::host_overlaps(SAFE_RANGE).await? {
        if net.overlaps(spec.subnet) && clash.is_none() {
            clash = Some(format!("host interface {ifname} has {net}"));
        }
        used.push(net);
    }
    if let Some(why) = clash {
        let hint = suggest_subnet(&used)
            .map(|s| format!(", e.g. --subnet {s}"))
            .unwrap_or_default();
        bail!(
            "--subnet {} is already in use ({why}): pick another inside {SAFE_RANGE}{hint}",
            spec.subnet
        );
    }
    Ok(())
}

/// The first /24 of 198.18.0.0/15 that overlaps none of `used`.
pub fn suggest_subnet(used: &[Ipv4Net]) -> Option<Ipv4Net> {
    (0..512u32)
        .filter_map(|i| Ipv4Net::new(SAFE_RANGE.host(i * 256), 24))
        .find(|s| !used.iter().any(|u| u.overlaps(*s)))
}

struct Builder {
    spec: LabSpec,
    dir: LabDir,
    file: LabFile,
    swarmd: PathBuf,
    extra: Vec<String>,
    /// Whether each node gets a `--metrics-addr` on its own address ([`procs::with_metrics`]).
    metrics: bool,
    /// `docker-registry`.
    registry_bin: PathBuf,
    /// The layout to push (`Ok`), or the missing default one (`Err`, a hint is printed).
    images: Result<PathBuf, PathBuf>,
    /// The swarmds started so far (to notice one exiting early).
    children: Vec<(String, Child)>,
    /// The node to blame when something fails.
    failing: Option<String>,
    started: Instant,
}

impl Builder {
    async fn run(&mut self, p: &mut Printer) -> anyhow::Result<Vec<pb::Node>> {
        let dir = self.dir.clone();
        std::fs::create_dir_all(dir.nodes())
            .with_context(|| format!("cannot create {}", dir.nodes().display()))?;
        dir.save(&self.file)?;

        let ul = net::make_underlay(&dir).await?;
        p.say(&format!(
            "  underlay: namespace {}, bridge {}",
            self.file.underlay.netns.display(),
            self.file.underlay.bridge
        ));
        net::make_host_endpoint(&self.spec, &ul).await?;
        let he = &self.file.host_endpoint;
        p.say(&format!(
            "  host endpoint: {} {}/{}",
            he.link, he.address, he.prefix
        ));
        self.registry(p).await?;
        let mut namespaces: Vec<NetNs> = Vec::new();
        for node in self.spec.nodes() {
            self.failing = Some(node.name.clone());
            namespaces.push(net::make_node(&dir, &ul, &node, self.spec.subnet).await?);
            p.say(&format!(
                "  {}: namespace, eth0 {}/{} (underlay port {})",
                node.name,
                node.address,
                self.spec.subnet.prefix(),
                node.link
            ));
        }
        self.failing = None;
        drop(ul);

        let deadline = Instant::now() + READY_TIMEOUT;
        if self.spec.no_swarm {
            return self.idle_nodes(p, &namespaces, deadline).await;
        }
        let plans = self.spec.nodes();
        let first = &plans[0];
        let m1 = first.name.clone();
        let join_addr = first.endpoint();

        self.start(p, 0, &namespaces[0], None)?;
        self.wait(deadline, &format!("{m1} to lead the new swarm"), |nodes| {
            check_node(nodes, &m1, Role::Manager)
        })
        .await?;
        p.say(&format!(
            "  {m1}: Ready, Leader ({:.1}s)",
            self.started.elapsed().as_secs_f64()
        ));

        let (worker_token, manager_token) = self.tokens().await?;
        // Managers join one at a time: each is a raft membership change.
        for (i, node) in plans.iter().enumerate().skip(1) {
            if node.role != Role::Manager {
                continue;
            }
            self.start(p, i, &namespaces[i], Some((&join_addr, &manager_token)))?;
            let name = node.name.clone();
            let seen = self
                .wait(deadline, &format!("{name} to join as a manager"), |nodes| {
                    check_node(nodes, &name, Role::Manager)
                })
                .await?;
            let raft = seen
                .iter()
                .find(|n| n.hostname == name)
                .map_or("Reachable", |n| n.manager_status.as_str());
            p.say(&format!(
                "  {name}: Ready, {raft} ({:.1}s)",
                self.started.elapsed().as_secs_f64()
            ));
        }
        for (i, node) in plans.iter().enumerate() {
            if node.role == Role::Worker {
                self.start(p, i, &namespaces[i], Some((&join_addr, &worker_token)))?;
            }
        }
        let all: Vec<(String, Role)> = plans.iter().map(|n| (n.name.clone(), n.role)).collect();
        let nodes = self
            .wait(deadline, "every node to be Ready", |nodes| {
                for (name, role) in &all {
                    check_node(nodes, name, *role)?;
                }
                let leaders = nodes
                    .iter()
                    .filter(|n| n.manager_status == "Leader")
                    .count();
                if leaders != 1 {
                    return Err((all[0].0.clone(), format!("{leaders} leaders")));
                }
                Ok(())
            })
            .await?;
        p.say(&format!(
            "  all {} nodes Ready ({:.1}s)",
            plans.len(),
            self.started.elapsed().as_secs_f64()
        ));
        Ok(nodes)
    }

    /// `--no-swarm`: every node's swarmd started in no swarm (`--idle`), then waited for
    /// until its control socket says so. No node list: there is no swarm to ask.
    async fn idle_nodes(
        &mut self,
        p: &mut Printer,
        namespaces: &[NetNs],
        deadline: Instant,
    ) -> anyhow::Result<Vec<pb::Node>> {
        self.extra.push("--idle".into());
        for (i, ns) in namespaces.iter().enumerate() {
            self.start(p, i, ns, None)?;
        }
        for node in self.spec.nodes() {
            self.failing = Some(node.name.clone());
            let host = self.dir.host(&node.name);
            loop {
                self.check_children()?;
                let cfg = ClientConfig {
                    connect_timeout: Duration::from_secs(1),
                    request_timeout: Some(Duration::from_secs(3)),
                    ..Default::default()
                };
                let state = match client::connect_lifecycle(&host, &cfg).await {
                    Ok(mut c) => c.state(pb::Empty {}).await.rpc().map(|s| s.state),
                    Err(e) => Err(e),
                };
                match state {
                    Ok(s) if s == "inactive" => break,
                    r if Instant::now() > deadline => bail!(
                        "timed out after {}s waiting for {} to start in no swarm; last seen: {r:?}",
                        READY_TIMEOUT.as_secs(),
                        node.name
                    ),
                    _ => tokio::time::sleep(POLL).await,
                }
            }
            p.say(&format!("  {}: in no swarm", node.name));
        }
        self.failing = None;
        Ok(Vec::new())
    }

    /// Starts node `i`'s swarmd and records its pid in `lab.json`.
    fn start(
        &mut self,
        p: &mut Printer,
        i: usize,
        ns: &NetNs,
        join: Option<(&str, &str)>,
    ) -> anyhow::Result<()> {
        let node = &self.spec.nodes()[i];
        self.failing = Some(node.name.clone());
        let mut args = procs::swarmd_args(&self.dir, node, join, &self.extra);
        if self.metrics {
            procs::with_metrics(&mut args, node.address);
        }
        let child = procs::spawn_swarmd(ns, &self.swarmd, &self.dir, &node.name, &args)?;
        let pid = child.id();
        self.children.push((node.name.clone(), child));
        self.file.nodes[i].pid = Some(pid);
        // What `lab start` / `lab restart` run: the same, minus the join (the state dir now
        // holds the node's identity).
        let mut again = procs::swarmd_args(&self.dir, node, None, &self.extra);
        if self.metrics {
            procs::with_metrics(&mut again, node.address);
        }
        self.file.nodes[i].args = again;
        self.dir.save(&self.file)?;
        let what = match (join.is_some(), node.role) {
            _ if self.spec.no_swarm => "in no swarm",
            (false, _) => "initialising the swarm",
            (true, Role::Manager) => "joining as a manager",
            (true, Role::Worker) => "joining as a worker",
        };
        p.say(&format!(
            "  {}: swarmd started (pid {pid}), {what}",
            node.name
        ));
        Ok(())
    }

    /// Starts the lab's registry on the host endpoint (recorded in `lab.json` at once, so a
    /// failure from here on stops it) and pushes the images into it.
    async fn registry(&mut self, p: &mut Printer) -> anyhow::Result<()> {
        let addr = registry::address(self.file.host_endpoint.address);
        let t = Instant::now();
        let mut child = registry::spawn(&self.registry_bin, &self.dir, addr)?;
        self.file.registry = Some(RegistryRecord {
            address: addr,
            pid: Some(child.id()),
            images: Vec::new(),
        });
        self.dir.save(&self.file)?;
        if let Err(e) = registry::wait_ready(&mut child, addr).await {
            let log = self.dir.registry().join("registry.log");
            bail!(
                "the lab's registry: {e:#}; last lines of {}:\n{}",
                log.display(),
                procs::tail(&log, LOG_LINES)
            );
        }
        p.say(&format!(
            "  registry: http://{addr}/ (docker-registry, pid {}, {:.1}s)",
            child.id(),
            t.elapsed().as_secs_f64()
        ));
        match &self.images {
            Ok(layout) => {
                let t = Instant::now();
                let pushed = registry::push(layout, addr)
                    .await
                    .with_context(|| format!("pushing the images of {}", layout.display()))?;
                p.say(&format!(
                    "  images: {} pushed from {} ({:.1}s)",
                    pushed.join(", "),
                    layout.display(),
                    t.elapsed().as_secs_f64()
                ));
                if let Some(r) = &mut self.file.registry {
                    r.images = pushed;
                }
                self.dir.save(&self.file)?;
            }
            Err(missing) => p.say(&format!(
                "  images: none ({} is not built): run deploy/images.sh (as root) to build the \
                 demo images, then `swarmctl lab down{flag}` and `lab up` again, or push your \
                 own to {addr} (skopeo copy --dest-tls-verify=false …)",
                missing.display(),
                flag = name_flag(&self.spec.name)
            )),
        }
        Ok(())
    }

    /// Fails if a swarmd we started has exited.
    fn check_children(&mut self) -> anyhow::Result<()> {
        for (name, c) in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                self.failing = Some(name.clone());
                bail!("swarmd on {name} exited ({status})");
            }
        }
        Ok(())
    }

    /// The first manager's Control API, with short timeouts: a node that is still starting
    /// should cost one poll, not a minute.
    async fn manager1(
        &self,
    ) -> anyhow::Result<pb::control_client::ControlClient<tonic::transport::Channel>> {
        let cfg = ClientConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        client::connect_with(&self.dir.host(&self.spec.nodes()[0].name), &cfg).await
    }

    /// Polls `ListNodes` on manager1 until `check` passes; returns the nodes it saw then.
    async fn wait(
        &mut self,
        deadline: Instant,
        desc: &str,
        check: impl Fn(&[pb::Node]) -> Result<(), (String, String)>,
    ) -> anyhow::Result<Vec<pb::Node>> {
        let m1 = self.spec.nodes()[0].name.clone();
        loop {
            self.check_children()?;
            let seen = match self.manager1().await {
                Ok(mut c) => c.list_nodes(pb::Empty {}).await.rpc(),
                Err(e) => Err(e),
            };
            let last = match seen {
                Ok(r) => match check(&r.nodes) {
                    Ok(()) => return Ok(r.nodes),
                    Err(why) => why,
                },
                Err(e) => (m1.clone(), format!("{m1}'s control socket: {e:#}")),
            };
            if Instant::now() > deadline {
                self.failing = Some(last.0.clone());
                bail!(
                    "timed out after {}s waiting for {desc}; last seen: {}",
                    READY_TIMEOUT.as_secs(),
                    last.1
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The worker and manager join tokens, from manager1.
    async fn tokens(&mut self) -> anyhow::Result<(String, String)> {
        self.failing = Some(self.spec.nodes()[0].name.clone());
        let mut c = self.manager1().await?;
        let mut tokens = Vec::new();
        for role in [pb::NodeRole::Worker, pb::NodeRole::Manager] {
            let r = c
                .get_join_token(pb::JoinTokenRequest {
                    role: role as i32,
                    rotate: false,
                })
                .await
                .rpc()
                .context("fetching the join tokens from manager1")?;
            tokens.push(r.token);
        }
        let manager = tokens.pop().unwrap_or_default();
        let worker = tokens.pop().unwrap_or_default();
        Ok((worker, manager))
    }

    /// The final table (or JSON) and how to use the lab.
    fn report(&self, p: &mut Printer, nodes: &[pb::Node]) {
        let status = |name: &str| -> String {
            if self.spec.no_swarm {
                return "in no swarm".into();
            }
            nodes
                .iter()
                .find(|n| n.hostname == name)
                .map(|n| {
                    let st = crate::ctl::names::node_state(n.state()).to_string();
                    if n.manager_status.is_empty() {
                        st
                    } else {
                        format!("{st} ({})", n.manager_status)
                    }
                })
                .unwrap_or_else(|| "?".into())
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        if p.json {
            let v = json!({
                "name": self.file.name,
                "subnet": self.file.subnet.to_string(),
                "dir": self.dir.dir,
                "ready_after_s": (elapsed * 10.0).round() / 10.0,
                "host_endpoint": self.file.host_endpoint,
                "registry": self.file.registry,
                "nodes": self.file.nodes.iter().map(|n| json!({
                    "name": n.name,
                    "role": n.role,
                    "address": n.address,
                    "pid": n.pid,
                    "status": status(&n.name),
                    "swarm_host": super::exec::swarm_host(&self.dir, &self.file, n),
                })).collect::<Vec<_>>(),
            });
            p.out.json(&v);
            return;
        }
        let mut t = Table::new(&["NODE", "ROLE", "ADDRESS", "STATUS"]);
        for n in &self.file.nodes {
            t.row(vec![
                n.name.clone(),
                n.role.as_str().into(),
                n.address.to_string(),
                status(&n.name),
            ]);
        }
        let flag = name_flag(&self.spec.name);
        let ip1 = self.file.nodes[0].address;
        let hints = [
            (
                format!("swarmctl lab shell{flag} manager1"),
                "a shell on manager1",
            ),
            (
                format!("swarmctl lab exec{flag} manager1 -- swarmctl node ls"),
                "one command there",
            ),
            (
                format!(
                    "swarmctl --host tcp://{ip1}:2377 --cert-dir {} node ls",
                    self.dir.certs(&self.file.nodes[0].name).display()
                ),
                "from this host (mutual TLS with manager1's certificate)",
            ),
            (format!("swarmctl lab down{flag}"), "remove it all"),
        ];
        let hints: Vec<(String, &str)> = match &self.file.registry {
            Some(r) => {
                let mut h = hints.to_vec();
                h.insert(
                    3,
                    (
                        format!("curl http://{}/v2/_catalog", r.address),
                        "the lab's registry (the nodes' docker.io mirror)",
                    ),
                );
                h
            }
            None => hints.to_vec(),
        };
        let hints: Vec<(String, &str)> = if self.spec.no_swarm {
            vec![
                (
                    format!("swarmctl lab exec{flag} manager1 -- swarmctl swarm init --advertise-addr eth0"),
                    "make the swarm",
                ),
                (
                    format!("swarmctl lab exec{flag} worker1 -- swarmctl swarm join --token TOKEN {ip1}:2377"),
                    "join it (the token init printed)",
                ),
                (format!("swarmctl lab down{flag}"), "remove it all"),
            ]
        } else {
            hints
        };
        let width = hints.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        let ready = if self.spec.no_swarm {
            "in no swarm, started"
        } else {
            "Ready"
        };
        let mut text = format!(
            "\nLab {:?} is up: {} nodes {ready} in {elapsed:.1}s.\n\n{}\nTry:\n",
            self.spec.name,
            self.file.nodes.len(),
            t.render()
        );
        for (cmd, what) in hints {
            text.push_str(&format!("  {cmd:<width$}   # {what}\n"));
        }
        p.out.print(&text);
    }
}
