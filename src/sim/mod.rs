//! The simulated WhatsApp server: the real protocol of PROTOCOL.md from the server side,
//! built from the same `wa` code as the client. Embedded in `wasp demo` and the tests, or run
//! alone with `wasp sim`; also the load generator of the benchmarks (`load`).
//!
//! `Server::start` gives a `Handle` with the operations of the admin HTTP API: `scan` (the
//! virtual phone reads a QR), `fault`, `stats`, `set_strict`, `consume_prekeys`, and for the
//! relay between Signal peers (`relay`, `accounts`): `create_account`, `send_text`,
//! `messages`. As strict as WhatsApp by default (`Strictness`): pushed traffic that must be
//! acknowledged, truthful pre-key counts, a lowest client version and a device-name check.

pub mod accounts;
mod addressing;
mod admin;
pub mod cli;
mod conn;
mod delivery;
pub mod faults;
pub mod load;
pub mod mailbox;
pub mod phone;
pub mod pushes;
pub mod registry;
pub mod relay;
mod server;
pub mod stats;
pub mod strict;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

#[doc(hidden)]
pub use admin::{BODY_ENDPOINTS as ADMIN_BODY_ENDPOINTS, check_body as check_admin_body};
pub use faults::{Fault, FaultArgs, FaultError, FaultPlan};
pub use phone::{ScanOptions, Tamper};
pub use stats::{DeviceStats, ErrorKind, Stats};
pub use strict::{StrictPatch, Strictness};

use registry::{Control, Registry};
use server::{Core, now_unix};

use crate::wa::creds::{KeyPair, SecretKey};
use crate::wa::node::Node;
use crate::wa::noise::{CertAuthority, TrustRoot};
use crate::wa::{pair, prekey};

/// How long the certificate chain the simulator issues itself at start is valid.
const CERT_VALIDITY_S: u64 = 30 * 24 * 3600;
/// How long a scan waits for the pairing to complete.
const SCAN_DEADLINE: Duration = Duration::from_secs(40);

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Protocol WebSocket address (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// Admin HTTP address; `None` serves no admin API (in-process use).
    pub admin: Option<SocketAddr>,
    /// Keys and paired devices survive restarts in this file (JSON, mode 0600).
    pub state_file: Option<PathBuf>,
    /// A seeded random fault plan to run from the start (soak runs, the demo).
    pub fault_plan: Option<FaultPlan>,
    /// How strict to be (all on by default, as WhatsApp is).
    pub strict: Strictness,
    /// Serve `wss://` with this TLS (`wasp sim --tls`); plain `ws://` when `None`.
    pub tls: Option<tls::SimTls>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            state_file: None,
            fault_plan: None,
            strict: Strictness::default(),
            tls: None,
        }
    }
}

/// Why the simulator or one of its operations failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator state file {path} cannot be used: {why}")]
    State { path: PathBuf, why: String },
    #[error("the QR text is not valid: {0}")]
    BadQr(String),
    #[error("the phone number {0:?} is not 5 to 15 digits")]
    BadPhone(String),
    #[error("no connection is showing that QR (it expired, or the client is gone)")]
    NoSuchPairing,
    #[error("that QR's ref is not one this connection was given")]
    UnknownRef,
    #[error("the account {0} already has as many devices as a JID can number (255)")]
    TooManyDevices(String),
    #[error("pairing failed: {0}")]
    PairingFailed(String),
    #[error("{0}")]
    BadCode(String),
    #[error(
        "no companion is waiting for a code for phone {0:?}: ask the session for a pairing code \
         first (the code lives only while its connection shows QR refs)"
    )]
    NoCodeWaiting(String),
    #[error(
        "wrong code for phone {0:?}: the companion's key bundle does not decrypt with the code \
         entered; the companion must ask for a new code"
    )]
    WrongCode(String),
    #[error("no device {0:?} is paired with this simulator")]
    UnknownDevice(String),
    #[error("no account {0:?}: create it with POST /admin/account or pair a device of it")]
    UnknownAccount(String),
    #[error("bad strictness setting: {0}")]
    BadStrict(String),
    #[error(transparent)]
    Fault(#[from] FaultError),
}

/// Starts the simulator.
pub struct Server;

/// Where a fault goes.
enum Targets {
    /// These logged-in connections.
    Now(Vec<tokio::sync::mpsc::Sender<Control>>),
    /// Nowhere now: it was queued or applied to the registry (then maybe saved).
    Done { save: bool },
}

impl Server {
    /// Loads or makes its keys, binds, and serves until the handle is shut down.
    pub async fn start(config: SimConfig) -> Result<Handle, SimError> {
        let mut registry = Registry::open(config.state_file.clone())?;
        registry.strict = config.strict.clone();
        let ca = CertAuthority::from_private(*registry.keys().root.expose());
        let server_key =
            KeyPair::from_private(SecretKey::from_bytes(*registry.keys().server.expose()));
        let chain = ca.issue_chain(&server_key.public, now_unix(), CERT_VALIDITY_S);
        let core = Arc::new(Core::new(registry, chain));
        // A new state file gets the keys at once, so a restart publishes the same root.
        core.save().await;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let ws_addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let cancel = CancellationToken::new();
        core.tasks.spawn(server::accept_loop(
            listener,
            core.clone(),
            config.tls.as_ref().map(|t| t.acceptor.clone()),
            cancel.clone(),
        ));
        let scheme = if config.tls.is_some() { "wss" } else { "ws" };
        let mut handle = Handle {
            ws_url: format!("{scheme}://{ws_addr}/ws/chat"),
            admin_url: None,
            trust_root: ca.trust_root(),
            core,
            cancel,
            plan: Arc::new(Mutex::new(None)),
        };
        if let Some(addr) = config.admin {
            match admin::serve(addr, handle.clone()).await {
                Ok(url) => handle.admin_url = Some(url),
                Err(e) => {
                    handle.shutdown();
                    return Err(e);
                }
            }
        }
        if let Some(plan) = config.fault_plan {
            handle.start_plan(plan);
        }
        Ok(handle)
    }
}

/// A running simulator: the same operations as the admin HTTP API. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    /// `ws://ADDR/ws/chat`.
    pub ws_url: String,
    /// `http://ADDR` of the admin API, when one was asked for.
    pub admin_url: Option<String>,
    /// The root of the simulator's certificate chain: the client's trust root.
    pub trust_root: TrustRoot,
    core: Arc<Core>,
    cancel: CancellationToken,
    plan: Arc<Mutex<Option<CancellationToken>>>,
}

impl Handle {
    /// The trust root in standard padded base64 (what `wasp sim` prints).
    pub fn trust_root_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.trust_root.0)
    }

    /// The phone scans a QR text (either form) as a person's phone reads it from the screen,
    /// and pairs that client as a device of `phone` (made up when `None`). Answers the new
    /// device's JID once the client's answer checked out.
    pub async fn scan(&self, qr: &str, phone: Option<&str>) -> Result<String, SimError> {
        let options = ScanOptions {
            phone: phone.map(str::to_string),
            tamper: None,
        };
        self.scan_with(qr, options).await
    }

    /// `scan` with every option, including a deliberately wrong pair-success.
    pub async fn scan_with(&self, qr: &str, options: ScanOptions) -> Result<String, SimError> {
        let info = pair::parse_qr(qr).map_err(|e| SimError::BadQr(e.to_string()))?;
        let phone = options
            .phone
            .as_deref()
            .map(phone::phone_digits)
            .transpose()?;
        let control = self
            .core
            .reg()
            .pending_for(&info.noise_public)
            .ok_or(SimError::NoSuchPairing)?;
        let (reply, answer) = oneshot::channel();
        let options = ScanOptions { phone, ..options };
        let scan = Control::Scan {
            qr: info,
            options,
            reply,
        };
        control
            .send(scan)
            .await
            .map_err(|_| SimError::NoSuchPairing)?;
        match tokio::time::timeout(SCAN_DEADLINE, answer).await {
            Ok(Ok(result)) => result,
            _ => Err(SimError::PairingFailed(
                "the connection ended during pairing".into(),
            )),
        }
    }

    /// Applies a fault to a device's logged-in connections, or to every logged-in
    /// connection with `*`; answers how many connections it reached now.
    ///
    /// A paired device with no live connection: `logout` forgets it at once (its next login
    /// gets 401), other faults wait for its next login (a `failure` then replaces
    /// `<success>`, the rest follow it). `slow-handshake` with `*` delays the server hello of
    /// every later handshake; for one device it delays the answer to its later logins (the
    /// server cannot know the device before the client's last handshake message). A zero
    /// delay ends it.
    pub async fn fault(&self, device: &str, fault: Fault) -> Result<usize, SimError> {
        let targets = match self.fault_targets(device, &fault)? {
            Targets::Now(targets) => targets,
            Targets::Done { save } => {
                if save {
                    self.core.save().await;
                }
                return Ok(0);
            }
        };
        let mut hit = 0;
        for control in targets {
            if control.send(Control::Fault(fault.clone())).await.is_ok() {
                hit += 1;
            }
        }
        Ok(hit)
    }

    /// The registry side of `fault`: the connections to reach now, or what it did instead.
    fn fault_targets(&self, device: &str, fault: &Fault) -> Result<Targets, SimError> {
        let mut reg = self.core.reg();
        if device != "*" && !reg.knows(device) {
            return Err(SimError::UnknownDevice(device.to_string()));
        }
        if let Fault::Blackhole(on) = *fault {
            // A server-side switch on the device (or every device), not a connection event.
            let devices = if device == "*" {
                reg.all_live().into_iter().map(|(jid, _)| jid).collect()
            } else {
                vec![device.to_string()]
            };
            for jid in devices {
                reg.set_blackhole(&jid, on);
            }
            reg.stats
                .fault_applied((device != "*").then_some(device), fault.name());
            return Ok(Targets::Done { save: false });
        }
        if let Fault::SlowHandshake(delay) = *fault {
            if device == "*" {
                reg.hello_delay = (!delay.is_zero()).then_some(delay);
            } else {
                reg.set_login_delay(device, delay);
            }
            reg.stats
                .fault_applied((device != "*").then_some(device), fault.name());
            return Ok(Targets::Done { save: false });
        }
        if device == "*" {
            return Ok(Targets::Now(
                reg.all_live().into_iter().map(|(_, c)| c).collect(),
            ));
        }
        let live = reg.live_controls(device);
        if !live.is_empty() {
            return Ok(Targets::Now(live));
        }
        if *fault == Fault::Logout {
            reg.stats.fault_applied(Some(device), fault.name());
            reg.remove_device(device);
            Ok(Targets::Done { save: true })
        } else {
            reg.queue_fault(device, fault.clone());
            Ok(Targets::Done { save: false })
        }
    }

    /// Starts a seeded random fault plan, replacing the one running.
    pub fn start_plan(&self, plan: FaultPlan) {
        let token = self.cancel.child_token();
        let old = self
            .plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(token.clone());
        if let Some(old) = old {
            old.cancel();
        }
        self.core
            .tasks
            .spawn(faults::run_plan(plan, self.clone(), token));
    }

    /// Stops the running fault plan, if any.
    pub fn stop_plan(&self) {
        if let Some(old) = self.plan.lock().unwrap_or_else(|p| p.into_inner()).take() {
            old.cancel();
        }
    }

    /// The statistics now.
    pub fn stats(&self) -> Stats {
        let reg = self.core.reg();
        let mut stats = reg.stats.clone();
        stats.phone_duplicates = reg.accounts.values().map(|a| a.duplicates).sum();
        drop(reg);
        stats.connections = self.core.connections.load(Ordering::Relaxed);
        stats
    }

    /// The switches now.
    pub fn strictness(&self) -> Strictness {
        self.core.reg().strict.clone()
    }

    /// Changes the switches a patch names; answers them all.
    pub fn set_strict(&self, patch: &StrictPatch) -> Result<Strictness, SimError> {
        let mut reg = self.core.reg();
        let mut next = reg.strict.clone();
        next.apply(patch).map_err(SimError::BadStrict)?;
        reg.strict = next.clone();
        Ok(next)
    }

    /// Removes `n` one-time pre-keys of a device (or of every device with `*`) as if peers
    /// fetched its bundles; a device left with fewer than 5 gets the `encrypt` notification
    /// (now when logged in, else at its next login). Answers (device, keys left) pairs.
    pub async fn consume_prekeys(
        &self,
        device: &str,
        n: usize,
    ) -> Result<Vec<(String, usize)>, SimError> {
        let mut pushes = Vec::new();
        let left = {
            let mut reg = self.core.reg();
            let jids: Vec<String> = if device == "*" {
                reg.devices().map(|d| d.jid.clone()).collect()
            } else if reg.knows(device) {
                vec![device.to_string()]
            } else {
                return Err(SimError::UnknownDevice(device.to_string()));
            };
            let mut left = Vec::new();
            for jid in jids {
                let remaining = {
                    let mailbox = reg.mailbox(&jid);
                    mailbox.consume(n);
                    mailbox.prekeys.len()
                };
                reg.sync_mail_stats(&jid);
                if remaining < prekey::LOW_WATER as usize && reg.strict.pushes {
                    let note = pushes::encrypt_low(remaining, server::now_unix());
                    reg.enqueue(&jid, note.clone());
                    for control in reg.live_controls(&jid) {
                        pushes.push((control, note.clone()));
                    }
                }
                left.push((jid, remaining));
            }
            left
        };
        for (control, note) in pushes {
            let _ = control.send(Control::Push(note)).await;
        }
        self.core.save().await;
        Ok(left)
    }

    /// Queues `node` for a paired device as the server would (closed only by its ack) and
    /// sends it now to each live connection; a device offline gets it at its next login.
    pub async fn push(&self, device: &str, node: Node) -> Result<(), SimError> {
        let live = {
            let mut reg = self.core.reg();
            if !reg.knows(device) {
                return Err(SimError::UnknownDevice(device.to_string()));
            }
            reg.enqueue(device, node.clone());
            reg.live_controls(device)
        };
        for control in live {
            let _ = control.send(Control::Push(node.clone())).await;
        }
        self.core.save().await;
        Ok(())
    }

    /// Makes an account (its phone, a Signal device) so tests have someone to talk to;
    /// answers its phone JID and LID. An existing account is left as it is.
    pub fn create_account(&self, phone: &str) -> Result<(String, String), SimError> {
        let phone = phone::phone_digits(phone)?;
        let mut reg = self.core.reg();
        let account = relay::account(&mut reg, &phone);
        Ok((account.jid().to_string(), account.lid_jid().to_string()))
    }

    /// `from`'s phone sends a real encrypted text to `to` (digits or a JID); answers the
    /// message id.
    pub fn send_text(&self, from: &str, to: &str, text: &str) -> Result<String, SimError> {
        let from = phone::phone_digits(from)?;
        let mut reg = self.core.reg();
        if relay::phone_of(&reg, &crate::wa::jid::Jid::pn(&from)).is_none() {
            return Err(SimError::UnknownAccount(from));
        }
        let (id, wake) = relay::phone_send(&mut reg, &from, to, text, now_unix())?;
        reg.wake(&wake);
        Ok(id)
    }

    /// What `phone`'s phone decrypted, oldest first.
    pub fn messages(&self, phone: &str) -> Result<Vec<accounts::Received>, SimError> {
        let phone = phone::phone_digits(phone)?;
        let reg = self.core.reg();
        let account = reg
            .accounts
            .get(&phone)
            .ok_or_else(|| SimError::UnknownAccount(phone.clone()))?;
        Ok(account.inbox.iter().cloned().collect())
    }

    /// Receipts `phone`'s phone got for what it sent, by kind.
    pub fn phone_receipts(&self, phone: &str) -> std::collections::HashMap<String, u64> {
        self.core
            .reg()
            .accounts
            .get(phone)
            .map(|a| a.receipts.clone())
            .unwrap_or_default()
    }

    /// JIDs of the paired devices, sorted.
    pub fn devices(&self) -> Vec<String> {
        self.core.reg().devices().map(|d| d.jid.clone()).collect()
    }

    /// JIDs of the devices logged in now, sorted.
    pub fn live_devices(&self) -> Vec<String> {
        self.core.reg().live_devices()
    }

    /// Stops accepting and ends every connection (without waiting; see `stopped`).
    pub fn shutdown(&self) {
        self.cancel.cancel();
        self.core.tasks.close();
    }

    /// Waits until every task of the simulator has ended (after `shutdown`).
    pub async fn stopped(&self) {
        self.core.tasks.wait().await;
    }
}
