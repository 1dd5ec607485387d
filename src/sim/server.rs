//! The simulator's listening side: accept WebSockets on `/ws/chat` (404 elsewhere), run the
//! Noise responder with the simulator's certificate chain (counting dials with the `ED`
//! routing prefix), read the client's payload, refuse an old version (405) or an unknown
//! device name (409), and hand the connection to pairing (registration) or login.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::conn::Conn;
use super::registry::{Registry, write_atomic};
use super::stats::ErrorKind;
use super::tls::SimStream;
use crate::net::conn::{ConnError, server_handshake};
use crate::net::transport::ws_config;
use crate::wa::creds::KeyPair;
use crate::wa::device;
use crate::wa::frame::FrameError;
use crate::wa::node::Node;
use crate::wa::payload::{self, ClientHello, ClientVersion};
use crate::wa::proto::payload::{ClientPayload, DeviceProps};
use crate::wa::stanza;

/// Where a 405 says the refused client was served (a data-centre code, as on the real
/// server's failures).
const FAILURE_LOCATION: &str = "lla";

/// How long a client may take to upgrade to a WebSocket and finish the Noise handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(20);

/// What every connection task shares.
pub struct Core {
    registry: Mutex<Registry>,
    /// The server's static noise key pair.
    pub server_key: KeyPair,
    pub cert_chain: Vec<u8>,
    pub connections: AtomicU64,
    next_conn: AtomicU64,
    /// Serializes state-file writes so a later snapshot is never overwritten by an earlier one.
    saving: tokio::sync::Mutex<()>,
    pub tasks: TaskTracker,
}

impl Core {
    pub fn new(registry: Registry, cert_chain: Vec<u8>) -> Self {
        let server_key = KeyPair::from_private(registry.keys().server.clone());
        Core {
            registry: Mutex::new(registry),
            server_key,
            cert_chain,
            connections: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
            saving: tokio::sync::Mutex::new(()),
            tasks: TaskTracker::new(),
        }
    }

    /// The registry. Its methods are single steps, so a lock poisoned by a panicking holder
    /// still guards consistent data.
    pub fn reg(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn error(&self, kind: ErrorKind) {
        self.reg().stats.error(kind);
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes the state file (when there is one) with the registry as it is now, off the
    /// registry lock and off the async workers. A failure is logged and counted.
    pub async fn save(&self) {
        let _turn = self.saving.lock().await;
        let Some((path, body)) = self.reg().snapshot() else {
            return;
        };
        let shown = path.display().to_string();
        let written = tokio::task::spawn_blocking(move || write_atomic(&path, &body)).await;
        if let Err(e) = written
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            warn!(file = %shown, error = %e, "could not save the simulator state");
            self.error(ErrorKind::StateSave);
        }
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Accepts connections until cancelled; each runs in its own tracked task.
pub async fn accept_loop(
    listener: TcpListener,
    core: Arc<Core>,
    tls: Option<TlsAcceptor>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                core.tasks.spawn(serve(
                    tcp,
                    peer,
                    tls.clone(),
                    core.clone(),
                    cancel.child_token(),
                ));
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait a little rather than spin.
                warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// Counts a socket in `connections` for as long as it lives.
struct Counted(Arc<Core>);

impl Counted {
    fn new(core: Arc<Core>) -> Self {
        core.connections.fetch_add(1, Ordering::Relaxed);
        Counted(core)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::result_large_err)] // the signature tungstenite's callback requires
fn check_path(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() != "/ws/chat" {
        let mut err = ErrorResponse::new(Some("not found: the WebSocket is on /ws/chat".into()));
        *err.status_mut() = StatusCode::NOT_FOUND;
        return Err(err);
    }
    // PROTOCOL.md 1: a web client's upgrade carries WhatsApp Web's `Origin`. (The status the
    // real server answers without it is not confirmed; 403 is what an origin check answers.)
    let origin = request.headers().get("Origin").map(|v| v.as_bytes());
    if origin != Some(crate::net::transport::ORIGIN.as_bytes()) {
        let mut err = ErrorResponse::new(Some(format!(
            "forbidden: the upgrade must carry Origin: {}",
            crate::net::transport::ORIGIN
        )));
        *err.status_mut() = StatusCode::FORBIDDEN;
        return Err(err);
    }
    Ok(response)
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    core: Arc<Core>,
    cancel: CancellationToken,
) {
    let _counted = Counted::new(core.clone());
    let hello_delay = core.reg().hello_delay;
    let deadline = HANDSHAKE_DEADLINE + hello_delay.unwrap_or_default();
    let handshake = async {
        let stream = match tls {
            None => SimStream::Plain(tcp),
            Some(acceptor) => SimStream::Tls(Box::new(
                acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| ConnError::Ws(format!("TLS: {e}")))?,
            )),
        };
        let ws =
            tokio_tungstenite::accept_hdr_async_with_config(stream, check_path, Some(ws_config()))
                .await
                .map_err(|e| ConnError::Ws(e.to_string()))?;
        server_handshake(ws, &core.server_key, core.cert_chain.clone(), hello_delay).await
    };
    let (socket, finish) = tokio::select! {
        _ = cancel.cancelled() => return,
        r = tokio::time::timeout(deadline, handshake) => match r {
            Ok(Ok(done)) => done,
            Ok(Err(ConnError::Frame(FrameError::UnsupportedVersion(v)))) => {
                warn!(version = v, "client refused: its connection header asks for dictionary \
                                    version {v}; this server speaks version 3 only");
                core.error(ErrorKind::DictionaryVersion);
                return;
            }
            Ok(Err(ConnError::Ws(e))) => {
                debug!(error = %e, "websocket upgrade refused");
                return;
            }
            Ok(Err(e)) => {
                debug!(error = %e, "handshake failed");
                core.error(ErrorKind::Handshake);
                return;
            }
            Err(_) => {
                core.error(ErrorKind::HandshakeTimeout);
                return;
            }
        },
    };
    {
        let mut reg = core.reg();
        reg.stats.handshakes += 1;
        if socket.routing().is_some() {
            reg.stats.routed_dials += 1;
        }
    }
    let decoded = payload::decode_client_payload(&finish.payload);
    let conn = Conn::new(socket, core.clone(), cancel).with_peer(peer);
    if let Some(refusal) = decoded.as_ref().ok().and_then(|p| strict_refusal(&core, p)) {
        return conn.refuse(refusal).await;
    }
    let hello = decoded.and_then(|p| payload::inspect(&p));
    match hello {
        Ok(ClientHello::Register {
            signature_ok: true,
            identity,
            ..
        }) => conn.pairing(finish.client_static, identity).await,
        Ok(ClientHello::Register { .. }) => {
            core.error(ErrorKind::BadSignedPreKey);
            conn.refuse(stanza::failure(401, &[])).await
        }
        Ok(ClientHello::Login { phone, device }) => {
            let known = core
                .reg()
                .find_login(phone, device)
                .filter(|d| d.noise_public == finish.client_static)
                .cloned();
            match known {
                Some(device) => conn.login(device).await,
                None => {
                    core.error(ErrorKind::UnknownDevice);
                    conn.refuse(stanza::failure(401, &[])).await
                }
            }
        }
        Err(e) => {
            debug!(error = %e, "bad client payload");
            core.error(ErrorKind::BadPayload);
            conn.refuse(stanza::failure(401, &[])).await
        }
    }
}

/// The refusal a strict server gives this payload before looking further: `<failure
/// reason="405" location>` below `min_version` (a missing version counts as 0.0.0), and
/// `<failure reason="409"/>` for a registration whose `DeviceProps` is not an accepted
/// `Browser (OS)` pair. Counted.
fn strict_refusal(core: &Core, payload: &ClientPayload) -> Option<Node> {
    let mut reg = core.reg();
    let version = payload::client_version(payload).unwrap_or(ClientVersion::new(0, 0, 0));
    if version < reg.strict.min_version {
        debug!(%version, min = %reg.strict.min_version, "client version refused");
        reg.stats.version_refused += 1;
        return Some(stanza::failure(405, &[("location", FAILURE_LOCATION)]));
    }
    let registration = payload.device_pairing_data.as_ref()?;
    if !reg.strict.check_device_name {
        return None;
    }
    let props = registration
        .device_props
        .as_deref()
        .and_then(|b| <DeviceProps as prost::Message>::decode(b).ok())
        .unwrap_or_default();
    if device::accepted(props.os.as_deref(), props.platform_type).is_some() {
        return None;
    }
    debug!(os = ?props.os, platform = ?props.platform_type, "device name refused");
    reg.stats.device_name_refused += 1;
    Some(stanza::failure(409, &[]))
}
