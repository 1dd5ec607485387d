//! The simulated WhatsApp server: the real protocol of PROTOCOL.md from the server side,
//! built from the same `wa` code as the client. Embedded in `wasp demo` and the tests, or run
//! alone with `wasp sim`.

mod admin;
pub mod cli;
pub mod faults;
pub mod registry;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use faults::{Fault, FaultError, FaultPlan};
pub use registry::Stats;
use registry::{Control, Registry};
use server::Core;

use crate::wa::creds::{KeyPair, SecretKey};
use crate::wa::noise::{CertAuthority, TrustRoot};
use crate::wa::pair;

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Protocol WebSocket address (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// Admin HTTP address; `None` serves no admin API (in-process use).
    pub admin: Option<SocketAddr>,
    /// Keys and paired devices survive restarts in this file.
    pub state_file: Option<PathBuf>,
    /// A random fault plan to run (soak runs, the demo).
    pub fault_plan: Option<FaultPlan>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            state_file: None,
            fault_plan: None,
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
    #[error("{0}")]
    State(String),
    #[error("the QR text is not valid: {0}")]
    BadQr(String),
    #[error("no connection is showing that QR (it expired, or the client is gone)")]
    NoSuchPairing,
    #[error("pairing failed: {0}")]
    PairingFailed(String),
    #[error("no device {0}")]
    UnknownDevice(String),
    #[error(transparent)]
    Fault(#[from] FaultError),
}

/// Starts the simulator.
pub struct Server;

impl Server {
    /// Binds, generates or loads keys, and serves until the handle is shut down.
    pub async fn start(config: SimConfig) -> Result<Handle, SimError> {
        let (mut registry, saved) =
            Registry::open(config.state_file.clone()).map_err(SimError::State)?;
        let (ca, server_key) = match saved {
            Some((root, server)) => (
                CertAuthority::from_private(root),
                KeyPair::from_private(SecretKey::from_bytes(server)),
            ),
            None => (CertAuthority::generate(), KeyPair::generate()),
        };
        registry.set_keys(*ca.private(), *server_key.private.expose());
        registry.save().map_err(SimError::State)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let chain = ca.issue_chain(&server_key.public, now, 30 * 24 * 3600);
        let core = Arc::new(Core::new(registry, *server_key.private.expose(), chain));
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
        tokio::spawn(server::accept_loop(listener, core.clone(), cancel.clone()));
        let mut handle = Handle {
            ws_url: format!("ws://{ws_addr}/ws/chat"),
            admin_url: None,
            trust_root: ca.trust_root(),
            core,
            cancel,
        };
        if let Some(addr) = config.admin {
            let url = admin::serve(addr, handle.clone()).await?;
            handle.admin_url = Some(url);
        }
        if let Some(plan) = config.fault_plan {
            tokio::spawn(run_plan(plan, handle.clone()));
        }
        Ok(handle)
    }
}

/// A running simulator: the same operations as the admin HTTP API.
#[derive(Clone)]
pub struct Handle {
    pub ws_url: String,
    pub admin_url: Option<String>,
    pub trust_root: TrustRoot,
    core: Arc<Core>,
    cancel: CancellationToken,
}

impl Handle {
    /// The trust root in standard padded base64 (what `wasp sim` prints).
    pub fn trust_root_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.trust_root.0)
    }

    /// The phone scans a QR text (either form): pairs that client; answers the device JID.
    pub async fn scan(&self, qr: &str, phone: Option<&str>) -> Result<String, SimError> {
        let info = pair::parse_qr(qr).map_err(|e| SimError::BadQr(e.to_string()))?;
        let control = self
            .core
            .reg()
            .pending_for(&info.noise_public)
            .ok_or(SimError::NoSuchPairing)?;
        let (reply, answer) = oneshot::channel();
        control
            .send(Control::Scan {
                qr: info,
                phone: phone.map(str::to_string),
                reply,
            })
            .await
            .map_err(|_| SimError::NoSuchPairing)?;
        match tokio::time::timeout(Duration::from_secs(40), answer).await {
            Ok(Ok(Ok(jid))) => Ok(jid),
            Ok(Ok(Err(why))) => Err(SimError::PairingFailed(why)),
            _ => Err(SimError::PairingFailed(
                "the connection ended during pairing".into(),
            )),
        }
    }

    /// Applies a fault to a device's live connections (`*`: every live connection); a known
    /// device with no live connection gets it at its next login. Returns how many
    /// connections it hit now.
    pub async fn fault(&self, device: &str, fault: Fault) -> Result<usize, SimError> {
        if let Fault::SlowHandshake(delay) = fault {
            self.core.reg().slow_handshake = (!delay.is_zero()).then_some(delay);
            return Ok(0);
        }
        let targets: Vec<_> = {
            let mut reg = self.core.reg();
            if device == "*" {
                reg.all_live().into_iter().map(|(_, c)| c).collect()
            } else {
                if !reg.devices.contains_key(device) {
                    return Err(SimError::UnknownDevice(device.to_string()));
                }
                let live = reg.live_controls(device);
                if live.is_empty() {
                    reg.queue_fault(device, fault.clone());
                }
                live
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

    /// The statistics now.
    pub fn stats(&self) -> Stats {
        let mut stats = self.core.reg().stats.clone();
        stats.connections = self.core.connections.load(Ordering::Relaxed);
        stats
    }

    /// JIDs of the paired devices.
    pub fn devices(&self) -> Vec<String> {
        self.core.reg().devices.keys().cloned().collect()
    }

    /// Stops accepting and ends every connection.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

async fn run_plan(plan: FaultPlan, handle: Handle) {
    let mut rng = plan.rng();
    let mut tick = tokio::time::interval(plan.every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = handle.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live: Vec<String> = {
            let reg = handle.core.reg();
            let mut devices: Vec<String> = reg.all_live().into_iter().map(|(d, _)| d).collect();
            devices.sort();
            devices.dedup();
            devices
        };
        if let Some((i, fault)) = plan.pick(&mut rng, live.len()) {
            tracing::info!(device = %live[i], fault = fault.name(), "simulator fault plan");
            let _ = handle.fault(&live[i], fault).await;
        }
    }
}
