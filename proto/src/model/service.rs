//! Services and their specs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{HealthConfig, Invalid, NetworkId, ServiceId, UpdateConfig, UpdateStatus};

/// Transport protocol of a published port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// How a port is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PublishMode {
    /// On every node, through the routing mesh.
    #[default]
    Ingress,
    /// Only on the nodes that run a task.
    Host,
}

/// Which tasks answer an ingress port on a node (in the spirit of Kubernetes'
/// `externalTrafficPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TrafficPolicy {
    /// Any task of the service, through the routing mesh; the task sees the mesh's address.
    #[default]
    Cluster,
    /// Only the node's own tasks, without source NAT: the task sees the client's address. A
    /// node with no task of the service refuses the port.
    Local,
}

impl TrafficPolicy {
    /// `cluster` or `local`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficPolicy::Cluster => "cluster",
            TrafficPolicy::Local => "local",
        }
    }
}

/// The UDP port every node receives its overlay (VXLAN) traffic on. A port published on it would
/// take the overlays' own packets, so a spec cannot publish it over UDP.
pub const VXLAN_PORT: u16 = 4789;

/// A published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortConfig {
    /// tcp or udp.
    pub protocol: Protocol,
    /// Port inside the task.
    pub target: u16,
    /// Port on the nodes; 0 in a spec means "pick one from 30000–32767".
    pub published: u16,
    /// Ingress or host.
    pub mode: PublishMode,
    /// Ingress only: which tasks answer on a node (`traffic=local|cluster`).
    #[serde(default)]
    pub traffic: TrafficPolicy,
}

impl PortConfig {
    /// Parses Docker's short forms: `T`, `P:T`, with `/tcp|/udp` and `,mode=host|ingress`; also
    /// the long form `published=P,target=T,protocol=udp,mode=host`; and Shoal's
    /// `traffic=local|cluster` (ingress ports only).
    pub fn parse(s: &str) -> Result<PortConfig, Invalid> {
        let bad = |why: &str| Invalid::Publish {
            input: s.to_string(),
            why: why.to_string(),
        };
        let mut port = PortConfig::default();
        let mut parts = s.split(',');
        let first = parts.next().unwrap_or_default();
        let mut rest: Vec<&str> = parts.collect();
        if first.contains('=') {
            rest.insert(0, first);
        } else {
            let (ports, proto) = match first.split_once('/') {
                Some((p, proto)) => (p, Some(proto)),
                None => (first, None),
            };
            if let Some(proto) = proto {
                port.protocol =
                    parse_proto(proto).ok_or_else(|| bad("protocol must be tcp or udp"))?;
            }
            match ports.split_once(':') {
                Some((p, t)) => {
                    port.published =
                        parse_port(p).ok_or_else(|| bad("published port must be 1-65535"))?;
                    port.target =
                        parse_port(t).ok_or_else(|| bad("target port must be 1-65535"))?;
                }
                None => {
                    port.target =
                        parse_port(ports).ok_or_else(|| bad("target port must be 1-65535"))?
                }
            }
        }
        for kv in rest {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad("options are key=value"))?;
            match k {
                "mode" => {
                    port.mode = match v {
                        "host" => PublishMode::Host,
                        "ingress" => PublishMode::Ingress,
                        _ => return Err(bad("mode must be host or ingress")),
                    }
                }
                "published" => {
                    port.published =
                        parse_port(v).ok_or_else(|| bad("published port must be 1-65535"))?
                }
                "target" => {
                    port.target = parse_port(v).ok_or_else(|| bad("target port must be 1-65535"))?
                }
                "protocol" => {
                    port.protocol =
                        parse_proto(v).ok_or_else(|| bad("protocol must be tcp or udp"))?
                }
                "traffic" => {
                    port.traffic = match v {
                        "local" => TrafficPolicy::Local,
                        "cluster" => TrafficPolicy::Cluster,
                        _ => return Err(bad("traffic must be local or cluster")),
                    }
                }
                _ => return Err(bad(&format!("unknown option {k:?}"))),
            }
        }
        if port.target == 0 {
            return Err(bad("a target port is required"));
        }
        if port.traffic == TrafficPolicy::Local && port.mode == PublishMode::Host {
            return Err(bad(
                "traffic=local is for mode=ingress (a mode=host port is always local)",
            ));
        }
        Ok(port)
    }

    /// Docker's `PORTS` column form: `*:30001->8080/tcp`.
    pub fn display(&self) -> String {
        match self.mode {
            PublishMode::Ingress => format!(
                "*:{}->{}/{}{}",
                self.published,
                self.target,
                self.protocol.as_str(),
                match self.traffic {
                    TrafficPolicy::Cluster => "",
                    TrafficPolicy::Local => " (local)",
                }
            ),
            PublishMode::Host => format!(
                "{}->{}/{} (host)",
                self.published,
                self.target,
                self.protocol.as_str()
            ),
        }
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_proto(s: &str) -> Option<Protocol> {
    match s {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

/// When a task that ended is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RestartCondition {
    /// Whatever the exit.
    #[default]
    Any,
    /// Only after a non-zero exit or a failure to start.
    OnFailure,
    /// Never.
    None,
}

/// Restart policy of a service's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// When to restart.
    pub condition: RestartCondition,
    /// Wait between the end of a task and its replacement.
    pub delay_ms: u64,
    /// Replacements per slot before giving up; 0 = unlimited.
    pub max_attempts: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        // Swarm waits 5 s; we restart sooner by default but keep a delay so a crash loop does not
        // spin (SK api/defaults/service.go uses 5 s).
        RestartPolicy {
            condition: RestartCondition::Any,
            delay_ms: 1000,
            max_attempts: 0,
        }
    }
}

/// Replicated or global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceMode {
    /// A fixed number of tasks spread over the nodes.
    Replicated {
        /// Desired task count.
        replicas: u64,
    },
    /// One task on every eligible node.
    Global,
}

impl Default for ServiceMode {
    fn default() -> Self {
        ServiceMode::Replicated { replicas: 1 }
    }
}

/// A network a service attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetworkAttachmentSpec {
    /// Network id (names are resolved to ids at create time).
    pub target: String,
    /// Extra DNS names on that network.
    pub aliases: Vec<String>,
}

/// How clients reach a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EndpointMode {
    /// One virtual IP balanced over the tasks.
    #[default]
    Vip,
    /// DNS round robin over the task IPs.
    Dnsrr,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ServiceSpec {
    /// Unique name.
    pub name: String,
    /// Replicated or global.
    pub mode: ServiceMode,
    /// Program to run (the process executor looks it up on the node).
    pub image: String,
    /// Arguments.
    pub args: Vec<String>,
    /// `K=V` environment.
    pub env: Vec<String>,
    /// Published ports.
    pub ports: Vec<PortConfig>,
    /// Attached networks.
    pub networks: Vec<NetworkAttachmentSpec>,
    /// VIP or DNS round robin.
    pub endpoint_mode: EndpointMode,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Placement constraints (`node.role==manager`, …).
    pub constraints: Vec<String>,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Time between SIGTERM and SIGKILL.
    pub stop_grace_ms: u64,
    /// Memory limit in bytes, 0 = none.
    pub limit_memory_bytes: i64,
    /// CPU limit in cores, 0 = none.
    pub limit_cpus: f64,
    /// Bumped by `service update --force` so every task is replaced.
    #[serde(default)]
    pub force_update: u64,
    /// What runs the tasks. Specs written before containers existed ran programs: they read
    /// back as [`Runtime::Process`].
    #[serde(default = "Runtime::before_containers")]
    pub runtime: Runtime,
    /// The digest `image` was resolved to at create/update (`sha256:…`), so every replica runs
    /// the same bytes; empty: not pinned (`--no-resolve-image`, or a process).
    #[serde(default)]
    pub image_digest: String,
    /// Replaces the image's `ENTRYPOINT` when not empty.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `--user`: `name`, `uid`, `uid:gid` or `name:group`; empty: the image's.
    #[serde(default)]
    pub user: String,
    /// `--workdir`; empty: the image's.
    #[serde(default)]
    pub workdir: String,
    /// `--tty`: a pseudo-terminal for the task.
    #[serde(default)]
    pub tty: bool,
    /// `--init`: a minimal init as PID 1.
    #[serde(default)]
    pub init: bool,
    /// How an update replaces the tasks (`--update-*`).
    #[serde(default)]
    pub update: UpdateConfig,
    /// How a rollback replaces them (`--rollback-*`).
    #[serde(default)]
    pub rollback: UpdateConfig,
    /// `--health-*` / `--no-healthcheck`; `None`: the image's `HEALTHCHECK`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `--stop-drain`: how long a stopping task stays up, out of every balancer and DNS answer,
    /// before its stop signal; `None`: the node's default ([`DEFAULT_STOP_DRAIN`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_drain_ms: Option<u64>,
    /// `--secret`: secrets the tasks get as files under `/run/secrets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<super::SecretReference>,
    /// `--config`: configs the tasks get as files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<super::ConfigReference>,
    /// Labels of each task's container (Docker's `ContainerSpec.Labels`; a stack's
    /// `com.docker.stack.namespace`), apart from the service's own [`ServiceSpec::labels`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub container_labels: BTreeMap<String, String>,
}

/// How long a stopping task keeps running after the managers took it out of every balancer and
/// DNS answer, before its stop signal, when its service sets none: a second. The balancers of
/// every node let go of it within one assignment push (measured at 64–71 ms on a 5-node lab,
/// docs/benchmarks.md: a raft write, one message per node, one nft transaction), so a second
/// is over ten times that, for a loaded node, while requests already in flight on established
/// connections finish; it stays small next to the 10 s stop grace that follows. (Before it was a
/// setting the agent waited a fixed 250 ms.)
pub const DEFAULT_STOP_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest `--stop-drain`: ten minutes (a stop, an update or a removal waits that long).
pub const MAX_STOP_DRAIN: std::time::Duration = std::time::Duration::from_secs(600);

impl ServiceSpec {
    /// Checks the health check's bounds and the drain's.
    pub fn validate_health_and_drain(&self) -> Result<(), Invalid> {
        if let Some(h) = &self.healthcheck {
            h.validate()?;
        }
        match self.stop_drain_ms {
            Some(ms) if std::time::Duration::from_millis(ms) > MAX_STOP_DRAIN => {
                Err(Invalid::StopDrain(super::fmt_ms(ms)))
            }
            _ => Ok(()),
        }
    }
}

/// What runs a service's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Runtime {
    /// An OCI container from the service's image, run by the node's OCI runtime (runc, crun).
    #[default]
    Container,
    /// The program named by the image, looked up on the node (`--runtime process`).
    Process,
}

impl Runtime {
    /// What a spec stored before containers existed ran.
    pub fn before_containers() -> Runtime {
        Runtime::Process
    }

    /// `container` or `process`, as `--runtime` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Container => "container",
            Runtime::Process => "process",
        }
    }
}

/// A service's virtual IP on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VirtualIp {
    /// Network id.
    pub network_id: NetworkId,
    /// Address in CIDR form (`10.0.1.2/24`).
    pub addr: String,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Service {
    /// Service id.
    pub id: ServiceId,
    /// Current spec.
    pub spec: ServiceSpec,
    /// Bumped on every spec change; tasks remember the version they were made from.
    pub spec_version: u64,
    /// Allocated ports (published filled in).
    pub ports: Vec<PortConfig>,
    /// Allocated VIPs.
    pub vips: Vec<VirtualIp>,
    /// Creation time.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
    /// Raft index of the last write: what a client's update must name (`update out of
    /// sequence` otherwise).
    pub version: u64,
    /// The last update's or rollback's progress; `None` before the first update.
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
    /// The spec before the last update: what `service rollback` returns to.
    #[serde(default)]
    pub previous_spec: Option<ServiceSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_publish_forms() {
        let p = PortConfig::parse("8080").unwrap();
        assert_eq!(
            (p.published, p.target, p.protocol, p.mode),
            (0, 8080, Protocol::Tcp, PublishMode::Ingress)
        );
        let p = PortConfig::parse("8080:80/udp").unwrap();
        assert_eq!(
            (p.published, p.target, p.protocol),
            (8080, 80, Protocol::Udp)
        );
        let p = PortConfig::parse("8080:80,mode=host").unwrap();
        assert_eq!(p.mode, PublishMode::Host);
        let p = PortConfig::parse("published=9000,target=80,protocol=udp").unwrap();
        assert_eq!(
            (p.published, p.target, p.protocol),
            (9000, 80, Protocol::Udp)
        );
        for bad in [
            "",
            "x",
            "0",
            "70000",
            "80:",
            ":80",
            "80/sctp",
            "80,mode=x",
            "80,foo=1",
            "published=1",
            "80,traffic=x",
            "80,traffic=",
            "8080:80,mode=host,traffic=local",
        ] {
            assert!(PortConfig::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn parse_traffic_policy() {
        let p = PortConfig::parse("published=8080,target=80,mode=ingress,traffic=local").unwrap();
        assert_eq!(
            (p.published, p.target, p.mode, p.traffic),
            (8080, 80, PublishMode::Ingress, TrafficPolicy::Local)
        );
        let p = PortConfig::parse("8080:80,traffic=cluster").unwrap();
        assert_eq!(p.traffic, TrafficPolicy::Cluster);
        assert_eq!(
            PortConfig::parse("8080:80").unwrap().traffic,
            TrafficPolicy::Cluster,
            "the default is unchanged"
        );
        let err = PortConfig::parse("8080:80,traffic=nearby").unwrap_err();
        assert!(
            err.to_string().contains("traffic must be local or cluster"),
            "{err}"
        );
        let err = PortConfig::parse("8080:80,mode=host,traffic=local").unwrap_err();
        assert!(err.to_string().contains("mode=ingress"), "{err}");
        // Specs stored before the field existed read as `cluster`.
        let old: PortConfig = serde_json::from_str(
            r#"{"protocol":"Tcp","target":80,"published":8080,"mode":"Ingress"}"#,
        )
        .unwrap();
        assert_eq!(old.traffic, TrafficPolicy::Cluster);
    }

    #[test]
    fn display_like_docker() {
        let p = PortConfig {
            protocol: Protocol::Tcp,
            target: 8080,
            published: 30001,
            mode: PublishMode::Ingress,
            traffic: TrafficPolicy::Cluster,
        };
        assert_eq!(p.display(), "*:30001->8080/tcp");
        let local = PortConfig {
            traffic: TrafficPolicy::Local,
            ..p
        };
        assert_eq!(local.display(), "*:30001->8080/tcp (local)");
    }
}
