//! The cluster CA on the managers: node certificates at join and renewal, and root rotation.
//!
//! The root's key is in the cluster object of the raft store (managers only), so whichever
//! manager leads can sign. A cluster made with `--insecure-plaintext` has no CA: nodes get no
//! certificates and these functions hand back empty strings.

use crate::manager::{Manager, ManagerError};
use shoal_proto::model::{Cluster, Command, NodeRole, Secret};
use shoal_security::{ca, NodeIdentity, Role, RootCa};
use std::time::Duration;
use tonic::Status;
use tracing::info;

/// Default validity of node certificates (`--cert-expiry`): 90 days, as Swarm's.
pub const DEFAULT_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Shortest validity accepted: renewal happens at 50–80 % of it.
pub const MIN_CERT_EXPIRY: Duration = Duration::from_secs(10);

/// A node certificate as issued: the chain to present and the roots to trust (PEM), the
/// digest of the issuing root.
#[derive(Debug, Clone, Default)]
pub struct Issued {
    /// Node certificate, then the cross-signed root during a rotation.
    pub chain_pem: String,
    /// Roots every node must trust now.
    pub roots_pem: String,
    /// Digest of the issuing root.
    pub issuer: String,
    /// Expiry, ms since epoch.
    pub not_after_ms: i64,
}

fn role(r: NodeRole) -> Role {
    match r {
        NodeRole::Manager => Role::Manager,
        NodeRole::Worker => Role::Worker,
    }
}

/// Signs `csr` for node `node_id` with `role` with the cluster's signing root. Pure: the caller
/// records it (see [`issued_command`]). `None` for a cluster without a CA.
pub fn issue(
    cluster: &Cluster,
    node_id: &str,
    r: NodeRole,
    csr: &str,
) -> Result<Option<Issued>, Status> {
    if cluster.ca_cert_pem.is_empty() {
        return Ok(None);
    }
    if csr.trim().is_empty() {
        return Err(Status::invalid_argument(
            "this cluster uses mutual TLS: the request must carry a certificate signing request (is this an --insecure-plaintext node?)",
        ));
    }
    let root = RootCa {
        cert_pem: cluster.ca_cert_pem.clone(),
        key_pem: cluster.ca_key_pem.0.clone(),
    };
    let who = NodeIdentity {
        node_id: node_id.to_string(),
        role: role(r),
        cluster_id: cluster.id.clone(),
    };
    let expiry = Duration::from_millis(
        cluster
            .cert_expiry_ms
            .max(MIN_CERT_EXPIRY.as_millis() as u64),
    );
    let cert = root
        .issue(csr, &who, expiry)
        .map_err(|e| Status::invalid_argument(format!("cannot sign the request: {e}")))?;
    let info = ca::cert_info(&cert).map_err(|e| Status::internal(e.to_string()))?;
    let mut chain_pem = cert;
    chain_pem.push_str(&cluster.ca_cross_pem);
    Ok(Some(Issued {
        chain_pem,
        roots_pem: cluster.ca_roots_pem.clone(),
        issuer: cluster.digest.clone(),
        not_after_ms: info.not_after * 1000,
    }))
}

/// The command recording `issued` for `node_id`.
pub fn issued_command(node_id: &str, issued: &Issued) -> Command {
    Command::NodeCertIssued {
        id: node_id.to_string(),
        not_after_ms: issued.not_after_ms,
        issuer: issued.issuer.clone(),
    }
}

/// Fills in a new cluster's CA: a fresh root, its digest in the tokens, `expiry` for nodes.
pub fn init_cluster_ca(c: &mut Cluster, expiry: Duration) -> Result<RootCa, shoal_security::Error> {
    let root = RootCa::generate(&c.id)?;
    c.digest = root.digest()?;
    c.ca_cert_pem = root.cert_pem.clone();
    c.ca_key_pem = Secret(root.key_pem.clone());
    c.ca_roots_pem = root.cert_pem.clone();
    c.ca_cross_pem.clear();
    c.cert_expiry_ms = expiry.as_millis() as u64;
    Ok(root)
}

/// The cluster after starting a root rotation: a new signing root, cross-signed by the current
/// one; both trusted until every node holds a certificate of the new root.
pub fn rotated(c: &Cluster) -> Result<Cluster, Status> {
    if c.ca_cert_pem.is_empty() {
        return Err(Status::failed_precondition(
            "this cluster runs without TLS (--insecure-plaintext): it has no CA to rotate",
        ));
    }
    let old = RootCa {
        cert_pem: c.ca_cert_pem.clone(),
        key_pem: c.ca_key_pem.0.clone(),
    };
    let new = RootCa::generate(&c.id).map_err(|e| Status::internal(e.to_string()))?;
    let cross = old
        .cross_sign(&new)
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut n = c.clone();
    n.digest = new.digest().map_err(|e| Status::internal(e.to_string()))?;
    n.ca_cert_pem = new.cert_pem.clone();
    n.ca_key_pem = Secret(new.key_pem);
    n.ca_cross_pem = cross;
    n.ca_roots_pem = format!("{}{}", c.ca_roots_pem, new.cert_pem);
    Ok(n)
}

/// The number of nodes still holding a certificate of another root than the signing one.
pub fn pending(s: &crate::store::State) -> usize {
    let Some(c) = &s.cluster else { return 0 };
    s.nodes
        .values()
        .filter(|n| n.cert_issuer != c.digest)
        .count()
}

impl Manager {
    /// Signs `csr` for an existing node with its role in the store, and records it.
    pub async fn renew_certificate(&self, node_id: &str, csr: &str) -> Result<Issued, Status> {
        let (cluster, node) = {
            let s = self.store.read();
            (s.cluster.clone(), s.nodes.get(node_id).cloned())
        };
        let cluster =
            cluster.ok_or_else(|| Status::unavailable("cluster is not initialised yet"))?;
        let node = node.ok_or_else(|| {
            Status::permission_denied(format!("node {node_id} is not part of this cluster"))
        })?;
        let Some(issued) = issue(&cluster, node_id, node.role, csr)? else {
            return Ok(Issued::default());
        };
        self.write(issued_command(node_id, &issued))
            .await
            .map_err(write_status)?;
        info!(node.id = %node_id, role = ?node.role, "issued a node certificate");
        self.finish_ca_rotation().await;
        Ok(issued)
    }

    /// Ends a root rotation once no node holds a certificate of an old root: the old roots and
    /// the cross-signed certificate are dropped.
    pub async fn finish_ca_rotation(&self) {
        let c = {
            let s = self.store.read();
            match &s.cluster {
                Some(c) if !c.ca_cross_pem.is_empty() && pending(&s) == 0 => c.clone(),
                _ => return,
            }
        };
        let mut n = c.clone();
        n.ca_cross_pem.clear();
        n.ca_roots_pem = n.ca_cert_pem.clone();
        match self.write(Command::PutCluster(n)).await {
            Ok(r) if r.conflicts == 0 => {
                info!("root CA rotation complete: the old root is no longer trusted")
            }
            _ => {}
        }
    }
}

fn write_status(e: ManagerError) -> Status {
    match e {
        ManagerError::Refused(m) => Status::failed_precondition(m),
        e => Status::unavailable(e.to_string()),
    }
}
