//! The simulator's shared state: its keys, the paired devices (optionally kept in a state
//! file), logged-in connections by device, connections waiting for the phone, faults queued
//! for a device's next login, handshake delays, each device's mailbox (unacknowledged
//! stanzas, pre-keys), the strictness switches, and the statistics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::SimError;
use super::accounts::PhoneAccount;
use super::faults::Fault;
use super::mailbox::{Mailbox, SavedMailbox};
use super::phone::ScanOptions;
use super::stats::Stats;
use super::strict::Strictness;
use crate::wa::creds::SecretKey;
use crate::wa::node::Node;
use crate::wa::pair::{Phone, QrInfo};

/// A device the virtual phone paired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub jid: String,
    /// Digits only.
    pub phone: String,
    pub device: u32,
    pub lid: String,
    #[serde(with = "b64")]
    pub noise_public: [u8; 32],
    #[serde(with = "b64")]
    pub identity_public: [u8; 32],
}

/// The highest device number a JID can carry on the wire.
pub const MAX_DEVICE: u32 = 255;

/// The JID of device `device` of `phone` (`PHONE:DEVICE@s.whatsapp.net`).
pub fn device_jid(phone: &str, device: u32) -> String {
    format!("{phone}:{device}@s.whatsapp.net")
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        decode_key(&text).ok_or_else(|| serde::de::Error::custom("expected 32 bytes of base64"))
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text).ok().and_then(|v| v.try_into().ok())
}

/// The simulator's private keys: the certificate root and the server's static Noise key.
pub struct SimKeys {
    pub root: SecretKey,
    pub server: SecretKey,
}

/// What the admin side asks a connection task to do.
pub enum Control {
    Fault(Fault),
    /// Another login of this device: close with conflict, then confirm.
    Kick(oneshot::Sender<()>),
    /// Push this stanza (already queued in the device's mailbox) and wait for its ack.
    Push(Node),
    /// Send whatever the device's mailbox holds that this connection has not sent yet.
    Flush,
    /// The phone scanned this connection's QR.
    Scan {
        qr: QrInfo,
        options: ScanOptions,
        reply: oneshot::Sender<Result<String, SimError>>,
    },
    /// The phone typed this pairing code (`sim/pair_code.rs`).
    EnterCode {
        code: crate::wa::pair_code::LinkCode,
        reply: oneshot::Sender<Result<String, SimError>>,
    },
}

struct Live {
    conn: u64,
    control: mpsc::Sender<Control>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    root_private: String,
    server_private: String,
    devices: Vec<Device>,
    /// Unacknowledged stanzas and pre-keys by device (absent in files before issue 11).
    #[serde(default)]
    mail: BTreeMap<String, SavedMailbox>,
}

/// Everything behind the simulator's mutex. Every method is one short step: no I/O, no
/// waiting, so the lock is never held across an await.
pub struct Registry {
    devices: BTreeMap<String, Device>,
    live: HashMap<String, Vec<Live>>,
    pending: HashMap<[u8; 32], mpsc::Sender<Control>>,
    /// Phone digits -> the noise key of the pairing connection that asked for a code.
    codes: HashMap<String, [u8; 32]>,
    queued: HashMap<String, Fault>,
    gates: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    pub stats: Stats,
    /// Delay of the server hello of every handshake (slow-handshake for `*`).
    pub hello_delay: Option<Duration>,
    /// Delay before answering a device's login (slow-handshake for one device).
    login_delays: HashMap<String, Duration>,
    /// Devices whose outgoing messages are acked and dropped (fault `blackhole`).
    blackholed: HashSet<String>,
    /// Each device's unacknowledged stanzas and pre-keys.
    mail: HashMap<String, Mailbox>,
    /// The switches of `POST /admin/strict`.
    pub strict: Strictness,
    /// The virtual phone of each account, so its devices share one account key.
    phones: HashMap<String, Phone>,
    /// The highest device number given to each phone number in this run.
    last_device: HashMap<String, u32>,
    /// Each account's phone as a Signal device (not saved: a restart gives new phones).
    pub accounts: BTreeMap<String, PhoneAccount>,
    /// Relayed message copies waiting for the receiving device's receipt: (device, id).
    pub relayed: HashSet<(String, String)>,
    state_file: Option<PathBuf>,
    keys: SimKeys,
}

impl Registry {
    /// Loads the state file when it exists, otherwise starts empty with fresh keys.
    pub fn open(state_file: Option<PathBuf>) -> Result<Registry, SimError> {
        let mut registry = Registry {
            devices: BTreeMap::new(),
            live: HashMap::new(),
            pending: HashMap::new(),
            codes: HashMap::new(),
            queued: HashMap::new(),
            gates: HashMap::new(),
            stats: Stats::default(),
            hello_delay: None,
            login_delays: HashMap::new(),
            blackholed: HashSet::new(),
            mail: HashMap::new(),
            strict: Strictness::default(),
            phones: HashMap::new(),
            last_device: HashMap::new(),
            accounts: BTreeMap::new(),
            relayed: HashSet::new(),
            state_file: state_file.clone(),
            keys: SimKeys {
                root: SecretKey::random(),
                server: SecretKey::random(),
            },
        };
        let Some(path) = state_file.filter(|p| p.exists()) else {
            return Ok(registry);
        };
        let bad = |why: String| SimError::State {
            path: path.clone(),
            why,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let saved: Saved = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let key = |s: &str| decode_key(s).ok_or_else(|| bad("a key is not 32 bytes".into()));
        registry.keys = SimKeys {
            root: SecretKey::from_bytes(key(&saved.root_private)?),
            server: SecretKey::from_bytes(key(&saved.server_private)?),
        };
        for device in saved.devices {
            // `devices_of` finds a phone's devices by this form of their JIDs.
            if device.jid != device_jid(&device.phone, device.device) {
                return Err(bad(format!(
                    "device {} is not {}:{}@s.whatsapp.net",
                    device.jid, device.phone, device.device
                )));
            }
            registry.devices.insert(device.jid.clone(), device);
        }
        for (jid, saved) in saved.mail {
            let mailbox = Mailbox::from_saved(saved).map_err(|e| bad(format!("{jid}: {e}")))?;
            registry.mail.insert(jid.clone(), mailbox);
            registry.sync_mail_stats(&jid);
        }
        Ok(registry)
    }

    pub fn keys(&self) -> &SimKeys {
        &self.keys
    }

    /// The state file's path and the bytes to write there now; `None` without a state file.
    pub fn snapshot(&self) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.state_file.clone()?;
        let saved = Saved {
            root_private: STANDARD.encode(self.keys.root.expose()),
            server_private: STANDARD.encode(self.keys.server.expose()),
            devices: self.devices.values().cloned().collect(),
            mail: self
                .mail
                .iter()
                .filter(|(jid, _)| self.devices.contains_key(*jid))
                .map(|(jid, m)| (jid.clone(), m.to_saved()))
                .collect(),
        };
        // Serializing strings and numbers into a Vec cannot fail.
        let body = serde_json::to_vec_pretty(&saved).unwrap_or_default();
        Some((path, body))
    }

    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The paired devices of one phone number, in JID order: a range of the map, as every
    /// device's JID is `PHONE:DEVICE@...` (a scan of all devices per login made a fleet's
    /// logins quadratic).
    pub fn devices_of<'a>(&'a self, phone: &'a str) -> impl Iterator<Item = &'a Device> + 'a {
        // ';' follows ':' in ASCII, so the range holds exactly the keys starting "PHONE:".
        self.devices
            .range(format!("{phone}:")..format!("{phone};"))
            .map(|(_, d)| d)
            .filter(move |d| d.phone == phone)
    }

    pub fn knows(&self, jid: &str) -> bool {
        self.devices.contains_key(jid)
    }

    /// The phone of this number (made on first use; its account key lives as long as the
    /// simulator runs).
    pub fn phone(&mut self, number: &str) -> Phone {
        self.phones
            .entry(number.to_string())
            .or_insert_with(|| Phone::new(number))
            .clone()
    }

    /// A new device number of `phone` for a pairing: one above any it has or had in this
    /// run. `None` once the wire's limit is reached (device numbers are one byte; 0 is the
    /// phone itself).
    pub fn next_device_number(&mut self, phone: &str) -> Option<u32> {
        let paired = self
            .devices
            .values()
            .filter(|d| d.phone == phone)
            .map(|d| d.device)
            .max()
            .unwrap_or(0);
        let last = self.last_device.entry(phone.to_string()).or_default();
        let next = paired.max(*last) + 1;
        if next > MAX_DEVICE {
            return None;
        }
        *last = next;
        Some(next)
    }

    pub fn add_device(&mut self, device: Device) {
        self.stats.pairings += 1;
        self.devices.insert(device.jid.clone(), device);
    }

    /// Forgets a device (logout): its next login is refused with 401.
    pub fn remove_device(&mut self, jid: &str) {
        self.devices.remove(jid);
        self.queued.remove(jid);
        self.login_delays.remove(jid);
        self.blackholed.remove(jid);
        self.gates.remove(jid);
        self.mail.remove(jid);
        self.relayed.retain(|(device, _)| device != jid);
    }

    /// The device a login payload names, if the simulator paired it.
    pub fn find_login(&self, phone: u64, device: u32) -> Option<&Device> {
        self.devices.get(&device_jid(&phone.to_string(), device))
    }

    pub fn add_pending(&mut self, noise_public: [u8; 32], control: mpsc::Sender<Control>) {
        self.pending.insert(noise_public, control);
        self.stats.pending_pairings = self.pending.len() as u64;
    }

    pub fn remove_pending(&mut self, noise_public: &[u8; 32]) {
        self.pending.remove(noise_public);
        self.remove_code_wait(noise_public);
        self.stats.pending_pairings = self.pending.len() as u64;
    }

    /// The pairing connection with this noise key waits for a code typed on `phone`'s phone
    /// (a later request for the same phone replaces it).
    pub fn add_code_wait(&mut self, phone: &str, noise_public: [u8; 32]) {
        self.codes.insert(phone.to_string(), noise_public);
    }

    /// The noise key of the connection waiting for a code for `phone`.
    pub fn code_wait(&self, phone: &str) -> Option<[u8; 32]> {
        self.codes.get(phone).copied()
    }

    /// The connection with this noise key waits for no code any more.
    pub fn remove_code_wait(&mut self, noise_public: &[u8; 32]) {
        self.codes.retain(|_, noise| noise != noise_public);
    }

    /// The connection showing QR codes for this noise key.
    pub fn pending_for(&self, noise_public: &[u8; 32]) -> Option<mpsc::Sender<Control>> {
        self.pending.get(noise_public).cloned()
    }

    /// The lock that lets one login of a device at a time kick the others and count itself.
    pub fn login_gate(&mut self, jid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.gates.entry(jid.to_string()).or_default().clone()
    }

    /// The logged-in connections of a device.
    pub fn live_controls(&self, jid: &str) -> Vec<mpsc::Sender<Control>> {
        self.live
            .get(jid)
            .map(|v| v.iter().map(|l| l.control.clone()).collect())
            .unwrap_or_default()
    }

    /// Asks every live connection of these devices to flush its mailbox. Never waits: a
    /// full control queue already holds a message after which the connection flushes.
    pub fn wake(&self, jids: &[String]) {
        for jid in jids {
            for control in self.live_controls(jid) {
                let _ = control.try_send(Control::Flush);
            }
        }
    }

    /// Every logged-in connection, as (device, control).
    pub fn all_live(&self) -> Vec<(String, mpsc::Sender<Control>)> {
        self.live
            .iter()
            .flat_map(|(jid, v)| v.iter().map(move |l| (jid.clone(), l.control.clone())))
            .collect()
    }

    /// Devices with at least one logged-in connection, sorted.
    pub fn live_devices(&self) -> Vec<String> {
        let mut devices: Vec<String> = self.live.keys().cloned().collect();
        devices.sort();
        devices
    }

    /// Counts a login; the caller holds the device's gate and has kicked earlier logins.
    pub fn login(&mut self, device: &Device, conn: u64, control: mpsc::Sender<Control>) {
        let list = self.live.entry(device.jid.clone()).or_default();
        list.push(Live { conn, control });
        let concurrent = list.len() as u32;
        self.stats.login(&device.jid, &device.phone, concurrent);
    }

    /// Takes a connection out of its device's logged-in set (once; later calls do nothing).
    pub fn logout(&mut self, jid: &str, conn: u64) {
        let Some(list) = self.live.get_mut(jid) else {
            return;
        };
        let before = list.len();
        list.retain(|l| l.conn != conn);
        let left = list.len();
        if left == before {
            return;
        }
        if left == 0 {
            self.live.remove(jid);
        }
        self.stats.left(jid, left as u32);
    }

    /// Keeps a fault for the device's next login (it has no live connection now).
    pub fn queue_fault(&mut self, jid: &str, fault: Fault) {
        self.queued.insert(jid.to_string(), fault);
    }

    pub fn take_queued_fault(&mut self, jid: &str) -> Option<Fault> {
        self.queued.remove(jid)
    }

    /// Starts (or stops) swallowing this device's outgoing messages.
    pub fn set_blackhole(&mut self, jid: &str, on: bool) {
        if on {
            self.blackholed.insert(jid.to_string());
        } else {
            self.blackholed.remove(jid);
        }
    }

    pub fn is_blackholed(&self, jid: &str) -> bool {
        self.blackholed.contains(jid)
    }

    /// Delays (or, with zero, stops delaying) the answer to this device's logins.
    pub fn set_login_delay(&mut self, jid: &str, delay: Duration) {
        if delay.is_zero() {
            self.login_delays.remove(jid);
        } else {
            self.login_delays.insert(jid.to_string(), delay);
        }
    }

    pub fn login_delay(&self, jid: &str) -> Option<Duration> {
        self.login_delays.get(jid).copied()
    }

    /// A device's mailbox (made on first use).
    pub fn mailbox(&mut self, jid: &str) -> &mut Mailbox {
        self.mail.entry(jid.to_string()).or_default()
    }

    /// Queues a stanza for a device until it is acknowledged.
    pub fn enqueue(&mut self, jid: &str, node: Node) {
        self.mailbox(jid).push(node);
        self.stats.pushed += 1;
        self.sync_mail_stats(jid);
    }

    /// A client's ack or receipt: closes the stanzas it names; answers how many.
    pub fn close(&mut self, jid: &str, tag: &str, ids: &[&str], to: Option<&str>) -> usize {
        let closed = self.mailbox(jid).close(tag, ids, to);
        if tag == "message" {
            for id in ids {
                if self.relayed.remove(&(jid.to_string(), (*id).to_string())) {
                    self.stats.messages_delivered += 1;
                }
            }
        }
        if closed > 0 {
            self.stats.acks_received += closed as u64;
            self.stats.device(jid).acks_received += closed as u64;
            self.sync_mail_stats(jid);
        }
        closed
    }

    /// Copies a mailbox's sizes into the device's statistics.
    pub fn sync_mail_stats(&mut self, jid: &str) {
        let (unacked, prekeys, uploads) = self
            .mail
            .get(jid)
            .map(|m| (m.queue.len() as u64, m.prekeys.len() as u64, m.uploads))
            .unwrap_or_default();
        let device = self.stats.device(jid);
        device.unacked = unacked;
        device.prekeys = prekeys;
        device.prekey_uploads = uploads;
    }
}

/// Writes `body` to `path` atomically: a temp file in the same directory (mode 0600, as it
/// holds the simulator's private keys), fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sim-state");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .mode(0o600)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u32) -> Device {
        device_of("15550001111", n)
    }

    fn device_of(phone: &str, n: u32) -> Device {
        Device {
            jid: device_jid(phone, n),
            phone: phone.into(),
            device: n,
            lid: format!("{n}@lid"),
            noise_public: [n as u8; 32],
            identity_public: [7; 32],
        }
    }

    #[test]
    fn a_phones_devices_are_its_own_and_no_other_numbers() {
        let mut reg = Registry::open(None).unwrap();
        // Numbers that are prefixes of each other, and one that sorts between them.
        for (phone, n) in [
            ("1555", 1),
            ("1555", 12),
            ("15551", 2),
            ("1555", 3),
            ("15550", 7),
        ] {
            reg.add_device(device_of(phone, n));
        }
        let of = |phone: &str| -> Vec<u32> {
            let mut numbers: Vec<u32> = reg.devices_of(phone).map(|d| d.device).collect();
            numbers.sort();
            numbers
        };
        assert_eq!(of("1555"), vec![1, 3, 12]);
        assert_eq!(of("15551"), vec![2]);
        assert_eq!(of("15550"), vec![7]);
        assert!(of("155").is_empty());
    }

    #[test]
    fn a_state_file_device_whose_jid_is_not_its_phone_and_number_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        let mut first = Registry::open(Some(path.clone())).unwrap();
        first.add_device(Device {
            jid: "15550001111:9@s.whatsapp.net".into(),
            ..device(4)
        });
        let (to, body) = first.snapshot().unwrap();
        write_atomic(&to, &body).unwrap();
        let err = Registry::open(Some(path)).err().unwrap().to_string();
        assert!(
            err.contains("15550001111:9@s.whatsapp.net is not 15550001111:4@s.whatsapp.net"),
            "{err}"
        );
    }

    #[test]
    fn the_state_file_keeps_keys_and_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        let mut first = Registry::open(Some(path.clone())).unwrap();
        first.add_device(device(4));
        let (to, body) = first.snapshot().unwrap();
        write_atomic(&to, &body).unwrap();

        let again = Registry::open(Some(path.clone())).unwrap();
        assert_eq!(again.keys().root, first.keys().root);
        assert_eq!(again.keys().server, first.keys().server);
        assert_eq!(again.find_login(15550001111, 4), Some(&device(4)));
        assert_eq!(again.find_login(15550001111, 5), None);
        // Device numbers go on from the highest paired one, per phone number.
        let mut again = again;
        assert_eq!(again.next_device_number("15550001111"), Some(5));
        assert_eq!(again.next_device_number("15550001111"), Some(6));
        assert_eq!(again.next_device_number("15550009999"), Some(1));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        std::fs::write(&path, "{\"root_private\": 3").unwrap();
        let err = Registry::open(Some(path)).err().unwrap().to_string();
        assert!(err.contains("sim.json"), "{err}");
    }

    #[test]
    fn device_numbers_stop_at_the_wire_limit() {
        let mut reg = Registry::open(None).unwrap();
        let given: Vec<_> = (0..MAX_DEVICE)
            .map(|_| reg.next_device_number("15550001111").unwrap())
            .collect();
        assert_eq!((given[0], given[254]), (1, 255));
        assert_eq!(reg.next_device_number("15550001111"), None);
        // Every device of one number is vouched for by the same account key.
        let (a, b) = (reg.phone("15550001111"), reg.phone("15550001111"));
        assert_eq!(a.account.public, b.account.public);
        assert_ne!(reg.phone("15550002222").account.public, a.account.public);
    }

    #[test]
    fn logout_counts_once() {
        let mut reg = Registry::open(None).unwrap();
        let d = device(1);
        reg.add_device(d.clone());
        let (tx, _rx) = mpsc::channel(1);
        reg.login(&d, 1, tx.clone());
        reg.login(&d, 2, tx);
        reg.logout(&d.jid, 1);
        reg.logout(&d.jid, 1);
        assert_eq!(reg.stats.logged_in, 1);
        assert_eq!(reg.stats.devices[&d.jid].concurrent, 1);
        assert_eq!(reg.stats.max_concurrent_per_device, 2);
    }
}
