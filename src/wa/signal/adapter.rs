//! The bridge between our synchronous [`SignalStore`] and the library's async store traits:
//! each operation loads what it needs into small in-memory slots, runs the library on them
//! (its futures never wait on anything, so they are driven to completion in place), and turns
//! what the slots saw written into one [`Changes`].

use async_trait::async_trait;
use futures::executor::block_on;
use wacore_libsignal::protocol::{
    self as lib, CiphertextMessage, CiphertextMessageType, DeviceId, Direction,
    GenericSignedPreKey, IdentityChange, IdentityKey, IdentityKeyPair, PreKeyBundle, PreKeyId,
    PreKeyRecord, PreKeySignalMessage, PrivateKey, ProtocolAddress, PublicKey,
    SenderKeyDistributionMessage, SenderKeyName, SenderKeyRecord, SessionRecord, SignalMessage,
    SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, Timestamp, UsePQRatchet,
};

use super::{
    Bundle, Changes, Decrypted, EncType, SenderKeyId, SignalAddress, SignalError, SignalStore,
};
use crate::wa::creds::KeyPair;
use crate::wa::xeddsa::OsNonce;

type LibResult<T> = Result<T, SignalProtocolError>;

fn lib_err(address: &SignalAddress) -> impl Fn(SignalProtocolError) -> SignalError + '_ {
    move |source| SignalError::Protocol {
        address: address.clone(),
        source,
    }
}

fn lib_key_pair(pair: &KeyPair) -> Result<lib::KeyPair, SignalProtocolError> {
    let public = PublicKey::from_djb_public_key_bytes(&pair.public)?;
    let private = PrivateKey::deserialize(pair.private.expose())?;
    Ok(lib::KeyPair::new(public, private))
}

/// The one peer session an operation touches.
struct SessionSlot {
    address: ProtocolAddress,
    record: Option<SessionRecord>,
    dirty: bool,
}

impl SessionSlot {
    fn load(store: &dyn SignalStore, address: &SignalAddress) -> Result<Self, SignalError> {
        let record = match store.session(address).map_err(SignalError::Store)? {
            None => None,
            Some(bytes) => {
                let mut record = SessionRecord::deserialize(&bytes).map_err(lib_err(address))?;
                // We persist before the wire: see the module docs of `signal`.
                record.waive_counter_lease();
                Some(record)
            }
        };
        Ok(SessionSlot {
            address: address.protocol(),
            record,
            dirty: false,
        })
    }

    fn changes(&self, address: &SignalAddress, changes: &mut Changes) -> Result<(), SignalError> {
        if let (true, Some(record)) = (self.dirty, &self.record) {
            let bytes = record.serialize().map_err(lib_err(address))?;
            changes.sessions.push((address.clone(), bytes));
        }
        Ok(())
    }
}

#[async_trait]
impl lib::SessionStore for SessionSlot {
    async fn load_session(&self, address: &ProtocolAddress) -> LibResult<Option<SessionRecord>> {
        Ok(if *address == self.address {
            self.record.clone()
        } else {
            None
        })
    }

    async fn has_session(&self, address: &ProtocolAddress) -> LibResult<bool> {
        Ok(*address == self.address && self.record.is_some())
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        mut record: SessionRecord,
    ) -> LibResult<()> {
        if *address != self.address {
            return Err(SignalProtocolError::InvalidArgument(format!(
                "session for {address} stored while working on {}",
                self.address
            )));
        }
        record.waive_counter_lease();
        self.record = Some(record);
        self.dirty = true;
        Ok(())
    }
}

/// Our identity and the one peer identity an operation touches. Trust on first use, as both
/// reference clients do (§4.3): every identity is trusted and a new one replaces the old.
struct IdentitySlot {
    local: IdentityKeyPair,
    registration_id: u32,
    known: Option<IdentityKey>,
    saved: Option<IdentityKey>,
}

impl IdentitySlot {
    fn load(store: &dyn SignalStore, address: &SignalAddress) -> Result<Self, SignalError> {
        let local = store.local_identity().map_err(SignalError::Store)?;
        let pair = lib_key_pair(&local.identity).map_err(lib_err(address))?;
        let known = match store.identity(address).map_err(SignalError::Store)? {
            None => None,
            Some(raw) => Some(IdentityKey::new(
                PublicKey::from_djb_public_key_bytes(&raw)
                    .map_err(|e| lib_err(address)(e.into()))?,
            )),
        };
        Ok(IdentitySlot {
            local: IdentityKeyPair::new(IdentityKey::new(pair.public_key), pair.private_key),
            registration_id: local.registration_id,
            known,
            saved: None,
        })
    }

    fn changes(&self, address: &SignalAddress, changes: &mut Changes) {
        if let Some(saved) = &self.saved
            && let Ok(raw) = <[u8; 32]>::try_from(saved.public_key().public_key_bytes())
        {
            changes.identities.push((address.clone(), raw));
        }
    }
}

#[async_trait]
impl lib::IdentityKeyStore for IdentitySlot {
    async fn get_identity_key_pair(&self) -> LibResult<IdentityKeyPair> {
        Ok(self.local.clone())
    }

    async fn get_local_registration_id(&self) -> LibResult<u32> {
        Ok(self.registration_id)
    }

    async fn save_identity(
        &mut self,
        _address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> LibResult<IdentityChange> {
        let replaced = self.known.as_ref().is_some_and(|known| known != identity);
        if self.known.as_ref() != Some(identity) {
            self.saved = Some(*identity);
            self.known = Some(*identity);
        }
        Ok(IdentityChange::from_changed(replaced))
    }

    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> LibResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, _address: &ProtocolAddress) -> LibResult<Option<IdentityKey>> {
        Ok(self.known)
    }
}

/// The one-time and signed pre-key a pkmsg names.
struct PreKeySlot {
    one_time: Option<(u32, PreKeyRecord)>,
    signed: Option<(u32, SignedPreKeyRecord)>,
    used: Vec<u32>,
}

#[async_trait]
impl lib::PreKeyStore for PreKeySlot {
    async fn get_pre_key(&self, prekey_id: PreKeyId) -> LibResult<PreKeyRecord> {
        match &self.one_time {
            Some((id, record)) if *id == u32::from(prekey_id) => Ok(record.clone()),
            _ => Err(SignalProtocolError::InvalidPreKeyId),
        }
    }

    async fn save_pre_key(&mut self, _id: PreKeyId, _record: &PreKeyRecord) -> LibResult<()> {
        Ok(())
    }

    async fn remove_pre_key(&mut self, prekey_id: PreKeyId) -> LibResult<()> {
        self.used.push(prekey_id.into());
        Ok(())
    }
}

#[async_trait]
impl lib::SignedPreKeyStore for PreKeySlot {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> LibResult<SignedPreKeyRecord> {
        match &self.signed {
            Some((have, record)) if *have == u32::from(id) => Ok(record.clone()),
            _ => Err(SignalProtocolError::InvalidSignedPreKeyId),
        }
    }

    async fn save_signed_pre_key(
        &mut self,
        _id: SignedPreKeyId,
        _record: &SignedPreKeyRecord,
    ) -> LibResult<()> {
        Ok(())
    }
}

impl PreKeySlot {
    fn load(
        store: &dyn SignalStore,
        address: &SignalAddress,
        message: &PreKeySignalMessage,
    ) -> Result<Self, SignalError> {
        let one_time = match message.pre_key_id() {
            None => None,
            Some(id) => {
                let id = u32::from(id);
                match store.prekey(id).map_err(SignalError::Store)? {
                    None => None,
                    Some(key) => {
                        let pair = lib_key_pair(&key.key_pair).map_err(lib_err(address))?;
                        Some((id, PreKeyRecord::new(id.into(), &pair)))
                    }
                }
            }
        };
        let signed_id = u32::from(message.signed_pre_key_id());
        let signed = match store.signed_prekey(signed_id).map_err(SignalError::Store)? {
            None => None,
            Some(spk) => {
                let pair = lib_key_pair(&spk.key_pair).map_err(lib_err(address))?;
                let record = SignedPreKeyRecord::new(
                    signed_id.into(),
                    Timestamp::from_epoch_millis(0),
                    &pair,
                    &spk.signature,
                );
                Some((signed_id, record))
            }
        };
        Ok(PreKeySlot {
            one_time,
            signed,
            used: Vec::new(),
        })
    }
}

/// The one sender key an operation touches.
struct SenderKeySlot {
    name: SenderKeyName,
    record: Option<SenderKeyRecord>,
    dirty: bool,
}

impl SenderKeySlot {
    fn load(store: &dyn SignalStore, id: &SenderKeyId) -> Result<Self, SignalError> {
        let record = match store.sender_key(id).map_err(SignalError::Store)? {
            None => None,
            Some(bytes) => {
                let mut record =
                    SenderKeyRecord::deserialize(&bytes).map_err(lib_err(&id.sender))?;
                record.waive_counter_lease().map_err(lib_err(&id.sender))?;
                Some(record)
            }
        };
        Ok(SenderKeySlot {
            name: SenderKeyName::new(id.group.clone(), id.sender.to_string()),
            record,
            dirty: false,
        })
    }

    fn apply(self, store: &mut dyn SignalStore, id: &SenderKeyId) -> Result<(), SignalError> {
        let mut changes = Changes::default();
        if let (true, Some(record)) = (self.dirty, &self.record) {
            let bytes = record.serialize().map_err(lib_err(&id.sender))?;
            changes.sender_keys.push((id.clone(), bytes));
        }
        apply(store, changes)
    }
}

#[async_trait]
impl lib::SenderKeyStore for SenderKeySlot {
    async fn store_sender_key(
        &mut self,
        name: &SenderKeyName,
        mut record: SenderKeyRecord,
    ) -> LibResult<()> {
        if *name != self.name {
            return Err(SignalProtocolError::InvalidArgument(
                "sender key stored under another name".to_string(),
            ));
        }
        record.waive_counter_lease()?;
        self.record = Some(record);
        self.dirty = true;
        Ok(())
    }

    async fn load_sender_key(&self, name: &SenderKeyName) -> LibResult<Option<SenderKeyRecord>> {
        Ok(if *name == self.name {
            self.record.clone()
        } else {
            None
        })
    }
}

fn apply(store: &mut dyn SignalStore, changes: Changes) -> Result<(), SignalError> {
    if changes.is_empty() {
        return Ok(());
    }
    store.apply(changes).map_err(SignalError::Store)
}

pub(super) fn process_bundle(
    store: &mut dyn SignalStore,
    address: &SignalAddress,
    bundle: &Bundle,
) -> Result<(), SignalError> {
    let bad = || SignalError::BadBundle(address.clone());
    let identity = IdentityKey::new(
        PublicKey::from_djb_public_key_bytes(&bundle.identity).map_err(|_| bad())?,
    );
    let signed = PublicKey::from_djb_public_key_bytes(&bundle.signed.public).map_err(|_| bad())?;
    let one_time = match &bundle.one_time {
        None => None,
        Some(k) => Some((
            PreKeyId::from(k.id),
            PublicKey::from_djb_public_key_bytes(&k.public).map_err(|_| bad())?,
        )),
    };
    let lib_bundle = PreKeyBundle::new(
        bundle.registration_id,
        DeviceId::new(address.device),
        one_time,
        SignedPreKeyId::from(bundle.signed.id),
        signed,
        bundle.signed.signature.to_vec(),
        identity,
    )
    .map_err(lib_err(address))?;
    // A bundle always starts a fresh session, as after a retry receipt with keys (§4.6).
    let mut sessions = SessionSlot::load(store, address)?;
    let mut identities = IdentitySlot::load(store, address)?;
    block_on(lib::process_prekey_bundle(
        &sessions.address.clone(),
        &mut sessions,
        &mut identities,
        &lib_bundle,
        &mut OsNonce,
        UsePQRatchet::No,
    ))
    .map_err(lib_err(address))?;
    let mut changes = Changes::default();
    sessions.changes(address, &mut changes)?;
    identities.changes(address, &mut changes);
    apply(store, changes)
}

pub(super) fn encrypt(
    store: &mut dyn SignalStore,
    address: &SignalAddress,
    plaintext: &[u8],
) -> Result<(EncType, Vec<u8>), SignalError> {
    let mut sessions = SessionSlot::load(store, address)?;
    if sessions.record.is_none() {
        return Err(SignalError::NoSession(address.clone()));
    }
    let mut identities = IdentitySlot::load(store, address)?;
    let message = block_on(lib::message_encrypt(
        plaintext,
        &sessions.address.clone(),
        &mut sessions,
        &mut identities,
    ))
    .map_err(lib_err(address))?;
    let enc_type = match message.message_type() {
        CiphertextMessageType::PreKey => EncType::PkMsg,
        _ => EncType::Msg,
    };
    let bytes = message.serialize().to_vec();
    let mut changes = Changes::default();
    sessions.changes(address, &mut changes)?;
    identities.changes(address, &mut changes);
    apply(store, changes)?;
    Ok((enc_type, bytes))
}

pub(super) fn decrypt(
    store: &mut dyn SignalStore,
    address: &SignalAddress,
    enc_type: EncType,
    bytes: &[u8],
) -> Result<Decrypted, SignalError> {
    let malformed = |kind: &'static str| {
        move |e: SignalProtocolError| SignalError::Malformed {
            kind,
            address: address.clone(),
            reason: e.to_string(),
        }
    };
    let (message, mut prekeys) = match enc_type {
        EncType::PkMsg => {
            let m = PreKeySignalMessage::try_from(bytes).map_err(malformed("pkmsg"))?;
            let prekeys = PreKeySlot::load(store, address, &m)?;
            (CiphertextMessage::PreKeySignalMessage(m), prekeys)
        }
        EncType::Msg => {
            let m = SignalMessage::try_from(bytes).map_err(malformed("msg"))?;
            let none = PreKeySlot {
                one_time: None,
                signed: None,
                used: Vec::new(),
            };
            (CiphertextMessage::SignalMessage(m), none)
        }
        EncType::SkMsg => {
            return Err(SignalError::Malformed {
                kind: "skmsg",
                address: address.clone(),
                reason: "a group message needs group_decrypt".to_string(),
            });
        }
    };
    let mut sessions = SessionSlot::load(store, address)?;
    if enc_type == EncType::Msg && sessions.record.is_none() {
        return Err(SignalError::NoSession(address.clone()));
    }
    let mut identities = IdentitySlot::load(store, address)?;
    let signed = PreKeySlot {
        one_time: None,
        signed: prekeys.signed.take(),
        used: Vec::new(),
    };
    let result = block_on(lib::message_decrypt(
        &message,
        &sessions.address.clone(),
        &mut sessions,
        &mut identities,
        &mut prekeys,
        &signed,
        &mut OsNonce,
        UsePQRatchet::No,
    ))
    .map_err(lib_err(address))?;
    let mut changes = Changes::default();
    sessions.changes(address, &mut changes)?;
    identities.changes(address, &mut changes);
    changes.used_prekeys = prekeys.used;
    // The library leaves deleting the used one-time key to us, with the session write.
    if let Some(id) = result.consumed_prekey_id {
        let id = u32::from(id);
        if !changes.used_prekeys.contains(&id) {
            changes.used_prekeys.push(id);
        }
    }
    apply(store, changes)?;
    Ok(Decrypted {
        plaintext: result.plaintext,
        identity_changed: result.identity_change == IdentityChange::ReplacedExisting,
    })
}

pub(super) fn process_skdm(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
    skdm: &[u8],
) -> Result<(), SignalError> {
    let message =
        SenderKeyDistributionMessage::try_from(skdm).map_err(|e| SignalError::Malformed {
            kind: "sender key distribution",
            address: id.sender.clone(),
            reason: e.to_string(),
        })?;
    let mut slot = SenderKeySlot::load(store, id)?;
    let name = slot.name.clone();
    block_on(lib::process_sender_key_distribution_message(
        &name, &message, &mut slot,
    ))
    .map_err(lib_err(&id.sender))?;
    slot.apply(store, id)
}

pub(super) fn group_decrypt(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
    bytes: &[u8],
) -> Result<Vec<u8>, SignalError> {
    let mut slot = SenderKeySlot::load(store, id)?;
    if slot.record.is_none() {
        return Err(SignalError::NoSenderKey(id.to_string()));
    }
    let name = slot.name.clone();
    let plaintext =
        block_on(lib::group_decrypt(bytes, &mut slot, &name)).map_err(lib_err(&id.sender))?;
    slot.apply(store, id)?;
    Ok(plaintext)
}

pub(super) fn create_skdm(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
) -> Result<Vec<u8>, SignalError> {
    let mut slot = SenderKeySlot::load(store, id)?;
    let name = slot.name.clone();
    let message = block_on(lib::create_sender_key_distribution_message(
        &name,
        &mut slot,
        &mut OsNonce,
    ))
    .map_err(lib_err(&id.sender))?;
    slot.apply(store, id)?;
    Ok(message.serialized().to_vec())
}

pub(super) fn group_encrypt(
    store: &mut dyn SignalStore,
    id: &SenderKeyId,
    plaintext: &[u8],
) -> Result<Vec<u8>, SignalError> {
    let mut slot = SenderKeySlot::load(store, id)?;
    if slot.record.is_none() {
        return Err(SignalError::NoSenderKey(id.to_string()));
    }
    let name = slot.name.clone();
    let message = block_on(lib::group_encrypt(
        &mut slot,
        &name,
        plaintext,
        &mut OsNonce,
    ))
    .map_err(lib_err(&id.sender))?;
    slot.apply(store, id)?;
    Ok(message.serialized().to_vec())
}
