//! Making a new cluster (`swarmd` on an empty state dir, without `--join`): its cluster object
//! with the root CA and join secrets, the first manager's node, the `ingress` network and the
//! predefined local networks — written as ONE raft entry, so a crash leaves either no cluster or
//! all of it.
//!
//! Two steps, because the manager's own transport needs the certificate made in the first:
//!
//! 1. [`Bootstrap::plan`]: validates the [`BootstrapSpec`], makes the ids, the root CA and this
//!    node's certificate (saved in `certs_dir`), and the objects to write. Nothing listens yet.
//! 2. The caller starts the [`Manager`] with [`Bootstrap::transport`] and binds its listeners
//!    (a port already taken fails here, before raft holds anything), then
//!    [`Manager::bootstrap`] makes it the single member of a new raft group, waits until it
//!    leads, and writes [`Bootstrap::command`].
//!
//! The caller saves the node's identity file after step 2. A crash between the two leaves raft
//! data without an identity; [`Manager::bootstrap`] refuses such a state dir
//! ([`BootstrapError::Leftover`]) instead of waiting to lead a group it is not a member of.

use crate::allocator::ipam::{Subnet, SubnetError};
use crate::manager::{Manager, ManagerError};
use shoal_proto::model::{
    self, now_ms, Cluster, Command, Network, NetworkDriver, Node, NodeRole, NodeState,
};
use shoal_security::{Credentials, NodeIdentity, NodeKeyPair, Role, Transport};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long [`Manager::bootstrap`] waits for the new single-member group to elect this node.
pub const LEADERSHIP_TIMEOUT: Duration = Duration::from_secs(10);

/// Smallest networks cut from the default address pool: a /29 (6 addresses).
pub const MAX_SUBNET_SIZE: u8 = 29;

/// What a new cluster is made from.
#[derive(Debug, Clone)]
pub struct BootstrapSpec {
    /// This node's hostname.
    pub hostname: String,
    /// Address other nodes reach this manager at (`ip:port`).
    pub advertise_addr: String,
    /// This node's labels.
    pub labels: BTreeMap<String, String>,
    /// Pool that networks without a subnet are cut from (CIDR, e.g. `10.0.0.0/8`).
    pub default_addr_pool: String,
    /// Prefix length of the networks cut from the pool.
    pub subnet_size: u8,
    /// Validity of node certificates.
    pub cert_expiry: Duration,
    /// No CA and no certificates: plain gRPC between nodes (benchmarks only).
    pub plaintext: bool,
    /// Where this node's key, certificate and trusted roots are saved.
    pub certs_dir: PathBuf,
}

/// Why a cluster could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The default address pool is not a CIDR.
    #[error("the default address pool {pool:?} is not a network")]
    AddrPool {
        /// The pool as given.
        pool: String,
        /// What is wrong with it.
        source: SubnetError,
    },
    /// The subnet size does not fit the pool.
    #[error(
        "subnet size {size} must be between the pool's prefix ({prefix}) and {MAX_SUBNET_SIZE}"
    )]
    SubnetSize {
        /// The size asked for.
        size: u8,
        /// The pool's prefix length.
        prefix: u8,
    },
    /// Making the root CA or this node's certificate failed.
    #[error(transparent)]
    Security(#[from] shoal_security::Error),
    /// Raft stopped.
    #[error("raft: {0}")]
    Raft(#[source] openraft::error::Fatal<crate::raft::NodeId>),
    /// Raft refused to start the group or to write the cluster.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// This node was not elected leader of its own single-member group in time.
    #[error(
        "this node did not become leader of its new cluster within {} s",
        LEADERSHIP_TIMEOUT.as_secs()
    )]
    NotLeader,
    /// The state dir already holds raft data (an earlier init that crashed before saving the
    /// node's identity).
    #[error("{dir} already holds raft data but this node has no identity: an earlier init was interrupted; remove the state dir and start again")]
    Leftover {
        /// The raft data directory.
        dir: String,
    },
}

/// A new cluster, planned: ids, credentials and the objects to write.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// This node's id.
    pub node_id: String,
    /// This node's raft member id.
    pub raft_id: u64,
    /// The new cluster's id.
    pub cluster_id: String,
    /// The manager's transport: mutual TLS with this node's new certificate, or plain.
    pub transport: Transport,
    cluster: Cluster,
    node: Node,
    networks: Vec<Network>,
}

impl Bootstrap {
    /// Validates `spec` and makes the cluster's ids, root CA, this node's certificate (saved in
    /// `spec.certs_dir`) and the objects [`Bootstrap::command`] writes.
    pub fn plan(spec: &BootstrapSpec) -> Result<Bootstrap, BootstrapError> {
        let pool =
            Subnet::parse(&spec.default_addr_pool).map_err(|source| BootstrapError::AddrPool {
                pool: spec.default_addr_pool.clone(),
                source,
            })?;
        let size = spec.subnet_size;
        if size < pool.prefix || size > MAX_SUBNET_SIZE {
            return Err(BootstrapError::SubnetSize {
                size,
                prefix: pool.prefix,
            });
        }
        let node_id = model::new_id();
        let raft_id = rand::random::<u64>() | 1;
        let cluster_id = model::new_id();
        let now = now_ms();
        let mut cluster = Cluster {
            id: cluster_id.clone(),
            worker_secret: model::new_id(),
            manager_secret: model::new_id(),
            digest: String::new(),
            default_addr_pool: pool.to_string(),
            subnet_size: size,
            created_ms: now,
            ..Default::default()
        };
        let mut node = Node {
            id: node_id.clone().into(),
            hostname: spec.hostname.clone(),
            role: NodeRole::Manager,
            state: NodeState::Ready,
            addr: spec.advertise_addr.clone(),
            labels: spec.labels.clone(),
            raft_id,
            created_ms: now,
            updated_ms: now,
            ..Default::default()
        };
        let transport = if spec.plaintext {
            cluster.digest = shoal_security::token::cluster_digest(cluster_id.as_bytes());
            Transport::Plain
        } else {
            // The root CA, and this node's own certificate from it, before anything listens.
            let root = crate::ca::init_cluster_ca(&mut cluster, spec.cert_expiry)?;
            let key = NodeKeyPair::generate()?;
            let who = NodeIdentity {
                node_id: node_id.clone(),
                role: Role::Manager,
                cluster_id: cluster_id.clone(),
            };
            let cert = root.issue(&key.csr()?, &who, spec.cert_expiry)?;
            let info = shoal_security::ca::cert_info(&cert)?;
            node.cert_not_after_ms = info.not_after * 1000;
            node.cert_issuer = cluster.digest.clone();
            let creds =
                Credentials::new(cert, key.pem(), root.cert_pem, Some(spec.certs_dir.clone()))?;
            Transport::Node(creds)
        };
        let mut networks = vec![Network {
            id: model::new_id().into(),
            name: "ingress".into(),
            driver: NetworkDriver::Overlay,
            ingress: true,
            created_ms: now,
            ..Default::default()
        }];
        for (name, driver, subnet) in model::PREDEFINED_NETWORKS {
            networks.push(Network {
                id: model::new_id().into(),
                name: name.into(),
                driver,
                subnet: subnet.into(),
                created_ms: now,
                ..Default::default()
            });
        }
        Ok(Bootstrap {
            node_id,
            raft_id,
            cluster_id,
            transport,
            cluster,
            node,
            networks,
        })
    }

    /// The one raft entry that makes the cluster: the commands `swarmd` wrote one by one before
    /// (the cluster, this node, `ingress`, then the predefined networks), in that order, as a
    /// [`Command::Batch`]. Applying it gives the same objects; they share one version (the
    /// entry's index) instead of six consecutive ones.
    pub fn command(&self) -> Command {
        let mut cmds = vec![
            Command::InitCluster(self.cluster.clone()),
            Command::PutNode(self.node.clone()),
        ];
        cmds.extend(self.networks.iter().cloned().map(Command::CreateNetwork));
        Command::Batch(cmds)
    }

    /// The token workers join with.
    pub fn worker_token(&self) -> String {
        self.cluster.token(NodeRole::Worker)
    }
}

impl Manager {
    /// Makes this manager the single member of a new raft group, waits until it leads it, and
    /// writes `plan`'s cluster in one entry. The manager must have been started with the plan's
    /// node id, raft id and transport.
    pub async fn bootstrap(&self, plan: &Bootstrap) -> Result<(), BootstrapError> {
        if self
            .raft
            .is_initialized()
            .await
            .map_err(BootstrapError::Raft)?
        {
            return Err(BootstrapError::Leftover {
                dir: self.cfg.state_dir.join("raft").display().to_string(),
            });
        }
        self.initialize().await?;
        let deadline = Instant::now() + LEADERSHIP_TIMEOUT;
        while !self.is_leader() {
            if Instant::now() > deadline {
                return Err(BootstrapError::NotLeader);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.write(plan.command()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::State;
    use crate::ManagerConfig;

    fn spec(dir: &std::path::Path, plaintext: bool) -> BootstrapSpec {
        BootstrapSpec {
            hostname: "m1".into(),
            advertise_addr: "127.0.0.1:4242".into(),
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            default_addr_pool: "10.0.0.0/8".into(),
            subnet_size: 24,
            cert_expiry: Duration::from_secs(3600),
            plaintext,
            certs_dir: dir.join("certificates"),
        }
    }

    #[test]
    fn plan_refuses_a_bad_pool_or_subnet_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), true);
        s.default_addr_pool = "10.0.0.1/8".into();
        let e = Bootstrap::plan(&s).unwrap_err();
        let BootstrapError::AddrPool { source, .. } = &e else {
            panic!("{e}")
        };
        assert!(
            source.to_string().contains("did you mean 10.0.0.0/8"),
            "{e}"
        );
        for size in [7, 30] {
            let mut s = spec(dir.path(), true);
            s.subnet_size = size;
            let e = Bootstrap::plan(&s).unwrap_err();
            assert!(
                matches!(e, BootstrapError::SubnetSize { prefix: 8, .. }),
                "{e}"
            );
        }
    }

    /// With versions set aside, the batch leaves the store exactly as the six separate writes
    /// of earlier `swarmd`s did.
    #[test]
    fn one_batch_makes_the_state_the_separate_writes_made() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Bootstrap::plan(&spec(dir.path(), true)).unwrap();
        let Command::Batch(cmds) = plan.command() else {
            panic!("not a batch")
        };
        let kinds: Vec<String> = cmds
            .iter()
            .map(|c| match c {
                Command::CreateNetwork(n) => format!("net {}", n.name),
                c => format!("{c:?}").split('(').next().unwrap().to_string(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "InitCluster",
                "PutNode",
                "net ingress",
                "net bridge",
                "net host",
                "net none",
                "net shoal_gwbridge"
            ]
        );

        let mut batched = State::default();
        let r = batched.apply(3, &plan.command());
        assert!(r.refusal.is_none(), "{r:?}");
        let mut separate = State::default();
        for (i, c) in cmds.iter().enumerate() {
            let r = separate.apply(3 + i as u64, c);
            assert!(r.refusal.is_none(), "{c:?}: {r:?}");
        }
        for s in [&mut batched, &mut separate] {
            s.cluster.as_mut().unwrap().version = 0;
            s.nodes.values_mut().for_each(|n| n.version = 0);
            s.networks.values_mut().for_each(|n| n.version = 0);
        }
        assert_eq!(batched, separate);
        assert_eq!(batched.networks.len(), 5);
        assert_eq!(
            batched.network("ingress").map(|n| n.subnet.as_str()).ok(),
            Some("10.0.0.0/24")
        );
    }

    #[test]
    fn plan_with_tls_makes_and_saves_the_node_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Bootstrap::plan(&spec(dir.path(), false)).unwrap();
        let creds = plan.transport.credentials().expect("a node certificate");
        let id = creds.identity();
        assert_eq!(id.node_id, plan.node_id);
        assert_eq!(id.cluster_id, plan.cluster_id);
        assert_eq!(id.role, Role::Manager);
        assert!(dir.path().join("certificates").join("node.key").is_file());
        let digest = plan.cluster.digest.clone();
        assert_eq!(plan.node.cert_issuer, digest);
        assert!(plan
            .worker_token()
            .starts_with(&format!("SWMTKN-1-{digest}-")));
    }

    #[tokio::test]
    async fn bootstrap_writes_the_cluster_in_one_entry_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Bootstrap::plan(&spec(dir.path(), true)).unwrap();
        let mut cfg = ManagerConfig::new(
            plan.node_id.clone(),
            plan.raft_id,
            "127.0.0.1:4242".into(),
            dir.path().to_path_buf(),
        );
        cfg.transport = plan.transport.clone();
        let m = Manager::start(cfg).await.unwrap();
        m.bootstrap(&plan).await.unwrap();
        {
            let s = m.store.read();
            let c = s.cluster.as_ref().expect("the cluster");
            assert_eq!(c.id, plan.cluster_id);
            let me = s.node(&plan.node_id).expect("this node");
            assert_eq!(me.raft_id, plan.raft_id);
            assert_eq!(s.networks.len(), 5);
            // Written by one entry (the leader's actors may have updated objects since, never
            // before).
            assert!(me.version >= c.version);
            assert!(s.networks.values().all(|n| n.version >= c.version));
        }
        let again = m.bootstrap(&plan).await.unwrap_err();
        assert!(matches!(again, BootstrapError::Leftover { .. }), "{again}");
        m.shutdown().await;
    }
}
