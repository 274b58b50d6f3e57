//! PEM in and out.

use crate::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in `pem`, in order; at least one.
pub fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Parse(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Parse(format!("{what}: no certificate in it")));
    }
    Ok(certs)
}

/// The private key in `pem`.
pub fn key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::Parse(format!("private key: not a PEM key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem() {
        assert!(certs("", "t").is_err());
        assert!(key("nope").is_err());
    }
}
