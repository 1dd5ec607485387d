//! `wasp sim --tls`: a certificate authority made at start (rcgen), a server certificate for
//! `localhost` and `127.0.0.1` issued by it, and the rustls acceptor serving `wss://` with
//! them. Clients trust the CA through `[server] ca_file` (its PEM is written to a file).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Why the simulator's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the simulator's TLS: {0}")]
pub struct TlsSetupError(String);

/// The simulator's TLS: its acceptor and the PEM of the CA a client must trust.
#[derive(Clone)]
pub struct SimTls {
    pub acceptor: TlsAcceptor,
    /// The CA certificate (PEM): what `[server] ca_file` points at.
    pub ca_pem: String,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimTls { .. }")
    }
}

fn err(e: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError(e.to_string())
}

impl SimTls {
    /// A fresh CA and server certificate (valid for `localhost` and `127.0.0.1`).
    pub fn generate() -> Result<Self, TlsSetupError> {
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "wasp sim test CA");
        let ca =
            CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(err)?;
        leaf.distinguished_name.push(DnType::CommonName, "wasp sim");
        let leaf_key = KeyPair::generate().map_err(err)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &ca).map_err(err)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca.der().clone()], key)
        .map_err(err)?;
        Ok(SimTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: ca.pem(),
        })
    }
}

/// A connection to the simulator: plain TCP (`ws://`) or TLS over TCP (`wss://`).
pub enum SimStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_flush(cx),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
