//! Join tokens: `SWMTKN-1-<cluster digest>-<secret>`, one secret per role.

use shoal_proto::model::{Cluster, NodeRole};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token given.
    #[error("a join token is required: run `swarmctl swarm join-token worker` (or manager) on a manager and pass it with --token")]
    Missing,
    /// Not of the `SWMTKN-1-…` form.
    #[error("malformed join token: expected SWMTKN-1-<digest>-<secret>")]
    Malformed,
    /// The digest names another cluster.
    #[error(
        "the join token belongs to another cluster (its digest does not match this cluster's)"
    )]
    WrongCluster,
    /// Right cluster, unknown secret.
    #[error("invalid join token: it was rotated or mistyped; get the current one with `swarmctl swarm join-token`")]
    Invalid,
}

/// Splits a token into digest and secret.
pub fn parse_token(token: &str) -> Result<(&str, &str), TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    let rest = token
        .strip_prefix("SWMTKN-1-")
        .ok_or(TokenError::Malformed)?;
    let (digest, secret) = rest.split_once('-').ok_or(TokenError::Malformed)?;
    if digest.is_empty() || secret.is_empty() || secret.contains('-') {
        return Err(TokenError::Malformed);
    }
    Ok((digest, secret))
}

/// The role a token grants in `cluster`.
pub fn check_token(cluster: &Cluster, token: &str) -> Result<NodeRole, TokenError> {
    let (digest, secret) = parse_token(token)?;
    if digest != cluster.digest {
        return Err(TokenError::WrongCluster);
    }
    // Constant-time enough for equal-length random secrets; TLS-level auth comes with the CA.
    if secret == cluster.manager_secret {
        Ok(NodeRole::Manager)
    } else if secret == cluster.worker_secret {
        Ok(NodeRole::Worker)
    } else {
        Err(TokenError::Invalid)
    }
}

/// The digest half of a cluster's join tokens: 32 hex digits of SHA-256 over `seed` (the
/// cluster id now; the root CA certificate once the cluster has one).
pub fn cluster_digest(seed: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(seed)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let c = Cluster {
            digest: "d1".into(),
            worker_secret: "w".into(),
            manager_secret: "m".into(),
            ..Default::default()
        };
        assert_eq!(
            check_token(&c, &c.token(NodeRole::Worker)),
            Ok(NodeRole::Worker)
        );
        assert_eq!(
            check_token(&c, &c.token(NodeRole::Manager)),
            Ok(NodeRole::Manager)
        );
        assert_eq!(check_token(&c, ""), Err(TokenError::Missing));
        assert_eq!(check_token(&c, "hello"), Err(TokenError::Malformed));
        assert_eq!(
            check_token(&c, "SWMTKN-1-d2-w"),
            Err(TokenError::WrongCluster)
        );
        assert_eq!(check_token(&c, "SWMTKN-1-d1-x"), Err(TokenError::Invalid));
    }
}
