//! The simulator's protocol side: accept WebSockets on `/ws/chat`, run the Noise responder,
//! then serve one connection as WhatsApp would: pairing for new devices, login for known
//! ones (a second login kicks the first with 440), iq answers, and injected faults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::faults::Fault;
use super::registry::{Control, Device, Registry};
use crate::net::conn::{ConnError, NoiseSocket, server_handshake};
use crate::net::transport::ws_config;
use crate::wa::frame::FrameError;
use crate::wa::node::Node;
use crate::wa::pair::{Phone, QrInfo};
use crate::wa::payload::{self, ClientHello};
use crate::wa::stanza;

/// What every connection task shares.
pub struct Core {
    pub registry: Mutex<Registry>,
    pub server_private: [u8; 32],
    pub cert_chain: Vec<u8>,
    pub connections: AtomicU64,
    next_conn: AtomicU64,
}

impl Core {
    pub fn new(registry: Registry, server_private: [u8; 32], cert_chain: Vec<u8>) -> Self {
        Core {
            registry: Mutex::new(registry),
            server_private,
            cert_chain,
            connections: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
        }
    }

    /// The registry; a poisoned lock is still consistent (single-step updates).
    pub fn reg(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Accepts connections until cancelled.
pub async fn accept_loop(listener: TcpListener, core: Arc<Core>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve(tcp, core.clone(), cancel.child_token()));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Decrements the live connection count however the task ends.
struct Counted(Arc<Core>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::result_large_err)]
fn check_path(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() == "/ws/chat" {
        Ok(response)
    } else {
        let mut err = ErrorResponse::new(Some("not found: use /ws/chat".to_string()));
        *err.status_mut() = StatusCode::NOT_FOUND;
        Err(err)
    }
}

async fn serve(tcp: TcpStream, core: Arc<Core>, cancel: CancellationToken) {
    core.connections.fetch_add(1, Ordering::Relaxed);
    let _counted = Counted(core.clone());
    let ws =
        match tokio_tungstenite::accept_hdr_async_with_config(tcp, check_path, Some(ws_config()))
            .await
        {
            Ok(ws) => ws,
            Err(e) => {
                debug!(error = %e, "websocket upgrade refused");
                return;
            }
        };
    let delay = core.reg().slow_handshake;
    let handshake = server_handshake(ws, &core.server_private, core.cert_chain.clone(), delay);
    let (socket, finish) = tokio::select! {
        _ = cancel.cancelled() => return,
        r = tokio::time::timeout(Duration::from_secs(20) + delay.unwrap_or_default(), handshake) => match r {
            Ok(Ok(done)) => done,
            Ok(Err(ConnError::Frame(FrameError::UnsupportedVersion(v)))) => {
                warn!(version = v, "client refused: dictionary version {v} is not supported (only 3)");
                core.reg().error("dictionary_version");
                return;
            }
            Ok(Err(e)) => {
                debug!(error = %e, "handshake failed");
                core.reg().error("handshake");
                return;
            }
            Err(_) => {
                core.reg().error("handshake_timeout");
                return;
            }
        },
    };
    core.reg().stats.handshakes += 1;
    let hello = payload::decode_client_payload(&finish.payload).and_then(|p| payload::inspect(&p));
    let conn = Conn {
        socket,
        core: core.clone(),
        id: core.next_conn.fetch_add(1, Ordering::Relaxed),
        cancel,
        stalled: false,
        next_iq: 1,
    };
    match hello {
        Ok(ClientHello::Register {
            signature_ok: true,
            identity,
            ..
        }) => conn.pairing(finish.client_static, identity).await,
        Ok(ClientHello::Register { .. }) => {
            core.reg().error("bad_signed_pre_key");
            conn.refuse(stanza::failure(401, &[])).await
        }
        Ok(ClientHello::Login { phone, device }) => {
            let known = core
                .reg()
                .find_login(phone, device)
                .filter(|d| d.noise_public == finish.client_static)
                .cloned();
            match known {
                Some(device) => conn.logged_in(device).await,
                None => {
                    core.reg().error("unknown_device");
                    conn.refuse(stanza::failure(401, &[])).await
                }
            }
        }
        Err(e) => {
            debug!(error = %e, "bad client payload");
            core.reg().error("bad_payload");
            conn.refuse(stanza::failure(401, &[])).await
        }
    }
}

/// How a served connection ends.
enum End {
    /// Send this stanza, then close politely.
    With(Node),
    /// Close the TCP socket with no close frame.
    Drop,
    /// The client left, or the simulator stops.
    Gone,
}

struct Conn {
    socket: NoiseSocket<TcpStream>,
    core: Arc<Core>,
    id: u64,
    cancel: CancellationToken,
    stalled: bool,
    next_iq: u64,
}

impl Conn {
    async fn refuse(mut self, node: Node) {
        let _ = self.socket.send_node(&node).await;
        self.socket.close().await;
    }

    async fn finish(mut self, end: End) {
        match end {
            End::With(node) => {
                let _ = self.socket.send_node(&node).await;
                self.socket.close().await;
            }
            End::Drop => drop(self.socket),
            End::Gone => self.socket.close().await,
        }
    }

    fn iq_id(&mut self) -> String {
        self.next_iq += 1;
        format!("sim-{}-{}", self.id, self.next_iq)
    }

    /// Answers what a logged-in or pairing client asks. Returns false when the client left.
    async fn answer(&mut self, node: Node) -> bool {
        if self.stalled || node.tag != "iq" {
            return true;
        }
        let Some(id) = node.get_attr("id").map(str::to_string) else {
            return true;
        };
        let reply = match (node.get_attr("type"), node.get_attr("xmlns")) {
            (Some("result" | "error"), _) => return true,
            (Some("get"), Some("w:p")) => stanza::iq_result(&id),
            (Some("get"), Some("encrypt")) => {
                stanza::iq_result(&id).child(Node::new("count").attr("value", "50"))
            }
            (Some("set"), Some("encrypt" | "passive")) => stanza::iq_result(&id),
            _ => stanza::iq_error(&id, 501, "feature-not-implemented"),
        };
        self.socket.send_node(&reply).await.is_ok()
    }

    /// A new device: offer refs, wait for the phone to scan, pair, then 515.
    async fn pairing(mut self, noise_public: [u8; 32], identity: [u8; 32]) {
        let (control_tx, mut control) = mpsc::channel(8);
        self.core.reg().add_pending(noise_public, control_tx);
        let refs: Vec<String> = (0..6).map(|_| random_ref()).collect();
        let id = self.iq_id();
        let end = if self
            .socket
            .send_node(&stanza::pair_device(&id, &refs))
            .await
            .is_err()
        {
            End::Gone
        } else {
            loop {
                tokio::select! {
                    _ = self.cancel.cancelled() => break End::Gone,
                    node = self.socket.recv_node() => match node {
                        Ok(node) => { if !self.answer(node).await { break End::Gone; } }
                        Err(_) => break End::Gone,
                    },
                    cmd = control.recv() => match cmd {
                        None => break End::Gone,
                        Some(Control::Scan { qr, phone, reply }) => {
                            match self.pair(&qr, identity, phone).await {
                                Ok(jid) => {
                                    let _ = reply.send(Ok(jid));
                                    break End::With(stanza::stream_error(515));
                                }
                                Err(why) => { let _ = reply.send(Err(why)); }
                            }
                        }
                        Some(Control::Fault(fault)) => {
                            if let Some(end) = self.apply(fault) { break end; }
                        }
                        Some(Control::Kick(done)) => { let _ = done.send(()); }
                    },
                }
            }
        };
        self.core.reg().remove_pending(&noise_public);
        self.finish(end).await;
    }

    /// The virtual phone's side of pairing: pair-success, then check the client's signature.
    async fn pair(
        &mut self,
        qr: &QrInfo,
        identity: [u8; 32],
        phone: Option<String>,
    ) -> Result<String, String> {
        if qr.identity_public != identity {
            return Err("the QR's identity key is not this connection's".to_string());
        }
        let phone_number = phone.unwrap_or_else(made_up_phone);
        let phone = Phone::new(&phone_number);
        let device = self
            .core
            .reg()
            .next_device_id(&phone_number)
            .ok_or_else(|| format!("phone {phone_number} already has 255 linked devices"))?;
        let signed = phone.sign_pairing(qr, 1, now_unix());
        let lid = format!("{}{}@lid", phone_number.trim_start_matches('+'), device);
        let id = self.iq_id();
        let iq = phone.pair_success_iq(&id, signed, device, &lid, "Chrome");
        self.socket
            .send_node(&iq)
            .await
            .map_err(|e| e.to_string())?;
        // Wait for the client's pair-device-sign (answer other iqs meanwhile).
        let reply = loop {
            let node = tokio::time::timeout(Duration::from_secs(30), self.socket.recv_node())
                .await
                .map_err(|_| "the client did not answer pair-success".to_string())?
                .map_err(|e| e.to_string())?;
            if node.tag == "iq" && node.get_attr("id") == Some(id.as_str()) {
                break node;
            }
            self.answer(node).await;
        };
        if reply.get_attr("type") == Some("error") {
            self.core.reg().error("client_rejected_pairing");
            return Err("the client rejected pair-success".to_string());
        }
        if let Err(e) = phone.verify_device_sign(qr, &reply) {
            self.core.reg().error("bad_device_signature");
            return Err(format!("the client's device signature is wrong: {e}"));
        }
        let jid = phone.device_jid(device);
        let mut reg = self.core.reg();
        reg.add_device(Device {
            jid: jid.clone(),
            phone: phone_number,
            device,
            lid,
            noise_public: qr.noise_public,
            identity_public: qr.identity_public,
        });
        if let Err(e) = reg.save() {
            warn!(error = %e, "could not save simulator state");
        }
        Ok(jid)
    }

    /// A known device: kick its other logins (440), count this one, send success, serve.
    async fn logged_in(mut self, device: Device) {
        let others = self.core.reg().live_controls(&device.jid);
        for other in others {
            let (done_tx, done_rx) = oneshot::channel();
            if other.send(Control::Kick(done_tx)).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
            }
        }
        let (control_tx, mut control) = mpsc::channel(8);
        let queued = {
            let mut reg = self.core.reg();
            reg.login(&device.jid, &device.phone, self.id, control_tx);
            reg.take_queued_fault(&device.jid)
        };
        let success = stanza::success(Some(&device.lid), now_unix());
        let mut end = if self.socket.send_node(&success).await.is_err() {
            Some(End::Gone)
        } else {
            queued.and_then(|f| self.apply(f))
        };
        while end.is_none() {
            tokio::select! {
                _ = self.cancel.cancelled() => end = Some(End::Gone),
                node = self.socket.recv_node() => match node {
                    Ok(node) => if !self.answer(node).await { end = Some(End::Gone) },
                    Err(_) => end = Some(End::Gone),
                },
                cmd = control.recv() => match cmd {
                    None => end = Some(End::Gone),
                    Some(Control::Kick(done)) => {
                        // Leave the live set before confirming, so the new login counts alone.
                        self.core.reg().logout(&device.jid, self.id);
                        self.core.reg().conflict_sent(&device.jid);
                        let _ = self.socket.send_node(&stanza::conflict_replaced()).await;
                        self.socket.close().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Control::Fault(fault)) => {
                        if fault == Fault::Conflict {
                            self.core.reg().conflict_sent(&device.jid);
                        }
                        if fault == Fault::Logout {
                            let mut reg = self.core.reg();
                            reg.remove_device(&device.jid);
                            let _ = reg.save();
                        }
                        end = self.apply(fault);
                    }
                    Some(Control::Scan { reply, .. }) => {
                        let _ = reply.send(Err("this device is already paired".to_string()));
                    }
                },
            }
        }
        self.core.reg().logout(&device.jid, self.id);
        if let Some(end) = end {
            self.finish(end).await;
        }
    }

    /// Applies a fault to this connection; `Some` ends it.
    fn apply(&mut self, fault: Fault) -> Option<End> {
        self.core.reg().stats.faults_applied += 1;
        match fault {
            Fault::Stall => {
                self.stalled = true;
                None
            }
            Fault::Drop => Some(End::Drop),
            Fault::SlowHandshake(_) => None,
            other => other.stanza().map(End::With),
        }
    }
}

fn random_ref() -> String {
    use base64::Engine;
    let bytes: [u8; 18] = rand::random();
    format!(
        "2@{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn made_up_phone() -> String {
    let n: u64 = rand::random::<u64>() % 9_000_000;
    format!("1555{:07}", 1_000_000 + n)
}
