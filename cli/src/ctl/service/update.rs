//! `swarmctl service update`: read the spec, change what the flags say, write it back.

use super::create::{EndpointModeArg, SpecArgs};
use super::health::HealthArgs;
use super::image::{pin, ContainerArgs};
use super::policy::PolicyArgs;
use super::{finish, parse, Ctx, WaitArgs, Watch};
use crate::client::{status_error, RpcResultExt};
use shoal_proto::model::{NetworkAttachmentSpec, PortConfig, Protocol, ServiceMode, ServiceSpec};
use shoal_proto::pb;

/// `service update` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// New number of tasks (replicated services).
    #[arg(long, value_parser = parse::replicas, allow_negative_numbers = true, value_name = "N")]
    pub replicas: Option<u64>,
    /// New image (pinned to its digest again); with --runtime process, a new program.
    #[arg(long)]
    pub image: Option<String>,
    /// Entrypoint, user, working directory, terminal, init, digest pinning.
    #[command(flatten)]
    pub container: ContainerArgs,
    /// New arguments, as one shell-quoted string: --args "--port 8080 --name 'a b'".
    #[arg(long, allow_hyphen_values = true, value_name = "\"ARGS\"")]
    pub args: Option<String>,
    /// Add or replace an environment variable NAME=VALUE (repeatable).
    #[arg(long = "env-add", value_name = "NAME=VALUE", value_parser = parse::env)]
    pub env_add: Vec<String>,
    /// Remove an environment variable (repeatable).
    #[arg(long = "env-rm", value_name = "NAME")]
    pub env_rm: Vec<String>,
    /// Publish a port: [PUBLISHED:]TARGET[/tcp|udp][,mode=host] (repeatable).
    #[arg(long = "publish-add", value_name = "SPEC", value_parser = PortConfig::parse)]
    pub publish_add: Vec<PortConfig>,
    /// Stop publishing a target port: TARGET[/tcp|udp] (repeatable).
    #[arg(long = "publish-rm", value_name = "TARGET", value_parser = parse::publish_rm)]
    pub publish_rm: Vec<(u16, Option<Protocol>)>,
    /// Add a placement constraint (repeatable).
    #[arg(long = "constraint-add", value_name = "EXPR")]
    pub constraint_add: Vec<String>,
    /// Remove a placement constraint (repeatable).
    #[arg(long = "constraint-rm", value_name = "EXPR")]
    pub constraint_rm: Vec<String>,
    /// Add or replace a service label KEY=VALUE (repeatable).
    #[arg(long = "label-add", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub label_add: Vec<(String, String)>,
    /// Remove a service label (repeatable).
    #[arg(long = "label-rm", value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Attach to a network: NET or name=NET,alias=ALIAS (repeatable).
    #[arg(long = "network-add", value_name = "NET", value_parser = parse::network)]
    pub network_add: Vec<NetworkAttachmentSpec>,
    /// Detach from a network (repeatable).
    #[arg(long = "network-rm", value_name = "NET")]
    pub network_rm: Vec<String>,
    /// Add a secret: NAME or src=NAME[,target=PATH][,uid=][,gid=][,mode=0444] (repeatable).
    #[arg(long = "secret-add", value_name = "SECRET", value_parser = parse::data_ref::<shoal_proto::model::SecretId>)]
    pub secret_add: Vec<shoal_proto::model::SecretReference>,
    /// Remove a secret, by name or id (repeatable; applied before --secret-add, so
    /// `--secret-rm old --secret-add src=new,target=same` rotates one).
    #[arg(long = "secret-rm", value_name = "SECRET")]
    pub secret_rm: Vec<String>,
    /// Add a config: NAME or src=NAME[,target=/PATH][,uid=][,gid=][,mode=0444] (repeatable).
    #[arg(long = "config-add", value_name = "CONFIG", value_parser = parse::data_ref::<shoal_proto::model::ConfigId>)]
    pub config_add: Vec<shoal_proto::model::ConfigReference>,
    /// Remove a config, by name or id (repeatable; applied before --config-add).
    #[arg(long = "config-rm", value_name = "CONFIG")]
    pub config_rm: Vec<String>,
    /// vip or dnsrr.
    #[arg(long, value_enum)]
    pub endpoint_mode: Option<EndpointModeArg>,
    /// Restart policy, stop grace period and limits.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// --update-* and --rollback-*: how updates and rollbacks replace tasks.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Health check and stop drain.
    #[command(flatten)]
    pub health: HealthArgs,
    /// Replace every task even if nothing they run changed.
    #[arg(long)]
    pub force: bool,
    /// Return to the previous spec (as `service rollback`); no other change may be given.
    #[arg(long)]
    pub rollback: bool,
    /// --detach / --timeout.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Service name, id or id prefix.
    pub service: String,
}

/// Applies the flags to `spec`. `network_ids` resolves the names given to --network-rm to ids
/// (specs hold network ids).
pub fn apply(
    a: &UpdateArgs,
    spec: &mut ServiceSpec,
    network_ids: &[(String, String)],
) -> anyhow::Result<()> {
    if let Some(n) = a.replicas {
        match &mut spec.mode {
            ServiceMode::Replicated { replicas } => *replicas = n,
            ServiceMode::Global => anyhow::bail!(
                "service {} is global: --replicas only applies to replicated services",
                spec.name
            ),
        }
    }
    if let Some(image) = &a.image {
        if image.trim().is_empty() {
            anyhow::bail!("--image must not be empty");
        }
        spec.image = image.clone();
        // A new image is resolved again (Docker's `--image` does the same).
        spec.image_digest.clear();
    }
    if let Some(args) = &a.args {
        spec.args = parse::shell_words(args)
            .map_err(|e| anyhow::anyhow!("invalid --args {args:?}: {e}"))?;
    }
    let key = |e: &str| {
        e.split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or_else(|| e.to_string())
    };
    for k in &a.env_rm {
        spec.env.retain(|e| key(e) != *k);
    }
    for e in &a.env_add {
        spec.env.retain(|x| key(x) != key(e));
        spec.env.push(e.clone());
    }
    if a.force {
        spec.force_update += 1;
    }
    for (target, proto) in &a.publish_rm {
        spec.ports
            .retain(|p| !(p.target == *target && proto.is_none_or(|proto| p.protocol == proto)));
    }
    // A port added for a target that is already published automatically (or on the same port)
    // replaces it: `-p 80` then `--publish-add 8080:80` moves target 80 to 8080.
    for p in &a.publish_add {
        spec.ports.retain(|o| {
            let same_port = p.published == 0 || o.published == 0 || o.published == p.published;
            !(o.target == p.target && o.protocol == p.protocol && same_port)
        });
        spec.ports.push(*p);
    }
    spec.constraints.retain(|c| !a.constraint_rm.contains(c));
    for c in &a.constraint_add {
        if !spec.constraints.contains(c) {
            spec.constraints.push(c.clone());
        }
    }
    for k in &a.label_rm {
        spec.labels.remove(k);
    }
    for (k, v) in &a.label_add {
        spec.labels.insert(k.clone(), v.clone());
    }
    for name in &a.network_rm {
        let id = network_ids
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
            .unwrap_or(name);
        spec.networks
            .retain(|n| n.target != *id && n.target != *name);
    }
    for n in &a.network_add {
        spec.networks.push(n.clone());
    }
    spec.secrets
        .retain(|r| !a.secret_rm.iter().any(|x| *x == r.name || *x == r.id));
    spec.secrets.extend(a.secret_add.iter().cloned());
    spec.configs
        .retain(|r| !a.config_rm.iter().any(|x| *x == r.name || *x == r.id));
    spec.configs.extend(a.config_add.iter().cloned());
    if let Some(m) = a.endpoint_mode {
        spec.endpoint_mode = m.into();
    }
    a.spec.apply(spec);
    a.policy.apply(spec);
    a.health.apply(spec)?;
    Ok(())
}

/// Times `service update` re-reads the service and re-applies its change when another client
/// changed the service in between (`update out of sequence`).
pub const ATTEMPTS: u32 = 20;

/// Updates the service, prints its name and follows the update until it completes (unless -d).
///
/// The flags are edits (`--env-add K=V`), not a snapshot: the change is applied to the service
/// as read, written back with the version read, and when the managers refuse it because the
/// service changed since, read and applied again. So concurrent updates all land.
pub async fn run(ctx: &mut Ctx, a: UpdateArgs) -> anyhow::Result<()> {
    let mut network_ids = Vec::new();
    for name in &a.network_rm {
        let n = ctx
            .client
            .get_network(pb::IdRequest { id: name.clone() })
            .await
            .rpc()?;
        network_ids.push((name.clone(), n.id));
    }
    let mut backoff = Backoff::new();
    for _ in 0..ATTEMPTS {
        let svc = ctx
            .client
            .get_service(pb::IdRequest {
                id: a.service.clone(),
            })
            .await
            .rpc()?;
        let wire = svc.spec.clone().unwrap_or_default();
        let read = ServiceSpec::try_from(&wire).map_err(|e| {
            anyhow::anyhow!("service {} has a spec swarmctl can't read: {e}", a.service)
        })?;
        let mut spec = read.clone();
        apply(&a, &mut spec, &network_ids)?;
        a.container.apply(&mut spec)?;
        if a.rollback && spec != read {
            anyhow::bail!(
                "--rollback returns to the previous spec: it cannot be combined with other changes"
            );
        }
        if !a.rollback {
            pin(ctx, &mut spec, a.container.no_resolve_image).await?;
        }
        let req = pb::UpdateServiceRequest {
            id: svc.id.clone(),
            spec: Some(pb::ServiceSpec::from(&spec)),
            version: svc.version,
            rollback: a.rollback,
            skip_unchanged: false,
        };
        match ctx.client.update_service(req).await {
            Ok(r) => {
                let updated = r.into_inner();
                if !ctx.json() {
                    ctx.out.line(&a.service);
                }
                let watch = if a.rollback {
                    Watch::Rollback
                } else {
                    Watch::Update
                };
                return finish(ctx, &updated, &a.wait, watch).await;
            }
            Err(s) if out_of_sequence(&s) => backoff.wait().await,
            Err(s) => return Err(status_error(s)),
        }
    }
    anyhow::bail!(
        "gave up after {ATTEMPTS} attempts: service {} kept changing under this update (update out of sequence); this command changed nothing, run it again",
        a.service
    )
}

/// `service rollback SERVICE`: the previous spec again, followed until the rollback completes.
pub async fn rollback(ctx: &mut Ctx, service: &str, wait: &WaitArgs) -> anyhow::Result<()> {
    let mut backoff = Backoff::new();
    for _ in 0..ATTEMPTS {
        let svc = ctx
            .client
            .get_service(pb::IdRequest {
                id: service.to_string(),
            })
            .await
            .rpc()?;
        let req = pb::UpdateServiceRequest {
            id: svc.id.clone(),
            spec: None,
            version: svc.version,
            rollback: true,
            skip_unchanged: false,
        };
        match ctx.client.update_service(req).await {
            Ok(r) => {
                let updated = r.into_inner();
                if !ctx.json() {
                    ctx.out.line(service);
                }
                return finish(ctx, &updated, wait, Watch::Rollback).await;
            }
            Err(s) if out_of_sequence(&s) => backoff.wait().await,
            Err(s) => return Err(status_error(s)),
        }
    }
    anyhow::bail!(
        "gave up after {ATTEMPTS} attempts: service {service} kept changing (update out of sequence); nothing was rolled back, run it again"
    )
}

/// Whether the managers refused a write because the object changed since it was read.
pub fn out_of_sequence(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Aborted && s.message().contains("update out of sequence")
}

/// Growing, jittered waits between attempts, so that concurrent writers spread out.
pub struct Backoff {
    next_ms: u64,
}

impl Backoff {
    /// Starts at 10 ms.
    pub fn new() -> Backoff {
        Backoff { next_ms: 10 }
    }

    /// Waits a random time up to the current bound, then doubles it (at most 1 s).
    pub async fn wait(&mut self) {
        let ms = rand::random_range(self.next_ms / 2..=self.next_ms);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        self.next_ms = (self.next_ms * 2).min(1_000);
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}
