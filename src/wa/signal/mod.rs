//! Signal sessions as WhatsApp uses them (PROTOCOL-MESSAGING.md §6), over the kept library
//! `wacore-libsignal` (classic X3DH and double ratchet, no Kyber): addresses from JIDs, the
//! [`SignalStore`] trait every key store implements, and the operations the send and receive
//! flows need (`process_bundle`, `encrypt`, `decrypt`, sender keys for groups).
//!
//! Each operation reads what it needs from the store, runs the library on that snapshot and
//! hands every change back in one [`Changes`] value through [`SignalStore::apply`]. A failed
//! operation therefore changes nothing, and a store can write one operation's changes in one
//! transaction. The changes are applied before the ciphertext is returned, so a durable store
//! has persisted the advanced ratchet before the bytes can reach the wire; this is why the
//! library's counter lease is waived on every record (see docs/decisions.md).

mod adapter;
mod memory;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::wa::creds::{Credentials, KeyPair, SignedPreKey};
use crate::wa::jid::{HOSTED_LID_SERVER, HOSTED_SERVER, Jid, LID_SERVER};
use crate::wa::prekey::{OneTimeKey, PreKey, UploadedSignedKey};

pub use memory::MemoryStore;

/// What a store backend reports when it fails.
pub type StoreFailure = Box<dyn std::error::Error + Send + Sync>;

/// Why a Signal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("the key store failed")]
    Store(#[source] StoreFailure),
    #[error("no Signal session with {0}")]
    NoSession(SignalAddress),
    #[error("the {kind} from {address} is malformed: {reason}")]
    Malformed {
        kind: &'static str,
        address: SignalAddress,
        reason: String,
    },
    #[error("the pre-key bundle of {0} has an invalid key")]
    BadBundle(SignalAddress),
    #[error("Signal failed with {address}: {source}")]
    Protocol {
        address: SignalAddress,
        #[source]
        source: wacore_libsignal::protocol::SignalProtocolError,
    },
    #[error("no sender key for {0}")]
    NoSenderKey(String),
}

/// The `type` of an `<enc>` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncType {
    /// PreKeyWhisperMessage: opens a session.
    PkMsg,
    /// WhisperMessage: within an established session.
    Msg,
    /// SenderKeyMessage: a group message.
    SkMsg,
}

impl EncType {
    pub fn as_str(self) -> &'static str {
        match self {
            EncType::PkMsg => "pkmsg",
            EncType::Msg => "msg",
            EncType::SkMsg => "skmsg",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pkmsg" => Some(EncType::PkMsg),
            "msg" => Some(EncType::Msg),
            "skmsg" => Some(EncType::SkMsg),
            _ => None,
        }
    }
}

impl fmt::Display for EncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Signal address: the JID's user plus `_1` (LID), `_128` (hosted) or `_129` (hosted
/// LID), and the device number. Displayed as `name.device`, the form Baileys stores; it
/// never appears on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalAddress {
    pub name: String,
    pub device: u32,
}

impl SignalAddress {
    /// The address of a device JID.
    pub fn of(jid: &Jid) -> Self {
        let suffix = match jid.server.as_str() {
            LID_SERVER => "_1",
            HOSTED_SERVER => "_128",
            HOSTED_LID_SERVER => "_129",
            _ => "",
        };
        SignalAddress {
            name: format!("{}{suffix}", jid.user),
            device: jid.device,
        }
    }

    fn protocol(&self) -> wacore_libsignal::protocol::ProtocolAddress {
        wacore_libsignal::protocol::ProtocolAddress::new(&self.name, self.device.into())
    }
}

impl fmt::Display for SignalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.device)
    }
}

/// Who we are to Signal: the identity key pair and the registration id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalIdentity {
    pub identity: KeyPair,
    pub registration_id: u32,
}

impl LocalIdentity {
    pub fn of(creds: &Credentials) -> Self {
        LocalIdentity {
            identity: creds.identity.clone(),
            registration_id: u32::from(creds.registration_id),
        }
    }
}

/// A peer device's pre-key bundle as the server hands it out (§3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub registration_id: u32,
    /// The identity public key, 32 raw bytes.
    pub identity: [u8; 32],
    pub signed: UploadedSignedKey,
    /// Absent when the server ran out of one-time keys.
    pub one_time: Option<OneTimeKey>,
}

/// A group sender key's name: the group JID and the sending device's address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderKeyId {
    pub group: String,
    pub sender: SignalAddress,
}

impl fmt::Display for SenderKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.group, self.sender)
    }
}

/// Everything one operation changed, for [`SignalStore::apply`] to write at once.
/// Records are the library's serialized forms; they hold secrets, so `Debug` shows only
/// what changed, never the bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Sessions to write (insert or replace).
    pub sessions: Vec<(SignalAddress, Vec<u8>)>,
    /// Sessions to delete.
    pub deleted_sessions: Vec<SignalAddress>,
    /// Peer identities to remember (32 raw bytes).
    pub identities: Vec<(SignalAddress, [u8; 32])>,
    /// One-time pre-keys a pkmsg used up: delete them.
    pub used_prekeys: Vec<u32>,
    /// Sender keys to write.
    pub sender_keys: Vec<(SenderKeyId, Vec<u8>)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs = |v: &[(SignalAddress, Vec<u8>)]| {
            v.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>()
        };
        f.debug_struct("Changes")
            .field("sessions", &addrs(&self.sessions))
            .field("deleted_sessions", &self.deleted_sessions)
            .field(
                "identities",
                &self.identities.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .field("used_prekeys", &self.used_prekeys)
            .field(
                "sender_keys",
                &self.sender_keys.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A key store for one session (one WhatsApp device): read what an operation needs, and
/// write an operation's [`Changes`] at once (one transaction in a database). Synchronous:
/// SQLite and memory answer without waiting, and the `wa` layer does no I/O of its own.
pub trait SignalStore {
    /// Our identity key pair and registration id.
    fn local_identity(&self) -> Result<LocalIdentity, StoreFailure>;
    /// The identity key we last saw for a peer device.
    fn identity(&self, address: &SignalAddress) -> Result<Option<[u8; 32]>, StoreFailure>;
    /// The serialized session with a peer device.
    fn session(&self, address: &SignalAddress) -> Result<Option<Vec<u8>>, StoreFailure>;
    /// One of our one-time pre-keys, while it is unused.
    fn prekey(&self, id: u32) -> Result<Option<PreKey>, StoreFailure>;
    /// One of our signed pre-keys.
    fn signed_prekey(&self, id: u32) -> Result<Option<SignedPreKey>, StoreFailure>;
    /// A serialized group sender key.
    fn sender_key(&self, id: &SenderKeyId) -> Result<Option<Vec<u8>>, StoreFailure>;
    /// Writes one operation's changes, all or nothing.
    fn apply(&mut self, changes: Changes) -> Result<(), StoreFailure>;
}

/// Whether we hold a session with a peer device.
pub fn has_session(store: &dyn SignalStore, address: &SignalAddress) -> Result<bool, SignalError> {
    Ok(store
        .session(address)
        .map_err(SignalError::Store)?
        .is_some())
}

/// Forgets the session with a peer device (the next send needs a fresh bundle).
pub fn delete_session(
    store: &mut dyn SignalStore,
    address: &SignalAddress,
) -> Result<(), SignalError> {
    let changes = Changes {
        deleted_sessions: vec![address.clone()],
        ..Changes::default()
    };
    store.apply(changes).map_err(SignalError::Store)
}

/// Starts a session with a peer device from its pre-key bundle (X3DH as the initiator).
/// Every message encrypted for it is a pkmsg until it answers. Checks the signed pre-key's
/// signature by the bundle's identity.
pub fn process_bundle(
    store: &mut dyn SignalStore,
    address: &SignalAddress,
    bundle: &Bundle,
) -> Result<(), SignalError> {
    adapter::process_bundle(store, address, bundle)
}

/// Encrypts `plaintext` (already padded) for a peer device; the session must exist.
/// Returns the `<enc>` type and bytes.
pub fn encrypt(
    store: &mut dyn SignalStore,
    address: &SignalAddress,
    plaintext: &[u8],
) -> Result<(EncType, Vec<u8>), SignalError> {
    adapter::encrypt(store, address, plaintext)
}

/// What a successful decrypt gave.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext, still padded.
    pub plaintext: Vec<u8>,
    /// The sender's identity replaced one we had stored (reinstall or new device).
    pub identity_changed: bool,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field(
                "plaintext",
                &format_args!("[{} bytes]", self.plaintext.len()),
            )
            .field("identity_changed", &self.identity_changed)
            .finish()
    }
}

/// Decrypts a pkmsg or msg from a peer device. A pkmsg creates (or re-selects) the session
/// and uses up the one-time pre-key it names.
pub fn decrypt(
    store: &mut dyn SignalStore,
    address: &SignalAddress,
    enc_type: EncType,
    bytes: &[u8],
) -> Result<Decrypted, SignalError> {
    adapter::decrypt(store, address, enc_type, bytes)
}

/// Stores the sender key a group member distributed (`axolotlSenderKeyDistributionMessage`).
pub fn process_sender_key_distribution(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
    skdm: &[u8],
) -> Result<(), SignalError> {
    adapter::process_skdm(store, id, skdm)
}

/// Decrypts a group `skmsg` with the sender's key.
pub fn group_decrypt(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
    bytes: &[u8],
) -> Result<Vec<u8>, SignalError> {
    adapter::group_decrypt(store, id, bytes)
}

/// Our own sender key for a group, as a distribution message (creates it on first use).
pub fn sender_key_distribution(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
) -> Result<Vec<u8>, SignalError> {
    adapter::create_skdm(store, id)
}

/// Encrypts a group message with our sender key (see [`sender_key_distribution`]).
pub fn group_encrypt(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
    plaintext: &[u8],
) -> Result<Vec<u8>, SignalError> {
    adapter::group_encrypt(store, id, plaintext)
}
