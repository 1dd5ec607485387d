//! One served connection after its handshake, as WhatsApp would serve it: a new device gets
//! QR refs and is paired when the phone scans; a known device logs in (kicking its other
//! login with 440), gets the pushed traffic a real server sends (which it must acknowledge in
//! time), has its iqs answered (pre-key count and upload checked), and meets whatever fault
//! the admin injects. The logged-in side (login, pushed burst, mailbox flushes, ack clock)
//! is in `conn/login.rs`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SimError;
use super::delivery::Delivery;
use super::faults::Fault;
use super::phone::{self, ScanOptions};
use super::pushes;
use super::registry::{Control, Device};
use super::relay;
use super::server::{Core, now_unix};
use super::stats::ErrorKind;
use super::tls::SimStream;
use crate::net::conn::NoiseSocket;
use crate::wa::messaging::{keys, usync};
use crate::wa::node::Node;
use crate::wa::pair::QrInfo;
use crate::wa::{prekey, stanza};

mod login;
mod pair_code;

/// How many QR refs a new device gets (PROTOCOL.md section 4).
const REFS: usize = 6;
/// How long the phone waits for the companion's answer to pair-success.
const PAIR_REPLY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a new login waits for the login it replaces to confirm its 440.
const KICK_DEADLINE: Duration = Duration::from_secs(5);
/// Control messages queued per connection; senders wait when it is full.
const CONTROL_QUEUE: usize = 8;

/// How a served connection ends.
enum End {
    /// Send this stanza, then close politely.
    With(Node),
    /// Close the TCP socket with no WebSocket close frame.
    Drop,
    /// The client left, or the simulator stops.
    Gone,
}

pub struct Conn {
    socket: NoiseSocket<SimStream>,
    core: Arc<Core>,
    id: u64,
    cancel: CancellationToken,
    /// A stall fault landed: read and discard, answer nothing.
    stalled: bool,
    next_iq: u64,
    /// The logged-in device; `None` while pairing.
    device: Option<Device>,
    /// Pushed stanzas this connection waits to see acknowledged.
    delivery: Delivery,
    /// Mailbox stanzas this connection has sent, by (tag, id, from).
    shown: HashSet<(String, String, String)>,
    /// The TCP peer (a proxy's outbound address when the client dialled through one).
    peer: Option<std::net::SocketAddr>,
}

impl Conn {
    pub fn new(socket: NoiseSocket<SimStream>, core: Arc<Core>, cancel: CancellationToken) -> Self {
        let id = core.next_conn_id();
        Conn {
            socket,
            core,
            id,
            cancel,
            stalled: false,
            next_iq: 0,
            device: None,
            delivery: Delivery::default(),
            shown: HashSet::new(),
            peer: None,
        }
    }

    /// Records the TCP peer, reported per device at login (`DeviceStats::last_peer`).
    pub fn with_peer(mut self, peer: std::net::SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Sends one stanza (a login refusal) and closes.
    pub async fn refuse(self, node: Node) {
        self.finish(End::With(node)).await;
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

    /// Answers what the client sends: acks and receipts close pushed stanzas; keepalive
    /// pings, pre-key count, digest and upload, passive; any other iq gets a 501 error so no
    /// client query hangs. Returns false once the client is gone.
    async fn answer(&mut self, node: Node) -> bool {
        let me = self.device.as_ref().map(|d| d.jid.clone());
        if self.stalled {
            let ping = node.tag == "iq"
                && node.get_attr("type") == Some("get")
                && node.get_attr("xmlns") == Some("w:p");
            if let Some(jid) = me.filter(|_| ping) {
                self.core.reg().stats.device(&jid).pings_unanswered += 1;
            }
            return true;
        }
        if let Some((tag, mut ids, to)) = pushes::closes(&node) {
            if let Some(jid) = &me {
                // A client can only close what it was sent: the plain ack that follows a
                // retry receipt (§1.3) names the same id as the resend the receipt just
                // queued, and must not close that resend before it goes out.
                ids.retain(|id| self.was_shown(tag, id, to));
                {
                    let mut reg = self.core.reg();
                    relay::count_retry(&mut reg, jid, &node);
                    reg.close(jid, tag, &ids, to);
                }
                self.delivery.closed(&ids);
                // A closed id may come again (a resend after a retry receipt).
                self.shown
                    .retain(|(t, id, _)| !(t == tag && ids.contains(&id.as_str())));
                if node.tag == "receipt" {
                    let mut reg = self.core.reg();
                    let wake = relay::route_receipt(&mut reg, jid, &node, now_unix());
                    reg.wake(&wake);
                }
            }
            return true;
        }
        if node.tag == "message" {
            let Some(jid) = &me else { return true };
            let ack = {
                let mut reg = self.core.reg();
                let (ack, wake) = relay::route_message(&mut reg, jid, &node, now_unix());
                reg.wake(&wake);
                ack
            };
            return self.socket.send_node(&ack).await.is_ok();
        }
        if node.tag != "iq" {
            return true;
        }
        let Some(id) = node.get_attr("id").map(str::to_string) else {
            return true;
        };
        let child = node.nodes().first().map(|c| c.tag.as_str());
        let reply = match (node.get_attr("type"), node.get_attr("xmlns"), child) {
            (Some("result" | "error"), _, _) => return true,
            (Some("get"), Some("w:p"), None | Some("ping")) => stanza::iq_result(&id),
            (Some("get"), Some("encrypt"), Some("count")) => stanza::iq_result(&id)
                .child(Node::new("count").attr("value", self.prekey_count().to_string())),
            (Some("get"), Some("encrypt"), Some("digest")) => {
                stanza::iq_result(&id).child(Node::new("digest"))
            }
            (Some("get"), Some("usync"), _) if usync::is_query(&node) => {
                match usync::parse_query(&node) {
                    Ok(query) => {
                        let answer =
                            relay::usync_answer(&mut self.core.reg(), me.as_deref(), &query);
                        // What the device was told decides what it may address: keep it.
                        self.save_later();
                        answer
                    }
                    Err(_) => stanza::iq_error(&id, 400, "bad-request"),
                }
            }
            (Some("get"), Some("encrypt"), Some("key")) if keys::is_bundle_query(&node) => {
                let mut reg = self.core.reg();
                let (answer, wake) = relay::bundle_answer(&mut reg, &node, now_unix());
                reg.wake(&wake);
                answer
            }
            (Some("set"), Some("encrypt"), _) if prekey::is_upload(&node) => {
                self.upload(&id, &node)
            }
            (Some("set"), Some("encrypt"), _) => stanza::iq_result(&id),
            (Some("set"), Some("passive"), _) => stanza::iq_result(&id),
            _ => stanza::iq_error(&id, 501, "feature-not-implemented"),
        };
        self.socket.send_node(&reply).await.is_ok()
    }

    /// The one-time pre-keys the server holds for this device: 0 before login, and with the
    /// pre-key check off a count no client refills.
    fn prekey_count(&self) -> usize {
        let Some(device) = &self.device else { return 0 };
        let mut reg = self.core.reg();
        if reg.strict.prekeys {
            reg.mailbox(&device.jid).prekeys.len()
        } else {
            prekey::INITIAL_BATCH as usize
        }
    }

    /// A pre-key upload: checked (PROTOCOL-MESSAGING.md §2.2) and stored, a duplicate id
    /// replacing the old key; a malformed one gets 400 and is counted.
    fn upload(&mut self, id: &str, node: &Node) -> Node {
        let Some(device) = &self.device else {
            return stanza::iq_error(id, 400, "bad-request");
        };
        let mut reg = self.core.reg();
        let strict = reg.strict.prekeys;
        let checked = if strict {
            prekey::check_upload(node, &device.identity_public)
        } else {
            prekey::parse_upload(node)
        };
        match checked {
            Ok(upload) => {
                reg.mailbox(&device.jid).accept_upload(&upload);
                reg.stats.prekey_uploads += 1;
                reg.sync_mail_stats(&device.jid);
                drop(reg);
                self.save_later();
                stanza::iq_result(id)
            }
            Err(e) if strict => {
                tracing::debug!(device = %device.jid, error = %e, "pre-key upload refused");
                reg.stats.prekey_uploads_refused += 1;
                stanza::iq_error(id, 400, "bad-request")
            }
            Err(_) => stanza::iq_result(id),
        }
    }

    /// Writes the state file in the background (a connection never waits for the disk).
    fn save_later(&self) {
        let core = self.core.clone();
        self.core.tasks.spawn(async move { core.save().await });
    }

    /// Whether this connection pushed a mailbox stanza `tag` with this id (from `to`, when
    /// the client named it) that is still open.
    fn was_shown(&self, tag: &str, id: &str, to: Option<&str>) -> bool {
        self.shown
            .iter()
            .any(|(t, i, from)| t == tag && i == id && to.is_none_or(|to| from == to))
    }

    /// A new device: offer refs, wait for the phone, pair, then 515. The refs stay valid
    /// until the connection ends.
    pub async fn pairing(mut self, noise_public: [u8; 32], identity: [u8; 32]) {
        let (control_tx, mut control) = mpsc::channel(CONTROL_QUEUE);
        self.core.reg().add_pending(noise_public, control_tx);
        let mut code = pair_code::CodeState::new(noise_public, identity);
        let refs: Vec<String> = (0..REFS).map(|_| random_ref()).collect();
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
                        Ok(node) if pair_code::is_code_iq(&node) => {
                            if !self.code_iq(&mut code, node).await { break End::Gone }
                        }
                        Ok(node) => if !self.answer(node).await { break End::Gone },
                        Err(_) => break End::Gone,
                    },
                    cmd = control.recv() => match cmd {
                        None => break End::Gone,
                        Some(Control::EnterCode { code: entered, reply }) => {
                            let paired = self.enter_code(&mut code, entered).await;
                            let done = paired.is_ok();
                            let _ = reply.send(paired);
                            if done {
                                break End::With(stanza::stream_error(515));
                            }
                        }
                        Some(Control::Scan { qr, options, reply }) => {
                            let paired = if qr.identity_public != identity {
                                Err(SimError::NoSuchPairing)
                            } else if !refs.contains(&qr.reference) {
                                Err(SimError::UnknownRef)
                            } else {
                                self.pair(&qr, options).await
                            };
                            let done = paired.is_ok();
                            let _ = reply.send(paired);
                            if done {
                                break End::With(stanza::stream_error(515));
                            }
                        }
                        Some(Control::Fault(fault)) => {
                            if let Some(end) = self.apply(None, fault) { break end; }
                        }
                        Some(Control::Kick(done)) => { let _ = done.send(()); }
                        Some(Control::Push(_) | Control::Flush) => {}
                    },
                }
            }
        };
        self.core.reg().remove_pending(&noise_public);
        self.finish(end).await;
    }

    /// The phone's side of pairing on this connection: pair-success, the companion's answer,
    /// then the device is known (and saved). Answers the device JID.
    async fn pair(&mut self, qr: &QrInfo, options: ScanOptions) -> Result<String, SimError> {
        let number = options.phone.unwrap_or_else(phone::made_up_phone);
        let (account, device, lid) = {
            let mut reg = self.core.reg();
            let device = reg
                .next_device_number(&number)
                .ok_or_else(|| SimError::TooManyDevices(number.clone()))?;
            let lid = format!("{}@lid", relay::account(&mut reg, &number).lid);
            (reg.phone(&number), device, lid)
        };
        let id = self.iq_id();
        let offer = phone::offer(qr, account, options.tamper, device, &id, &lid, now_unix());
        self.socket
            .send_node(&offer.iq)
            .await
            .map_err(|_| SimError::PairingFailed("the client left".into()))?;
        let deadline = tokio::time::sleep(PAIR_REPLY_DEADLINE);
        tokio::pin!(deadline);
        let reply = loop {
            let node = tokio::select! {
                _ = self.cancel.cancelled() => {
                    return Err(SimError::PairingFailed("the simulator is stopping".into()));
                }
                _ = &mut deadline => {
                    self.core.error(ErrorKind::PairingTimeout);
                    return Err(SimError::PairingFailed(
                        "the client did not answer pair-success in time".into(),
                    ));
                }
                node = self.socket.recv_node() => node
                    .map_err(|_| SimError::PairingFailed("the client left".into()))?,
            };
            if node.tag == "iq" && node.get_attr("id") == Some(id.as_str()) {
                break node;
            }
            self.answer(node).await;
        };
        if let Err((kind, why)) = phone::check_reply(&offer, &reply) {
            self.core.error(kind);
            return Err(SimError::PairingFailed(why));
        }
        {
            let mut reg = self.core.reg();
            reg.add_device(Device {
                jid: offer.jid.clone(),
                phone: offer.number.clone(),
                device: offer.device,
                lid: offer.lid.clone(),
                noise_public: qr.noise_public,
                identity_public: qr.identity_public,
            });
            // The phone's history and keys wait for the companion's first login.
            if reg.strict.pushes {
                for node in pushes::welcome(&offer.number, &offer.jid, now_unix()) {
                    reg.enqueue(&offer.jid, node);
                }
                // The account's other devices learn of it (their device lists change).
                let others = relay::other_devices(&reg, &offer.number, &offer.jid);
                for other in &others {
                    let note = pushes::devices_added(&offer.number, &offer.jid, now_unix());
                    reg.enqueue(other, note);
                }
                reg.wake(&others);
            }
        }
        self.core.save().await;
        Ok(offer.jid)
    }

    /// Applies a fault to this connection; `Some` ends it.
    fn apply(&mut self, jid: Option<&str>, fault: Fault) -> Option<End> {
        let mut reg = self.core.reg();
        reg.stats.fault_applied(jid, fault.name());
        match fault {
            Fault::Stall => {
                if let Some(jid) = jid.filter(|_| !self.stalled) {
                    reg.stats.device(jid).stalled += 1;
                }
                self.stalled = true;
                None
            }
            Fault::Drop => Some(End::Drop),
            Fault::SlowHandshake(_) => None,
            other => other.stanza().map(End::With),
        }
    }
}

/// A pairing ref as the real server makes them: `2@` and random base64.
fn random_ref() -> String {
    use base64::Engine;
    let bytes: [u8; 18] = rand::random();
    format!(
        "2@{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
