//! [`MemoryStore`]: a [`SignalStore`] in plain maps, for the simulator's phones and for tests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::{
    Bundle, Changes, LocalIdentity, SenderKeyId, SignalAddress, SignalStore, StoreFailure,
};
use crate::wa::creds::{Credentials, KeyPair, SignedPreKey};
use crate::wa::prekey::{OneTimeKey, PreKey, UploadedSignedKey};

/// Every Signal key of one device, in memory. `Debug` shows counts, never keys.
#[derive(Clone)]
pub struct MemoryStore {
    local: LocalIdentity,
    signed: SignedPreKey,
    prekeys: BTreeMap<u32, PreKey>,
    next_prekey_id: u32,
    identities: HashMap<SignalAddress, [u8; 32]>,
    sessions: HashMap<SignalAddress, Vec<u8>>,
    sender_keys: HashMap<SenderKeyId, Vec<u8>>,
}

impl MemoryStore {
    /// A store for a device with these keys and no one-time pre-keys yet.
    pub fn new(local: LocalIdentity, signed: SignedPreKey) -> Self {
        MemoryStore {
            local,
            signed,
            prekeys: BTreeMap::new(),
            next_prekey_id: 1,
            identities: HashMap::new(),
            sessions: HashMap::new(),
            sender_keys: HashMap::new(),
        }
    }

    /// A store with fresh keys (identity, signed pre-key 1, registration id).
    pub fn generate() -> Self {
        Self::from_credentials(&Credentials::generate())
    }

    pub fn from_credentials(creds: &Credentials) -> Self {
        Self::new(LocalIdentity::of(creds), creds.signed_pre_key.clone())
    }

    pub fn local(&self) -> &LocalIdentity {
        &self.local
    }

    pub fn signed_prekey(&self) -> &SignedPreKey {
        &self.signed
    }

    /// Makes `n` new one-time pre-keys (ids continue from the last one) and returns them for
    /// upload.
    pub fn generate_prekeys(&mut self, n: u32) -> Vec<PreKey> {
        (0..n)
            .map(|_| {
                let key = PreKey {
                    id: self.next_prekey_id,
                    key_pair: KeyPair::generate(),
                };
                self.next_prekey_id = (self.next_prekey_id % crate::wa::prekey::MAX_ID) + 1;
                self.prekeys.insert(key.id, key.clone());
                key
            })
            .collect()
    }

    /// This device's bundle as the server would hand it out, with `one_time` (one of ours).
    pub fn bundle(&self, one_time: Option<&PreKey>) -> Bundle {
        Bundle {
            registration_id: self.local.registration_id,
            identity: self.local.identity.public,
            signed: UploadedSignedKey {
                id: self.signed.id,
                public: self.signed.key_pair.public,
                signature: self.signed.signature,
            },
            one_time: one_time.map(|k| OneTimeKey {
                id: k.id,
                public: k.key_pair.public,
            }),
        }
    }

    /// How many unused one-time pre-keys are left.
    pub fn prekey_count(&self) -> usize {
        self.prekeys.len()
    }

    /// The addresses we hold sessions with.
    pub fn session_addresses(&self) -> Vec<SignalAddress> {
        let mut v: Vec<_> = self.sessions.keys().cloned().collect();
        v.sort();
        v
    }

    /// Overwrites a session's bytes (tests of healing a corrupted session).
    pub fn set_raw_session(&mut self, address: &SignalAddress, bytes: Vec<u8>) {
        self.sessions.insert(address.clone(), bytes);
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("registration_id", &self.local.registration_id)
            .field("prekeys", &self.prekeys.len())
            .field("identities", &self.identities.len())
            .field("sessions", &self.sessions.len())
            .field("sender_keys", &self.sender_keys.len())
            .finish_non_exhaustive()
    }
}

impl SignalStore for MemoryStore {
    fn local_identity(&self) -> Result<LocalIdentity, StoreFailure> {
        Ok(self.local.clone())
    }

    fn identity(&self, address: &SignalAddress) -> Result<Option<[u8; 32]>, StoreFailure> {
        Ok(self.identities.get(address).copied())
    }

    fn session(&self, address: &SignalAddress) -> Result<Option<Vec<u8>>, StoreFailure> {
        Ok(self.sessions.get(address).cloned())
    }

    fn prekey(&self, id: u32) -> Result<Option<PreKey>, StoreFailure> {
        Ok(self.prekeys.get(&id).cloned())
    }

    fn signed_prekey(&self, id: u32) -> Result<Option<SignedPreKey>, StoreFailure> {
        Ok((self.signed.id == id).then(|| self.signed.clone()))
    }

    fn sender_key(&self, id: &SenderKeyId) -> Result<Option<Vec<u8>>, StoreFailure> {
        Ok(self.sender_keys.get(id).cloned())
    }

    fn apply(&mut self, changes: Changes) -> Result<(), StoreFailure> {
        for address in changes.deleted_sessions {
            self.sessions.remove(&address);
        }
        self.sessions.extend(changes.sessions);
        self.identities.extend(changes.identities);
        for id in changes.used_prekeys {
            self.prekeys.remove(&id);
        }
        self.sender_keys.extend(changes.sender_keys);
        Ok(())
    }
}
