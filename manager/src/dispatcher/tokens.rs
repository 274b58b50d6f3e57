//! Join tokens on the managers: the role a token grants in this cluster (the format itself is
//! `shoal_security::token`).

use shoal_proto::model::{Cluster, NodeRole};

// The token format moved to `shoal_security::token` (joining nodes parse tokens too); these
// re-exports keep `shoal_manager::dispatcher::{parse_token, cluster_digest, TokenError}` working.
pub use shoal_security::token::{cluster_digest, parse_token, TokenError};

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
