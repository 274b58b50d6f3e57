//! `swarmctl service update`: read the spec, change what the flags say, write it back.

use super::create::{EndpointModeArg, SpecArgs};
use super::health::HealthArgs;
use super::image::{pin, ContainerArgs};
use super::{finish, parse, Ctx, WaitArgs};
use crate::client::RpcResultExt;
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
    /// vip or dnsrr.
    #[arg(long, value_enum)]
    pub endpoint_mode: Option<EndpointModeArg>,
    /// Restart policy, stop grace period and limits.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Health check and stop drain.
    #[command(flatten)]
    pub health: HealthArgs,
    /// Replace every task even if nothing they run changed.
    #[arg(long)]
    pub force: bool,
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
    if let Some(m) = a.endpoint_mode {
        spec.endpoint_mode = m.into();
    }
    a.spec.apply(spec);
    a.health.apply(spec)?;
    Ok(())
}

/// Updates the service, prints its name and follows it until it converges (unless -d).
pub async fn run(ctx: &mut Ctx, a: UpdateArgs) -> anyhow::Result<()> {
    let svc = ctx
        .client
        .get_service(pb::IdRequest {
            id: a.service.clone(),
        })
        .await
        .rpc()?;
    let wire = svc.spec.clone().unwrap_or_default();
    let mut spec = ServiceSpec::try_from(&wire).map_err(|e| {
        anyhow::anyhow!("service {} has a spec swarmctl can't read: {e}", a.service)
    })?;
    let mut network_ids = Vec::new();
    for name in &a.network_rm {
        let n = ctx
            .client
            .get_network(pb::IdRequest { id: name.clone() })
            .await
            .rpc()?;
        network_ids.push((name.clone(), n.id));
    }
    apply(&a, &mut spec, &network_ids)?;
    a.container.apply(&mut spec)?;
    pin(ctx, &mut spec, a.container.no_resolve_image).await?;
    let req = pb::UpdateServiceRequest {
        id: svc.id.clone(),
        spec: Some(pb::ServiceSpec::from(&spec)),
    };
    let updated = ctx.client.update_service(req).await.rpc()?;
    if !ctx.json() {
        ctx.out.line(&a.service);
    }
    finish(ctx, &updated, &a.wait).await
}
