//! The cluster's root CA.
//!
//! Made at `init`; its certificate and key live in the cluster object of the raft store, so every
//! manager can sign. Node keys never leave their node: a node sends a certificate signing request
//! and the CA puts its own facts (node id, role, cluster id) in the certificate — nothing the
//! request asks for is copied.

use crate::identity::{CertInfo, NodeIdentity};
use crate::{pem, Error, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a root CA is valid (SwarmKit's: 20 years).
pub const ROOT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Node certificates start this long before they are issued, so a node whose clock is a little
/// behind the manager's accepts them.
pub const BACKDATE: Duration = Duration::from_secs(300);

/// A root CA: certificate and private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct RootCa {
    /// Self-signed CA certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &self.digest().unwrap_or_default())
            .finish_non_exhaustive()
    }
}

/// The digest join tokens carry: the first 128 bits of SHA-256 over the CA certificate (DER),
/// as 32 hex digits.
pub fn ca_digest(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(der)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f; // positive
    SerialNumber::from_slice(&b)
}

impl RootCa {
    /// A new root CA for `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<RootCa> {
        let key = KeyPair::generate()?;
        let tag: u32 = rand::random();
        let now = OffsetDateTime::now_utc();
        let params = root_params(
            &format!("swarm-ca-{tag:08x}"),
            cluster_id,
            now - BACKDATE,
            now + ROOT_VALIDITY,
        );
        let cert = params.self_signed(&key)?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The certificate as DER.
    pub fn der(&self) -> Result<Vec<u8>> {
        Ok(pem::certs(&self.cert_pem, "root CA")?.remove(0).to_vec())
    }

    /// The join tokens' digest of this CA.
    pub fn digest(&self) -> Result<String> {
        Ok(ca_digest(&self.der()?))
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    /// Signs `csr_pem` (a PKCS#10 request, whose signature is checked) as the certificate of
    /// `who`, valid for `validity` from now. Returns the certificate as PEM.
    pub fn issue(&self, csr_pem: &str, who: &NodeIdentity, validity: Duration) -> Result<String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| Error::Parse(format!("certificate signing request: {e}")))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, who.node_id.as_str());
        dn.push(DnType::OrganizationalUnitName, who.role.ou());
        dn.push(DnType::OrganizationName, who.cluster_id.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::DnsName(
            who.role
                .san()
                .try_into()
                .map_err(|e: rcgen::Error| Error::Cert(e))?,
        )];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;
        params.serial_number = Some(serial());
        let cert = params.signed_by(&csr.public_key, &self.issuer()?)?;
        Ok(cert.pem())
    }

    /// `new`'s certificate signed by this (older) CA: nodes that trust only this CA accept
    /// certificates issued by `new` when the holder presents this after its own.
    pub fn cross_sign(&self, new: &RootCa) -> Result<String> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let der = new.der()?;
        let (_, cert) =
            X509Certificate::from_der(&der).map_err(|e| Error::Parse(format!("root CA: {e}")))?;
        let attr = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
            it.next()
                .and_then(|a| a.as_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let cn = attr(&mut cert.subject().iter_common_name());
        let org = attr(&mut cert.subject().iter_organization());
        let v = cert.validity();
        let params = root_params(
            &cn,
            &org,
            v.not_before.to_datetime(),
            v.not_after.to_datetime(),
        );
        let new_key = KeyPair::from_pem(&new.key_pem)?;
        Ok(params.signed_by(&new_key, &self.issuer()?)?.pem())
    }
}

/// A root CA's certificate parameters.
fn root_params(
    cn: &str,
    cluster_id: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, cluster_id);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(serial());
    params
}

/// A node key made on the node; only its signing request leaves it.
pub struct NodeKeyPair(KeyPair);

impl NodeKeyPair {
    /// A fresh ECDSA P-256 key.
    pub fn generate() -> Result<NodeKeyPair> {
        Ok(NodeKeyPair(KeyPair::generate()?))
    }

    /// The key as PEM (PKCS#8).
    pub fn pem(&self) -> String {
        self.0.serialize_pem()
    }

    /// A certificate signing request for this key.
    pub fn csr(&self) -> Result<String> {
        Ok(CertificateParams::default()
            .serialize_request(&self.0)?
            .pem()?)
    }
}

/// The DER of the subject and of the public key (`SubjectPublicKeyInfo`) of the first
/// certificate in `pem`: what Docker shows of the root CA that issues node certificates as
/// `TLSInfo.CertIssuerSubject` and `CertIssuerPublicKey`.
pub fn subject_and_key(pem: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = &pem::certs(pem, "root CA certificate")?[0];
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| crate::Error::Parse(format!("root CA certificate: {e}")))?;
    Ok((
        cert.subject().as_raw().to_vec(),
        cert.public_key().raw.to_vec(),
    ))
}

/// Reads the holder and validity of the first certificate in `chain_pem`.
pub fn cert_info(chain_pem: &str) -> Result<CertInfo> {
    CertInfo::parse(&pem::certs(chain_pem, "node certificate")?[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    fn who(role: Role) -> NodeIdentity {
        NodeIdentity {
            node_id: "n1abc".into(),
            role,
            cluster_id: "c1".into(),
        }
    }

    #[test]
    fn issues_what_the_ca_decides() {
        let ca = RootCa::generate("c1").unwrap();
        assert_eq!(ca.digest().unwrap().len(), 32);
        let key = NodeKeyPair::generate().unwrap();
        let cert = ca
            .issue(
                &key.csr().unwrap(),
                &who(Role::Worker),
                Duration::from_secs(60),
            )
            .unwrap();
        let info = cert_info(&cert).unwrap();
        assert_eq!(info.identity, who(Role::Worker));
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!((info.not_after - now - 60).abs() <= 2, "{info:?}");
        assert!(info.not_before < now);
    }

    #[test]
    fn a_roots_subject_and_key_are_its_der() {
        let ca = RootCa::generate("c1").unwrap();
        let (subject, key) = subject_and_key(&ca.cert_pem).unwrap();
        // SEQUENCE { SET { … CN … } } and SEQUENCE { AlgorithmIdentifier, BIT STRING }.
        assert_eq!((subject[0], key[0]), (0x30, 0x30));
        let der = ca.der().unwrap();
        let find = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(find(&subject) && find(&key));
        assert!(subject_and_key("not pem").is_err());
    }

    #[test]
    fn refuses_a_tampered_request() {
        let ca = RootCa::generate("c1").unwrap();
        let csr = NodeKeyPair::generate().unwrap().csr().unwrap();
        let mut lines: Vec<String> = csr.lines().map(str::to_string).collect();
        // Flip a character in the body: the signature (or the DER) no longer checks out.
        let l = &mut lines[3];
        let c = if l.starts_with('A') { "B" } else { "A" };
        l.replace_range(0..1, c);
        let bad = lines.join("\n");
        assert!(ca
            .issue(&bad, &who(Role::Manager), Duration::from_secs(60))
            .is_err());
        assert!(ca
            .issue("garbage", &who(Role::Manager), Duration::from_secs(60))
            .is_err());
    }
}
