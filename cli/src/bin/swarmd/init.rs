//! `swarmd` on an empty state dir without `--join`: a new cluster with this node as its only
//! manager (the cluster itself is made by `shoal_manager::bootstrap`).

use crate::identity::Identity;
use crate::node::Node;
use crate::role::RunningManager;
use crate::serve::ControlFront;
use shoal_manager::{Bootstrap, BootstrapError, BootstrapSpec};
use tracing::warn;

/// What `swarm init` may set beyond the node's flags (empty/zero: the flags').
#[derive(Debug, Default)]
pub struct InitOptions {
    /// Address pools, `CIDR`s (Shoal takes one).
    pub default_addr_pool: Vec<String>,
    /// Prefix length of the subnets cut from it.
    pub subnet_size: u32,
}

/// Makes the cluster, saves the node's identity and prints how to join it. The node's
/// addresses are known (see [`Node::take_addresses`]).
pub async fn init(
    node: &mut Node,
    opts: InitOptions,
    front: &ControlFront,
) -> anyhow::Result<(Identity, RunningManager)> {
    let pool = match opts.default_addr_pool.as_slice() {
        [] => node.args.default_addr_pool.clone(),
        [one] => one.clone(),
        _ => anyhow::bail!("--default-addr-pool: Shoal takes one address pool"),
    };
    let subnet_size = match opts.subnet_size {
        0 => node.args.default_addr_pool_mask_len,
        n => u8::try_from(n)
            .map_err(|_| anyhow::anyhow!("--default-addr-pool-mask-length {n} is out of range"))?,
    };
    let spec = BootstrapSpec {
        hostname: node.hostname.clone(),
        advertise_addr: node.advertise.clone(),
        labels: node.labels.clone(),
        default_addr_pool: pool,
        subnet_size,
        cert_expiry: node.args.cert_expiry,
        plaintext: node.args.insecure_plaintext,
        certs_dir: node.certs_dir(),
    };
    let plan = Bootstrap::plan(&spec).map_err(flag_error)?;
    if spec.plaintext {
        warn!("--insecure-plaintext: this cluster has no CA; nodes talk plain gRPC and anyone who can reach a manager can join with a token or call its APIs");
    }
    let ident = Identity {
        node_id: plan.node_id.clone(),
        manager: true,
        raft_id: plan.raft_id,
        cluster_id: plan.cluster_id.clone(),
        plaintext: spec.plaintext,
        listen_addr: node.listen.clone(),
        advertise_addr: node.advertise.clone(),
    };
    node.transport = plan.transport.clone();
    let running = RunningManager::start(node, &ident, None, front).await?;
    let made = match running.m.bootstrap(&plan).await {
        Ok(()) => ident.save(&node.state_dir),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = made {
        // Nothing of it may keep running: raft, the leader's actors, the listener.
        running.stop().await;
        return Err(e);
    }
    println!(
        "Swarm initialized: current node ({}) is now a manager.\n\nTo add a worker to this swarm, run:\n\n    swarmd --join {} --token {} --state-dir DIR --listen-addr IP:PORT\n\nTo add a manager, use `swarmctl swarm join-token manager`.",
        ident.node_id,
        node.advertise,
        plan.worker_token()
    );
    Ok((ident, running))
}

/// Names the flag behind a refused setting.
fn flag_error(e: BootstrapError) -> anyhow::Error {
    match e {
        BootstrapError::AddrPool { source, .. } => {
            anyhow::anyhow!("--default-addr-pool: {source}")
        }
        BootstrapError::SubnetSize { size, prefix } => anyhow::anyhow!(
            "--default-addr-pool-mask-len {size} must be between the pool's prefix ({prefix}) and {}",
            shoal_manager::bootstrap::MAX_SUBNET_SIZE
        ),
        e => e.into(),
    }
}
