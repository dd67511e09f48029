//! TLS for SIP (RFC 3261 §26.2, RFC 5630): server and client configurations
//! from PEM files, with rustls on the `ring` provider.
//!
//! Incoming TLS needs a certificate chain and key. Outgoing TLS verifies the
//! peer against the CA certificates given (no CA configured: outgoing TLS is
//! refused rather than sent unverified). Peers are named by IP address until
//! RFC 3263 resolution lands, so certificates for tests carry IP SANs.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// PEM material for TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    /// Certificate chain (leaf first) for incoming connections.
    pub cert_chain_pem: Vec<u8>,
    /// The leaf's private key.
    pub key_pem: Vec<u8>,
    /// CA certificates that outgoing connections trust.
    pub ca_pem: Option<Vec<u8>>,
}

impl TlsMaterial {
    /// Reads the PEM files.
    pub fn from_files(cert: &Path, key: &Path, ca: Option<&Path>) -> io::Result<Self> {
        Ok(Self {
            cert_chain_pem: std::fs::read(cert)?,
            key_pem: std::fs::read(key)?,
            ca_pem: ca.map(std::fs::read).transpose()?,
        })
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The acceptor for incoming TLS connections.
pub fn acceptor(m: &TlsMaterial) -> io::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&m.cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad("TLS certificate", e))?;
    if certs.is_empty() {
        return Err(bad("TLS certificate", "no certificate in the PEM file"));
    }
    let key = PrivateKeyDer::from_pem_slice(&m.key_pem).map_err(|e| bad("TLS key", e))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("TLS certificate/key", e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector for outgoing TLS connections, when CA certificates are configured.
pub fn connector(m: &TlsMaterial) -> io::Result<Option<TlsConnector>> {
    let Some(ca) = &m.ca_pem else { return Ok(None) };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.map_err(|e| bad("TLS CA", e))?).map_err(|e| bad("TLS CA", e))?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(TlsConnector::from(Arc::new(config))))
}
