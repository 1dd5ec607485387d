//! The simulator's shared state: paired devices (optionally saved to a file), live
//! connections by device, connections waiting to be paired, and the statistics.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::faults::Fault;
use crate::wa::pair::QrInfo;

/// A device the virtual phone paired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub jid: String,
    pub phone: String,
    pub device: u32,
    pub lid: String,
    #[serde(with = "b64")]
    pub noise_public: [u8; 32],
    #[serde(with = "b64")]
    pub identity_public: [u8; 32],
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("expected 32 bytes of base64"))
    }
}

/// The saved root and server private keys.
pub type SavedKeys = ([u8; 32], [u8; 32]);

/// What the admin side asks a connection task to do.
pub enum Control {
    Fault(Fault),
    /// Another login of this device: close with conflict, then confirm.
    Kick(oneshot::Sender<()>),
    /// The phone scanned this connection's QR.
    Scan {
        qr: QrInfo,
        phone: Option<String>,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

struct Live {
    conn: u64,
    control: mpsc::Sender<Control>,
}

/// Per-device figures.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeviceStats {
    pub phone: String,
    pub concurrent: u32,
    pub max_concurrent: u32,
    pub logins: u64,
    pub conflicts_sent: u64,
}

/// `GET /admin/stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub connections: u64,
    pub handshakes: u64,
    pub logins: u64,
    pub pairings: u64,
    pub conflicts_sent: u64,
    pub max_concurrent_per_device: u32,
    pub faults_applied: u64,
    pub errors: BTreeMap<String, u64>,
    pub devices: BTreeMap<String, DeviceStats>,
}

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    root_private: String,
    server_private: String,
    devices: Vec<Device>,
}

/// Everything behind the simulator's mutex.
#[derive(Default)]
pub struct Registry {
    pub devices: BTreeMap<String, Device>,
    live: HashMap<String, Vec<Live>>,
    pending: HashMap<[u8; 32], mpsc::Sender<Control>>,
    pending_faults: HashMap<String, Fault>,
    pub stats: Stats,
    pub slow_handshake: Option<Duration>,
    state_file: Option<PathBuf>,
    keys: Option<([u8; 32], [u8; 32])>,
}

impl Registry {
    /// Loads the state file when it exists; returns the saved root and server keys.
    pub fn open(state_file: Option<PathBuf>) -> Result<(Registry, Option<SavedKeys>), String> {
        let mut registry = Registry {
            state_file: state_file.clone(),
            ..Default::default()
        };
        let Some(path) = state_file.filter(|p| p.exists()) else {
            return Ok((registry, None));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read simulator state {}: {e}", path.display()))?;
        let saved: Saved = serde_json::from_str(&text)
            .map_err(|e| format!("simulator state {} is not valid: {e}", path.display()))?;
        let key = |s: &str| -> Result<[u8; 32], String> {
            STANDARD
                .decode(s)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| format!("simulator state {} has a bad key", path.display()))
        };
        let keys = (key(&saved.root_private)?, key(&saved.server_private)?);
        for device in saved.devices {
            registry.devices.insert(device.jid.clone(), device);
        }
        registry.keys = Some(keys);
        Ok((registry, Some(keys)))
    }

    /// Remembers the keys to save with the devices.
    pub fn set_keys(&mut self, root: [u8; 32], server: [u8; 32]) {
        self.keys = Some((root, server));
    }

    /// Writes the state file atomically (temp, fsync, rename).
    pub fn save(&self) -> Result<(), String> {
        let (Some(path), Some((root, server))) = (&self.state_file, &self.keys) else {
            return Ok(());
        };
        let saved = Saved {
            root_private: STANDARD.encode(root),
            server_private: STANDARD.encode(server),
            devices: self.devices.values().cloned().collect(),
        };
        let body = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
        write_atomic(path, &body).map_err(|e| format!("cannot save {}: {e}", path.display()))
    }

    pub fn error(&mut self, kind: &str) {
        *self.stats.errors.entry(kind.to_string()).or_default() += 1;
    }

    /// A new device id for a pairing with `phone`: ids are per account (1..=255, as in
    /// WhatsApp's JIDs, whose device part is one byte on the wire).
    pub fn next_device_id(&mut self, phone: &str) -> Option<u32> {
        let used: Vec<u32> = self
            .devices
            .values()
            .filter(|d| d.phone == phone)
            .map(|d| d.device)
            .collect();
        (1..=255).find(|id| !used.contains(id))
    }

    pub fn add_device(&mut self, device: Device) {
        self.stats.pairings += 1;
        self.devices.insert(device.jid.clone(), device);
    }

    pub fn remove_device(&mut self, jid: &str) {
        self.devices.remove(jid);
    }

    pub fn find_login(&self, phone: u64, device: u32) -> Option<&Device> {
        let phone = phone.to_string();
        self.devices
            .values()
            .find(|d| d.phone == phone && d.device == device)
    }

    pub fn add_pending(&mut self, noise_public: [u8; 32], control: mpsc::Sender<Control>) {
        self.pending.insert(noise_public, control);
    }

    pub fn remove_pending(&mut self, noise_public: &[u8; 32]) {
        self.pending.remove(noise_public);
    }

    pub fn pending_for(&self, noise_public: &[u8; 32]) -> Option<mpsc::Sender<Control>> {
        self.pending.get(noise_public).cloned()
    }

    /// The live logged-in connections of a device (to kick before a new login counts).
    pub fn live_controls(&self, jid: &str) -> Vec<mpsc::Sender<Control>> {
        self.live
            .get(jid)
            .map(|v| v.iter().map(|l| l.control.clone()).collect())
            .unwrap_or_default()
    }

    /// Every live connection, as (device, control).
    pub fn all_live(&self) -> Vec<(String, mpsc::Sender<Control>)> {
        self.live
            .iter()
            .flat_map(|(jid, v)| v.iter().map(move |l| (jid.clone(), l.control.clone())))
            .collect()
    }

    /// Counts a login; the caller has kicked earlier logins first.
    pub fn login(&mut self, jid: &str, phone: &str, conn: u64, control: mpsc::Sender<Control>) {
        let list = self.live.entry(jid.to_string()).or_default();
        list.push(Live { conn, control });
        let concurrent = list.len() as u32;
        self.stats.logins += 1;
        let d = self.stats.devices.entry(jid.to_string()).or_default();
        d.phone = phone.to_string();
        d.logins += 1;
        d.concurrent = concurrent;
        d.max_concurrent = d.max_concurrent.max(concurrent);
        self.stats.max_concurrent_per_device = self.stats.max_concurrent_per_device.max(concurrent);
    }

    pub fn logout(&mut self, jid: &str, conn: u64) {
        if let Some(list) = self.live.get_mut(jid) {
            list.retain(|l| l.conn != conn);
            let n = list.len() as u32;
            if list.is_empty() {
                self.live.remove(jid);
            }
            if let Some(d) = self.stats.devices.get_mut(jid) {
                d.concurrent = n;
            }
        }
    }

    pub fn conflict_sent(&mut self, jid: &str) {
        self.stats.conflicts_sent += 1;
        if let Some(d) = self.stats.devices.get_mut(jid) {
            d.conflicts_sent += 1;
        }
    }

    pub fn queue_fault(&mut self, jid: &str, fault: Fault) {
        self.pending_faults.insert(jid.to_string(), fault);
    }

    pub fn take_queued_fault(&mut self, jid: &str) -> Option<Fault> {
        self.pending_faults.remove(jid)
    }
}

fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("sim-state")
    ));
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The file holds the simulator's private keys.
        let mut file = std::fs::OpenOptions::new()
            .mode(0o600)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
