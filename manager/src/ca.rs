//! The cluster CA on the managers: node certificates at join and renewal, and root rotation.
//!
//! The root's key is in the cluster object of the raft store (managers only), so whichever
//! manager leads can sign. A cluster made with `--insecure-plaintext` has no CA: nodes get no
//! certificates and these functions hand back empty strings.

use crate::manager::{Manager, ManagerError};
use shoal_proto::model::{Cluster, Command, NodeRole, Secret};
use shoal_security::{ca, NodeIdentity, Role, RootCa};
use std::time::Duration;
use tracing::info;

// The two validities below are not manager timings (`ManagerConfig`): they are the cluster's
// policy, chosen at `init` (`--cert-expiry`) and kept in the cluster object so every manager
// signs alike.

/// Default validity of node certificates (`--cert-expiry`): 90 days, as Swarm's.
pub const DEFAULT_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Shortest validity accepted: renewal happens at 50–80 % of it.
pub const MIN_CERT_EXPIRY: Duration = Duration::from_secs(10);

/// Why the CA could not sign or rotate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A TLS cluster got a request without a certificate signing request.
    #[error("this cluster uses mutual TLS: the request must carry a certificate signing request (is this an --insecure-plaintext node?)")]
    NoCsr,
    /// The signing request is bad.
    #[error("cannot sign the request: {0}")]
    Sign(shoal_security::Error),
    /// A cluster made with `--insecure-plaintext` has no CA.
    #[error("this cluster runs without TLS (--insecure-plaintext): it has no CA to rotate")]
    NoCa,
    /// A renewal for a node the store does not know.
    #[error("node {0} is not part of this cluster")]
    UnknownNode(String),
    /// Generating, reading or cross-signing a certificate failed.
    #[error("{0}")]
    Internal(#[from] shoal_security::Error),
}

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
) -> Result<Option<Issued>, CaError> {
    if cluster.ca_cert_pem.is_empty() {
        return Ok(None);
    }
    if csr.trim().is_empty() {
        return Err(CaError::NoCsr);
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
    let cert = root.issue(csr, &who, expiry).map_err(CaError::Sign)?;
    let info = ca::cert_info(&cert)?;
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
        id: node_id.to_string().into(),
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
pub fn rotated(c: &Cluster) -> Result<Cluster, CaError> {
    if c.ca_cert_pem.is_empty() {
        return Err(CaError::NoCa);
    }
    let old = RootCa {
        cert_pem: c.ca_cert_pem.clone(),
        key_pem: c.ca_key_pem.0.clone(),
    };
    let new = RootCa::generate(&c.id)?;
    let cross = old.cross_sign(&new)?;
    let mut n = c.clone();
    n.digest = new.digest()?;
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
    pub async fn renew_certificate(
        &self,
        node_id: &str,
        csr: &str,
    ) -> Result<Issued, ManagerError> {
        let (cluster, node) = {
            let s = self.store.read();
            (s.cluster.clone(), s.nodes.get(node_id).cloned())
        };
        let cluster = cluster.ok_or(ManagerError::NotInitialised)?;
        let node = node.ok_or_else(|| CaError::UnknownNode(node_id.to_string()))?;
        let Some(issued) = issue(&cluster, node_id, node.role, csr)? else {
            return Ok(Issued::default());
        };
        self.write(issued_command(node_id, &issued)).await?;
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
        // A conflict or a failure leaves the rotation to the next renewal or removal.
        if self.write(Command::PutCluster(n)).await.is_ok() {
            info!("root CA rotation complete: the old root is no longer trusted")
        }
    }
}
