//! The API listener's TLS: the server certificate, client certificates required and verified
//! against the configured client CAs and CRLs (webpki), TLS 1.2 and 1.3 only. The whole
//! configuration is rebuilt on SIGHUP; a rebuild that fails keeps the running one.

use std::sync::{Arc, RwLock};

use der::{Decode, Encode};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Server};

/// The current TLS configuration, swapped whole on reload.
#[derive(Debug)]
pub struct Tls {
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn new(server: &Server) -> Result<Self, ConfigError> {
        Ok(Tls {
            current: RwLock::new(build(server)?),
        })
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads certificates, client CAs and CRLs.
    pub fn reload(&self, server: &Server) -> Result<(), ConfigError> {
        let fresh = build(server)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}

fn read(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))
}

fn certificates(
    key: &str,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(certs)
}

fn build(server: &Server) -> Result<Arc<ServerConfig>, ConfigError> {
    let chain = certificates("server.certificate", &server.certificate)?;
    let key_pem = zeroize::Zeroizing::new(read("server.key", &server.key)?);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| ConfigError::new("server.key", format!("{}: {e}", server.key.display())))?;
    let mut roots = RootCertStore::empty();
    for path in &server.client_ca {
        for cert in certificates("server.client_ca", path)? {
            roots.add(cert).map_err(|e| {
                ConfigError::new("server.client_ca", format!("{}: {e}", path.display()))
            })?;
        }
    }
    let mut crls = Vec::new();
    for path in &server.client_crl {
        let bytes = read("server.client_crl", path)?;
        if bytes.starts_with(b"-----BEGIN") {
            for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
                crls.push(crl.map_err(|e| {
                    ConfigError::new("server.client_crl", format!("{}: {e}", path.display()))
                })?);
            }
        } else {
            crls.push(CertificateRevocationListDer::from(bytes));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Revocation is checked for the client's own certificate against the CRLs of its issuer;
    // a CA without a configured CRL is not checked (docs/operations.md).
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| ConfigError::new("server.client_crl", e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::new("server", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ConfigError::new("server.key", e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The authenticated client of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// SHA-256 (hex) of the client certificate's SubjectPublicKeyInfo.
    pub fingerprint: String,
    pub subject: String,
}

impl Peer {
    pub fn from_certificate(der: &[u8]) -> Option<Peer> {
        let cert = x509_cert::Certificate::from_der(der).ok()?;
        let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
        Some(Peer {
            fingerprint: hex::encode(Sha256::digest(spki)),
            subject: cert.tbs_certificate.subject.to_string(),
        })
    }
}

/// The SPKI fingerprint of the first certificate in a PEM text (for registering applications).
pub fn fingerprint_pem(pem: &str) -> Result<String, String> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| "no PEM certificate".to_owned())?
        .map_err(|e| e.to_string())?;
    Peer::from_certificate(&der)
        .map(|p| p.fingerprint)
        .ok_or_else(|| "the certificate is not valid DER X.509".to_owned())
}
