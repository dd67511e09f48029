//! TLS for SIP (RFC 3261 §26.2, RFC 5630): server and client configurations
//! from PEM files, with rustls on the `ring` provider.
//!
//! Incoming TLS needs a certificate chain and key. Outgoing TLS verifies the
//! peer against the CA certificates given (no CA configured: outgoing TLS is
//! refused rather than sent unverified). Peers are named by IP address until
//! RFC 3263 resolution lands, so certificates for tests carry IP SANs.
//!
//! Hardening (`module tls`):
//! - `min_version`: TLS 1.2 (the default) or 1.3. Nothing older is ever
//!   spoken: rustls implements neither SSL nor TLS 1.0/1.1.
//! - `cipher_suites`: the suites offered and accepted, by their IANA names
//!   (`TLS13_AES_256_GCM_SHA384 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`);
//!   by default rustls's, all AEAD with forward secrecy.
//! - `require_certificate`: incoming connections must present a certificate
//!   that `ca_list` vouches for (mutual TLS for trunks and peers); outgoing
//!   connections present this proxy's certificate whenever one is set.
//! - The certificate and key are read again when their files change (at
//!   most once a second, on the next handshake): a renewed certificate
//!   serves new connections without a restart; a broken one is logged and
//!   the old one kept.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The lowest TLS version spoken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

impl MinVersion {
    /// `"1.2"` or `"1.3"` (also `TLSv1.2`, `TLSv1.3+` as Kamailio writes them).
    pub fn parse(s: &str) -> Result<MinVersion, String> {
        let v =
            s.trim().trim_start_matches("TLSv").trim_start_matches("tlsv").trim_end_matches('+');
        match v {
            "1.2" => Ok(MinVersion::Tls12),
            "1.3" => Ok(MinVersion::Tls13),
            "1.0" | "1.1" => Err(format!("`{s}`: TLS before 1.2 is not spoken (RFC 8996)")),
            _ => Err(format!("`{s}`: expected \"1.2\" or \"1.3\"")),
        }
    }

    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => rustls::ALL_VERSIONS,
            MinVersion::Tls13 => &TLS13_ONLY,
        }
    }
}

/// How TLS is offered and accepted (`module tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    pub min_version: MinVersion,
    /// Cipher suite names; empty: the provider's defaults.
    pub cipher_suites: Vec<String>,
    /// Incoming connections must present a certificate `ca_list` vouches for.
    pub require_certificate: bool,
}

/// PEM material for TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    /// Certificate chain (leaf first) for incoming connections.
    pub cert_chain_pem: Vec<u8>,
    /// The leaf's private key.
    pub key_pem: Vec<u8>,
    /// CA certificates that outgoing connections trust (and that vouch
    /// for clients under `require_certificate`).
    pub ca_pem: Option<Vec<u8>>,
    /// Where the certificate and key came from, to read them again when
    /// they change.
    pub files: Option<(PathBuf, PathBuf)>,
    pub policy: TlsPolicy,
}

impl TlsMaterial {
    /// Reads the PEM files.
    pub fn from_files(cert: &Path, key: &Path, ca: Option<&Path>) -> io::Result<Self> {
        Ok(Self {
            cert_chain_pem: std::fs::read(cert)?,
            key_pem: std::fs::read(key)?,
            ca_pem: ca.map(std::fs::read).transpose()?,
            files: Some((cert.to_path_buf(), key.to_path_buf())),
            policy: TlsPolicy::default(),
        })
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

/// The cipher suites rustls's `ring` provider has, by name.
pub fn suite_names() -> Vec<String> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}

/// The `ring` provider with the policy's cipher suites.
fn provider(policy: &TlsPolicy) -> io::Result<Arc<CryptoProvider>> {
    let mut p = rustls::crypto::ring::default_provider();
    if !policy.cipher_suites.is_empty() {
        for name in &policy.cipher_suites {
            if !p.cipher_suites.iter().any(|s| format!("{:?}", s.suite()) == *name) {
                return Err(bad(
                    "TLS cipher_suites",
                    format!("`{name}` is not one of {}", suite_names().join(", ")),
                ));
            }
        }
        p.cipher_suites.retain(|s| policy.cipher_suites.contains(&format!("{:?}", s.suite())));
    }
    let usable = p.cipher_suites.iter().any(|s| match policy.min_version {
        MinVersion::Tls13 => s.version() == &rustls::version::TLS13,
        MinVersion::Tls12 => true,
    });
    if !usable {
        return Err(bad("TLS cipher_suites", "no suite left for the TLS versions allowed"));
    }
    Ok(Arc::new(p))
}

fn certs(pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad("TLS certificate", e))?;
    if certs.is_empty() {
        return Err(bad("TLS certificate", "no certificate in the PEM file"));
    }
    Ok(certs)
}

fn certified_key(p: &CryptoProvider, cert_pem: &[u8], key_pem: &[u8]) -> io::Result<CertifiedKey> {
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad("TLS key", e))?;
    let signing = p.key_provider.load_private_key(key).map_err(|e| bad("TLS key", e))?;
    let ck = CertifiedKey::new(certs(cert_pem)?, signing);
    ck.keys_match().map_err(|e| bad("TLS certificate/key", e))?;
    Ok(ck)
}

fn roots(ca: &[u8]) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.map_err(|e| bad("TLS CA", e))?).map_err(|e| bad("TLS CA", e))?;
    }
    Ok(roots)
}

/// How often the certificate files are looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// The server certificate, read again when its files change.
#[derive(Debug)]
struct Reloading {
    provider: Arc<CryptoProvider>,
    files: Option<(PathBuf, PathBuf)>,
    state: Mutex<ReloadState>,
}

#[derive(Debug)]
struct ReloadState {
    current: Arc<CertifiedKey>,
    checked: Instant,
    stamps: (Option<SystemTime>, Option<SystemTime>),
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Reloading {
    fn refresh(&self, state: &mut ReloadState) {
        let Some((cert, key)) = &self.files else { return };
        let stamps = (mtime(cert), mtime(key));
        if stamps == state.stamps {
            return;
        }
        let read = std::fs::read(cert)
            .and_then(|c| std::fs::read(key).map(|k| (c, k)))
            .and_then(|(c, k)| certified_key(&self.provider, &c, &k));
        match read {
            Ok(ck) => {
                tracing::info!(certificate = %cert.display(), "TLS certificate reloaded");
                state.current = Arc::new(ck);
                state.stamps = stamps;
            }
            // A half-written pair (the certificate saved, not yet the key)
            // fails too: it is read again on the next check.
            Err(e) => tracing::warn!("TLS certificate not reloaded, the old one serves: {e}"),
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            self.refresh(&mut state);
        }
        Some(Arc::clone(&state.current))
    }
}

/// The acceptor for incoming TLS connections.
pub fn acceptor(m: &TlsMaterial) -> io::Result<TlsAcceptor> {
    let provider = provider(&m.policy)?;
    let current = certified_key(&provider, &m.cert_chain_pem, &m.key_pem)?;
    let stamps = m.files.as_ref().map_or((None, None), |(c, k)| (mtime(c), mtime(k)));
    let resolver = Reloading {
        provider: Arc::clone(&provider),
        files: m.files.clone(),
        state: Mutex::new(ReloadState {
            current: Arc::new(current),
            checked: Instant::now(),
            stamps,
        }),
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(m.policy.min_version.versions())
        .map_err(|e| bad("TLS", e))?;
    let builder = if m.policy.require_certificate {
        let ca = m.ca_pem.as_deref().ok_or_else(|| {
            bad("TLS require_certificate", "needs `ca_list`: the CAs that vouch for clients")
        })?;
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(ca)?),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| bad("TLS ca_list", e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_cert_resolver(Arc::new(resolver));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector for outgoing TLS connections, when CA certificates are
/// configured. It presents this proxy's certificate when one is set (a
/// peer requiring client certificates accepts it).
pub fn connector(m: &TlsMaterial) -> io::Result<Option<TlsConnector>> {
    let Some(ca) = &m.ca_pem else { return Ok(None) };
    let provider = provider(&m.policy)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(m.policy.min_version.versions())
        .map_err(|e| bad("TLS", e))?
        .with_root_certificates(roots(ca)?);
    let config = if m.cert_chain_pem.is_empty() {
        builder.with_no_client_auth()
    } else {
        let key = PrivateKeyDer::from_pem_slice(&m.key_pem).map_err(|e| bad("TLS key", e))?;
        builder
            .with_client_auth_cert(certs(&m.cert_chain_pem)?, key)
            .map_err(|e| bad("TLS certificate/key", e))?
    };
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_suites_are_checked() {
        assert_eq!(MinVersion::parse("1.3"), Ok(MinVersion::Tls13));
        assert_eq!(MinVersion::parse("TLSv1.2+"), Ok(MinVersion::Tls12));
        assert!(MinVersion::parse("1.0").unwrap_err().contains("RFC 8996"));
        let names = suite_names();
        assert!(names.contains(&"TLS13_AES_256_GCM_SHA384".to_string()), "{names:?}");
        let only12 = TlsPolicy {
            min_version: MinVersion::Tls13,
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into()],
            require_certificate: false,
        };
        assert!(provider(&only12).is_err(), "a TLS 1.2 suite alone cannot serve TLS 1.3");
        let unknown = TlsPolicy { cipher_suites: vec!["RC4_MD5".into()], ..TlsPolicy::default() };
        assert!(provider(&unknown).unwrap_err().to_string().contains("RC4_MD5"));
    }
}
