//! [`KeySignalStore`]: the `wa::signal::SignalStore` of one session over `keys.db`. Reads go
//! to the database; an operation's `Changes` become one transaction, so the ratchet on disk
//! is always one a peer can continue from. Our identity and signed pre-key come from the
//! session's credentials.

use std::fmt;
use std::sync::Arc;

use super::SecretBody;
use super::keys::{KeyStore, KeysError};
use super::signal::{SignalKind, SignalWrite};
use crate::wa::creds::{Credentials, SignedPreKey};
use crate::wa::prekey::PreKey;
use crate::wa::signal::{
    Changes, LocalIdentity, SenderKeyId, SignalAddress, SignalStore, StoreFailure,
};

/// One session's Signal keys in the key database. Cheap to clone; `Debug` names the
/// session only.
pub struct KeySignalStore {
    keys: Arc<KeyStore>,
    session: String,
    local: LocalIdentity,
    signed: SignedPreKey,
    /// While held, writes wait here instead of being committed (`hold`, `take_held`).
    held: Option<Vec<SignalWrite>>,
}

impl Clone for KeySignalStore {
    /// A clone holds no writes of the original's.
    fn clone(&self) -> Self {
        KeySignalStore {
            keys: self.keys.clone(),
            session: self.session.clone(),
            local: self.local.clone(),
            signed: self.signed.clone(),
            held: None,
        }
    }
}

impl KeySignalStore {
    /// From now on, writes wait to be committed by the caller with what they belong to (a
    /// decrypted message with its inbox row). Only for one operation: a later read in the
    /// same hold would not see them.
    pub fn hold(&mut self) {
        self.held = Some(Vec::new());
    }

    /// The held writes; commits go straight to the database again.
    pub fn take_held(&mut self) -> Vec<SignalWrite> {
        self.held.take().unwrap_or_default()
    }

    /// Keeps app-state keys our own phone shared, for this session.
    pub fn put_app_state_keys(
        &self,
        keys: &[super::app_state_keys::AppStateKey],
    ) -> Result<(), KeysError> {
        self.keys.app_state_keys_put(&self.session, keys)
    }
}

impl fmt::Debug for KeySignalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySignalStore")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl KeySignalStore {
    pub fn new(keys: Arc<KeyStore>, session: &str, creds: &Credentials) -> Self {
        KeySignalStore {
            keys,
            session: session.to_owned(),
            local: LocalIdentity::of(creds),
            signed: creds.signed_pre_key.clone(),
            held: None,
        }
    }

    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    pub fn session_id(&self) -> &str {
        &self.session
    }

    fn get(&self, kind: SignalKind, name: &str) -> Result<Option<SecretBody>, StoreFailure> {
        Ok(self.keys.signal_get(&self.session, kind, name)?)
    }
}

/// The writes one `Changes` value stands for, in an order that deletes before it writes.
pub fn writes_of(changes: Changes) -> Vec<SignalWrite> {
    let mut writes = Vec::new();
    for address in changes.deleted_sessions {
        writes.push(SignalWrite::Delete {
            kind: SignalKind::Session,
            name: address.to_string(),
        });
    }
    for (address, record) in changes.sessions {
        writes.push(SignalWrite::Put {
            kind: SignalKind::Session,
            name: address.to_string(),
            value: SecretBody::new(record),
        });
    }
    for (address, key) in changes.identities {
        writes.push(SignalWrite::Put {
            kind: SignalKind::Identity,
            name: address.to_string(),
            value: SecretBody::new(key.to_vec()),
        });
    }
    for id in changes.used_prekeys {
        writes.push(SignalWrite::TakePreKey(id));
    }
    for (id, record) in changes.sender_keys {
        writes.push(SignalWrite::Put {
            kind: SignalKind::SenderKey,
            name: id.to_string(),
            value: SecretBody::new(record),
        });
    }
    writes
}

impl SignalStore for KeySignalStore {
    fn local_identity(&self) -> Result<LocalIdentity, StoreFailure> {
        Ok(self.local.clone())
    }

    fn identity(&self, address: &SignalAddress) -> Result<Option<[u8; 32]>, StoreFailure> {
        let found = self.get(SignalKind::Identity, &address.to_string())?;
        Ok(found.and_then(|b| <[u8; 32]>::try_from(b.expose()).ok()))
    }

    fn session(&self, address: &SignalAddress) -> Result<Option<Vec<u8>>, StoreFailure> {
        let found = self.get(SignalKind::Session, &address.to_string())?;
        Ok(found.map(|b| b.expose().to_vec()))
    }

    fn prekey(&self, id: u32) -> Result<Option<PreKey>, StoreFailure> {
        Ok(self.keys.prekey(&self.session, id)?)
    }

    fn signed_prekey(&self, id: u32) -> Result<Option<SignedPreKey>, StoreFailure> {
        Ok((id == self.signed.id).then(|| self.signed.clone()))
    }

    fn sender_key(&self, id: &SenderKeyId) -> Result<Option<Vec<u8>>, StoreFailure> {
        let found = self.get(SignalKind::SenderKey, &id.to_string())?;
        Ok(found.map(|b| b.expose().to_vec()))
    }

    fn apply(&mut self, changes: Changes) -> Result<(), StoreFailure> {
        if changes.is_empty() {
            return Ok(());
        }
        if let Some(held) = &mut self.held {
            held.extend(writes_of(changes));
            return Ok(());
        }
        Ok(self.keys.signal_apply(&self.session, &writes_of(changes))?)
    }
}
