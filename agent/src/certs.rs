//! Keeping the node's certificate current: renewed before it expires (at a random point
//! between 50 % and 80 % of its life, as SwarmKit does), when the node's role changes (a
//! promoted worker needs a manager certificate for Raft), and when the cluster's signing root
//! changes (root rotation). Each renewal makes a new key; the new certificate is used for the
//! next connection and handshake, while open connections — the session among them — stay up.

use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_proto::pb::{self, NodeRole};
use shoal_security::{Credentials, NodeKeyPair, Role};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

/// What the managers last said that bears on the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// The node's role.
    pub role: Option<NodeRole>,
    /// Digest of the root that signs now.
    pub ca_digest: String,
}

/// When the current certificate should be renewed (Unix ms), drawn once per certificate.
#[derive(Debug, Default)]
pub struct Schedule {
    for_version: u64,
    at_ms: i64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Schedule {
    /// The renewal time of `creds`' certificate.
    pub fn at(&mut self, creds: &Credentials) -> i64 {
        let v = creds.version();
        if v != self.for_version || self.at_ms == 0 {
            let info = creds.current().info.clone();
            // not_before is backdated; the life counted is from issue to expiry.
            let issued = (info.not_before + shoal_security::ca::BACKDATE.as_secs() as i64) * 1000;
            let end = info.not_after * 1000;
            let life = (end - issued).max(0) as f64;
            let frac: f64 = 0.5 + 0.3 * rand::random::<f64>();
            self.at_ms = issued + (life * frac) as i64;
            self.for_version = v;
        }
        self.at_ms
    }
}

/// Why the certificate must be renewed now, if it must; `issuer` is the digest of the root
/// that signed it, as far as this node knows.
pub fn due(
    creds: &Credentials,
    sched: &mut Schedule,
    cluster: &Cluster,
    issuer: &str,
) -> Option<String> {
    let id = creds.identity();
    let want = match cluster.role {
        Some(NodeRole::Manager) => Some(Role::Manager),
        Some(NodeRole::Worker) => Some(Role::Worker),
        None => None,
    };
    if let Some(want) = want {
        if want != id.role {
            return Some(format!("the node is now a {want}"));
        }
    }
    if !cluster.ca_digest.is_empty() && !issuer.is_empty() && cluster.ca_digest != issuer {
        return Some("the cluster's root CA was rotated".into());
    }
    if now_ms() >= sched.at(creds) {
        return Some("it nears expiry".into());
    }
    None
}

/// Time until the scheduled renewal.
pub fn wait(creds: &Credentials, sched: &mut Schedule) -> Duration {
    Duration::from_millis((sched.at(creds) - now_ms()).max(0) as u64)
}

/// Why a renewal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Making the key or request, or installing the certificate, failed.
    #[error(transparent)]
    Credentials(#[from] shoal_security::Error),
    /// The managers refused the request.
    #[error("{}", .0.message())]
    Refused(tonic::Status),
    /// The managers answered without a certificate.
    #[error("the managers issued no certificate (a cluster without TLS?)")]
    NoCertificate,
}

/// Asks the managers (for at most `timeout`) for a new certificate for a new key and installs
/// it. Returns the digest of the issuing root.
pub async fn renew(
    client: &mut DispatcherClient<Channel>,
    creds: &Arc<Credentials>,
    node_id: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let key = NodeKeyPair::generate()?;
    let mut req = tonic::Request::new(pb::RenewRequest {
        node_id: node_id.to_string(),
        csr: key.csr()?,
    });
    req.set_timeout(timeout);
    let r = client
        .renew_certificate(req)
        .await
        .map_err(Error::Refused)?
        .into_inner();
    if r.certificate.is_empty() {
        return Err(Error::NoCertificate);
    }
    // The trusted roots come from the session alone: a session message may already have
    // brought newer ones (the end of a root rotation) than this answer carries.
    creds.replace(r.certificate, Some(key.pem()), None)?;
    Ok(r.issuer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_security::{NodeIdentity, RootCa};

    fn creds(role: Role, secs: u64) -> (RootCa, Arc<Credentials>) {
        let ca = RootCa::generate("c").unwrap();
        let key = NodeKeyPair::generate().unwrap();
        let who = NodeIdentity {
            node_id: "n".into(),
            role,
            cluster_id: "c".into(),
        };
        let cert = ca
            .issue(&key.csr().unwrap(), &who, Duration::from_secs(secs))
            .unwrap();
        let c = Credentials::new(cert, key.pem(), ca.cert_pem.clone(), None).unwrap();
        (ca, c)
    }

    #[test]
    fn renewal_between_half_and_four_fifths_of_the_life() {
        let (_, c) = creds(Role::Worker, 1000);
        let start = now_ms();
        for _ in 0..20 {
            let at = Schedule::default().at(&c);
            let off = at - start;
            assert!((490_000..=810_000).contains(&off), "{off}");
        }
        let mut s = Schedule::default();
        let cl = Cluster {
            role: Some(NodeRole::Worker),
            ca_digest: "d".into(),
        };
        assert_eq!(due(&c, &mut s, &cl, "d"), None);
        assert!(wait(&c, &mut s) > Duration::from_secs(400));
    }

    #[test]
    fn role_and_root_changes_make_it_due() {
        let (_, c) = creds(Role::Worker, 1000);
        let mut s = Schedule::default();
        let promoted = Cluster {
            role: Some(NodeRole::Manager),
            ca_digest: "d".into(),
        };
        assert!(due(&c, &mut s, &promoted, "d").unwrap().contains("manager"));
        let rotated = Cluster {
            role: Some(NodeRole::Worker),
            ca_digest: "new".into(),
        };
        assert!(due(&c, &mut s, &rotated, "old")
            .unwrap()
            .contains("rotated"));
        // A certificate with little life left is due.
        let (_, short) = creds(Role::Worker, 0);
        assert!(
            due(&short, &mut Schedule::default(), &Cluster::default(), "")
                .unwrap()
                .contains("expiry")
        );
    }
}
