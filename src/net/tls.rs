//! TLS for dials: one rustls client configuration per pool, trusting the webpki roots (what
//! WhatsApp's certificate chains to) plus the certificates of `[server] ca_file` when one is
//! set (a `wasp sim --tls` CA). The same rustls path serves both: only the root store differs.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a CA file cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("it holds no PEM certificate")]
    Empty,
    #[error("it is not PEM: {0}")]
    NotPem(String),
    #[error("a certificate in it cannot be a trust anchor: {0}")]
    BadCertificate(String),
}

/// The client side of TLS, shared by every dial of a pool (cheap to clone).
#[derive(Clone)]
pub struct ClientTls(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// The webpki roots only: what dials to WhatsApp trust. Built once per process.
    pub fn webpki() -> Self {
        static DEFAULT: OnceLock<ClientTls> = OnceLock::new();
        DEFAULT
            .get_or_init(|| ClientTls::with_extra(&[]).unwrap_or_else(|_| Self::bare()))
            .clone()
    }

    /// The webpki roots plus these DER certificates (from `ca_certificates`).
    pub fn with_extra(extra: &[Vec<u8>]) -> Result<Self, CaError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for der in extra {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| CaError::BadCertificate(e.to_string()))?;
        }
        Ok(Self::from_roots(roots))
    }

    /// Webpki roots, in case a build of the default store failed (it cannot: no extras).
    fn bare() -> Self {
        Self::from_roots(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    }

    fn from_roots(roots: RootCertStore) -> Self {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        // The ring provider supports the default versions; the fallback is never taken.
        match config {
            Ok(config) => ClientTls(Arc::new(config)),
            Err(_) => ClientTls(Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth(),
            )),
        }
    }

    /// The rustls configuration every `wss://` dial uses.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.0.clone()
    }
}

/// The certificates of a PEM text, as DER, each checked to be usable as a trust anchor.
pub fn ca_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, CaError> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| CaError::NotPem(e.to_string()))?;
        let mut probe = RootCertStore::empty();
        probe
            .add(cert.clone())
            .map_err(|e| CaError::BadCertificate(e.to_string()))?;
        certs.push(cert.to_vec());
    }
    if certs.is_empty() {
        return Err(CaError::Empty);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_without_certificates_is_refused_in_words() {
        assert!(matches!(ca_certificates(b"hello"), Err(CaError::Empty)));
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(ca_certificates(garbage).is_err());
    }
}
