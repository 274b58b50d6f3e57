//! Join tokens: `SWMTKN-1-<cluster digest>-<secret>`, one secret per role (as Docker Swarm's).
//!
//! The digest names the cluster's root CA (see [`crate::ca_digest`]), so a joining node can
//! check the CA a manager hands it before trusting that manager; clusters without a CA
//! (`--insecure-plaintext`) use [`cluster_digest`] of their id instead. Managers check the
//! secret against the cluster object (`shoal_manager::dispatcher::check_token`); joining nodes
//! only parse it here.

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

/// The digest half of the join tokens of a cluster without a CA: 32 hex digits of SHA-256 over
/// `seed` (the cluster id), computed as [`crate::ca_digest`] computes a root CA's.
pub fn cluster_digest(seed: &[u8]) -> String {
    crate::ca_digest(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_digest_and_secret() {
        assert_eq!(parse_token(" SWMTKN-1-d1-s1\n"), Ok(("d1", "s1")));
        assert_eq!(parse_token(""), Err(TokenError::Missing));
        assert_eq!(parse_token("hello"), Err(TokenError::Malformed));
        assert_eq!(parse_token("SWMTKN-1-d1"), Err(TokenError::Malformed));
        assert_eq!(parse_token("SWMTKN-1--s"), Err(TokenError::Malformed));
        assert_eq!(parse_token("SWMTKN-1-d-s-x"), Err(TokenError::Malformed));
    }

    #[test]
    fn cluster_digest_is_32_hex_digits_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(cluster_digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
    }
}
