//! `swarmctl service create`.

use super::health::HealthArgs;
use super::image::{pin, ContainerArgs, RuntimeArg};
use super::policy::PolicyArgs;
use super::{finish, parse, Ctx, WaitArgs, Watch};
use crate::client::RpcResultExt;
use clap::ValueEnum;
use shoal_proto::model::{
    validate_name, ConfigReference, EndpointMode, NameKind, NetworkAttachmentSpec, PortConfig,
    RestartCondition, RestartPolicy, SecretReference, ServiceMode, ServiceSpec,
};
use shoal_proto::pb;
use std::time::Duration;

/// `service create` flags.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Service name (letters, digits, '-' and '_').
    #[arg(long)]
    pub name: String,
    /// Number of tasks (replicated mode; default 1).
    #[arg(long, value_parser = parse::replicas, allow_negative_numbers = true, value_name = "N")]
    pub replicas: Option<u64>,
    /// replicated: --replicas tasks spread over the nodes; global: one task on every node.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Publish a port: [PUBLISHED:]TARGET[/tcp|udp][,mode=host] (repeatable).
    #[arg(short = 'p', long = "publish", value_name = "SPEC", value_parser = PortConfig::parse)]
    pub publish: Vec<PortConfig>,
    /// Attach to a network: NET or name=NET,alias=ALIAS (repeatable).
    #[arg(long = "network", value_name = "NET", value_parser = parse::network)]
    pub networks: Vec<NetworkAttachmentSpec>,
    /// vip: one virtual IP balanced over the tasks; dnsrr: DNS returns the task IPs.
    #[arg(long, value_enum)]
    pub endpoint_mode: Option<EndpointModeArg>,
    /// Give the tasks a secret: NAME or src=NAME[,target=PATH][,uid=][,gid=][,mode=0444]; the
    /// target is relative to /run/secrets (default: the name). Repeatable.
    #[arg(long = "secret", value_name = "SECRET", value_parser = parse::data_ref::<shoal_proto::model::SecretId>)]
    pub secrets: Vec<SecretReference>,
    /// Give the tasks a config: NAME or src=NAME[,target=/PATH][,uid=][,gid=][,mode=0444];
    /// the target is absolute (default: /NAME). Repeatable.
    #[arg(long = "config", value_name = "CONFIG", value_parser = parse::data_ref::<shoal_proto::model::ConfigId>)]
    pub configs: Vec<ConfigReference>,
    /// Restart policy, stop grace period and limits.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// --update-* and --rollback-*: how updates and rollbacks replace tasks.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Health check and stop drain.
    #[command(flatten)]
    pub health: HealthArgs,
    /// Environment variable NAME=VALUE (repeatable; a bare NAME copies it from this shell).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse::env)]
    pub env: Vec<String>,
    /// Placement constraint, e.g. node.role==manager or node.labels.disk==ssd (repeatable).
    #[arg(long = "constraint", value_name = "EXPR")]
    pub constraints: Vec<String>,
    /// Service label KEY=VALUE (repeatable).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// container: run IMAGE from its registry; process: IMAGE is a program on the nodes.
    #[arg(long, value_enum, default_value = "container")]
    pub runtime: RuntimeArg,
    /// Entrypoint, user, working directory, terminal, init, digest pinning.
    #[command(flatten)]
    pub container: ContainerArgs,
    /// --detach / --timeout.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// The image to run (e.g. nginx:alpine, shoal/whoami); with --runtime process, a program
    /// on the nodes (e.g. whoami).
    pub image: String,
    /// Arguments (the image's CMD is replaced); everything after IMAGE, flags included, goes
    /// to the task.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    pub args: Vec<String>,
}

/// Flags `service create` and `service update` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SpecArgs {
    /// When to replace a task that ended: any, on-failure or none.
    #[arg(long, value_parser = parse::restart_condition, value_name = "any|on-failure|none")]
    pub restart_condition: Option<RestartCondition>,
    /// Wait between a task's end and its replacement (e.g. 5s).
    #[arg(long, value_parser = parse::duration, value_name = "DURATION")]
    pub restart_delay: Option<Duration>,
    /// Replacements per slot before giving up (0 = unlimited).
    #[arg(long, value_name = "N")]
    pub restart_max_attempts: Option<u64>,
    /// Time between SIGTERM and SIGKILL when a task is stopped (e.g. 10s).
    #[arg(long, value_parser = parse::duration, value_name = "DURATION")]
    pub stop_grace_period: Option<Duration>,
    /// Memory limit (e.g. 64M, 1G).
    #[arg(long, value_parser = parse::memory, value_name = "SIZE")]
    pub limit_memory: Option<i64>,
    /// CPU limit in cores (e.g. 0.5).
    #[arg(long, value_parser = parse::cpus, value_name = "CPUS")]
    pub limit_cpu: Option<f64>,
}

impl SpecArgs {
    /// Applies the flags that were given to `spec`.
    pub fn apply(&self, spec: &mut ServiceSpec) {
        if let Some(c) = self.restart_condition {
            spec.restart.condition = c;
        }
        if let Some(d) = self.restart_delay {
            spec.restart.delay_ms = d.as_millis() as u64;
        }
        if let Some(n) = self.restart_max_attempts {
            spec.restart.max_attempts = n;
        }
        if let Some(d) = self.stop_grace_period {
            spec.stop_grace_ms = d.as_millis() as u64;
        }
        if let Some(m) = self.limit_memory {
            spec.limit_memory_bytes = m;
        }
        if let Some(c) = self.limit_cpu {
            spec.limit_cpus = c;
        }
    }
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// A fixed number of tasks.
    Replicated,
    /// One task on every eligible node.
    Global,
}

/// `--endpoint-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndpointModeArg {
    /// One virtual IP per network, balanced over the tasks.
    Vip,
    /// DNS round robin over the task IPs.
    Dnsrr,
}

impl From<EndpointModeArg> for EndpointMode {
    fn from(m: EndpointModeArg) -> Self {
        match m {
            EndpointModeArg::Vip => EndpointMode::Vip,
            EndpointModeArg::Dnsrr => EndpointMode::Dnsrr,
        }
    }
}

/// The spec the flags describe; checks what can be checked without the cluster.
pub fn build_spec(a: &CreateArgs) -> anyhow::Result<ServiceSpec> {
    validate_name(NameKind::Service, &a.name)?;
    if a.image.trim().is_empty() {
        anyhow::bail!(
            "an image is required (e.g. nginx:alpine, or a program with --runtime process)"
        );
    }
    let mode = match (a.mode, a.replicas) {
        (Some(ModeArg::Global), Some(_)) => {
            anyhow::bail!("--replicas can't be used with --mode global")
        }
        (Some(ModeArg::Global), None) => ServiceMode::Global,
        (_, replicas) => ServiceMode::Replicated {
            replicas: replicas.unwrap_or(1),
        },
    };
    let mut spec = ServiceSpec {
        name: a.name.clone(),
        mode,
        image: a.image.clone(),
        args: a.args.clone(),
        env: a.env.clone(),
        ports: a.publish.clone(),
        networks: a.networks.clone(),
        endpoint_mode: a.endpoint_mode.map(Into::into).unwrap_or_default(),
        restart: RestartPolicy::default(),
        constraints: a.constraints.clone(),
        labels: a.labels.iter().cloned().collect(),
        runtime: a.runtime.into(),
        secrets: a.secrets.clone(),
        configs: a.configs.clone(),
        ..Default::default()
    };
    a.spec.apply(&mut spec);
    a.policy.apply(&mut spec);
    a.health.apply(&mut spec)?;
    a.container.apply(&mut spec)?;
    Ok(spec)
}

/// Creates the service, prints its id and follows it until it converges (unless -d).
pub async fn run(ctx: &mut Ctx, a: CreateArgs) -> anyhow::Result<()> {
    let mut spec = build_spec(&a)?;
    pin(ctx, &mut spec, a.container.no_resolve_image).await?;
    let req = pb::CreateServiceRequest {
        spec: Some(pb::ServiceSpec::from(&spec)),
    };
    let svc = ctx.client.create_service(req).await.rpc()?;
    if !ctx.json() {
        ctx.out.line(&svc.id);
    }
    finish(ctx, &svc, &a.wait, Watch::Converge).await
}
