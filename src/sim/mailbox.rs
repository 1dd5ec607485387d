//! What the simulator keeps per device between connections: the stanzas pushed but not yet
//! acknowledged (redelivered first, with `offline`, at the next login) and the one-time
//! pre-key ids the device uploaded minus those consumed, and the public keys it uploaded (so
//! the relay can hand out its pre-key bundle). Saved in the state file.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::wa::node::{self, Node};
use crate::wa::prekey::{OneTimeKey, Upload, UploadedSignedKey};
use crate::wa::signal::Bundle;

/// The most unacknowledged stanzas kept per device; older ones are dropped (the real
/// server's offline queue is bounded too).
pub const MAX_QUEUED: usize = 4096;

/// One device's mailbox.
#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    /// Pushed (or queued while offline) and not acknowledged, oldest first.
    pub queue: VecDeque<Node>,
    /// One-time pre-key ids the server holds for the device.
    pub prekeys: BTreeSet<u32>,
    /// Accepted pre-key uploads.
    pub uploads: u64,
    /// The public keys of the last upload, for bundles; `None` before any upload.
    pub keys: Option<UploadedKeys>,
    /// The devices (`PHONE:DEV@s.whatsapp.net`) this device was told about, which it may
    /// address (`addressing.rs`).
    pub told: BTreeSet<String>,
}

/// How a mailbox stanza is told apart from the others: (tag, id, from).
pub fn key(node: &Node) -> (String, String, String) {
    let attr = |k: &str| node.get_attr(k).unwrap_or_default().to_string();
    (node.tag.clone(), attr("id"), attr("from"))
}

/// What a device uploaded that a peer needs for its bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedKeys {
    pub registration_id: u32,
    pub identity: [u8; 32],
    pub signed: UploadedSignedKey,
    /// Public one-time keys by id (ids also in `Mailbox::prekeys` while unused).
    pub one_time: BTreeMap<u32, [u8; 32]>,
}

impl Mailbox {
    /// Queues a stanza; answers false when the oldest had to be dropped to make room.
    pub fn push(&mut self, node: Node) -> bool {
        let room = self.queue.len() < MAX_QUEUED;
        if !room {
            self.queue.pop_front();
        }
        self.queue.push_back(node);
        room
    }

    /// Removes the stanzas of `tag` whose id is in `ids` (and whose `from` is `to`, when the
    /// client addressed its ack); answers how many it removed.
    pub fn close(&mut self, tag: &str, ids: &[&str], to: Option<&str>) -> usize {
        let before = self.queue.len();
        self.queue.retain(|n| {
            let hit = n.tag == tag
                && n.get_attr("id").is_some_and(|id| ids.contains(&id))
                && to.is_none_or(|to| n.get_attr("from") == Some(to));
            !hit
        });
        before - self.queue.len()
    }

    /// Whether a stanza with this id is still waiting for its ack.
    pub fn pending(&self, id: &str) -> bool {
        self.queue.iter().any(|n| n.get_attr("id") == Some(id))
    }

    /// Keeps an accepted upload: its ids count, its keys go into bundles.
    pub fn accept_upload(&mut self, upload: &Upload) {
        self.prekeys.extend(upload.keys.iter().map(|k| k.id));
        self.uploads += 1;
        let keys = self.keys.get_or_insert_with(|| UploadedKeys {
            registration_id: upload.registration_id,
            identity: upload.identity,
            signed: upload.signed.clone(),
            one_time: BTreeMap::new(),
        });
        keys.registration_id = upload.registration_id;
        keys.identity = upload.identity;
        keys.signed = upload.signed.clone();
        keys.one_time
            .extend(upload.keys.iter().map(|k| (k.id, k.public)));
    }

    /// The device's bundle for a peer, using up its lowest unused one-time key (a bundle
    /// without one when none is left); `None` before any upload.
    pub fn take_bundle(&mut self) -> Option<Bundle> {
        let keys = self.keys.as_mut()?;
        let id = self
            .prekeys
            .iter()
            .copied()
            .find(|id| keys.one_time.contains_key(id));
        let one_time = id.and_then(|id| {
            self.prekeys.remove(&id);
            keys.one_time
                .remove(&id)
                .map(|public| OneTimeKey { id, public })
        });
        Some(Bundle {
            registration_id: keys.registration_id,
            identity: keys.identity,
            signed: keys.signed.clone(),
            one_time,
        })
    }

    /// Removes up to `n` one-time pre-keys, lowest ids first (as peers fetch bundles);
    /// answers how many it removed.
    pub fn consume(&mut self, n: usize) -> usize {
        let taken: Vec<u32> = self.prekeys.iter().take(n).copied().collect();
        for id in &taken {
            self.prekeys.remove(id);
        }
        taken.len()
    }

    pub fn to_saved(&self) -> SavedMailbox {
        SavedMailbox {
            queue: self
                .queue
                .iter()
                .filter_map(|n| node::encode(n).ok())
                .map(|b| STANDARD.encode(b))
                .collect(),
            prekeys: self.prekeys.iter().copied().collect(),
            uploads: self.uploads,
            keys: self.keys.as_ref().map(SavedKeys::from),
            told: self.told.iter().cloned().collect(),
        }
    }

    /// Back from the state file; an entry that does not decode is a clear error.
    pub fn from_saved(saved: SavedMailbox) -> Result<Mailbox, String> {
        let queue = saved
            .queue
            .iter()
            .map(|text| {
                STANDARD
                    .decode(text)
                    .map_err(|e| e.to_string())
                    .and_then(|b| node::decode(&b).map_err(|e| e.to_string()))
            })
            .collect::<Result<VecDeque<Node>, String>>()
            .map_err(|e| format!("a queued stanza does not decode: {e}"))?;
        let keys = saved
            .keys
            .map(UploadedKeys::try_from)
            .transpose()
            .map_err(|e| format!("the uploaded keys do not decode: {e}"))?;
        Ok(Mailbox {
            queue,
            prekeys: saved.prekeys.into_iter().collect(),
            uploads: saved.uploads,
            keys,
            told: saved.told.into_iter().collect(),
        })
    }
}

/// A mailbox in the state file: stanzas as base64 of their binary encoding.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedMailbox {
    #[serde(default)]
    pub queue: Vec<String>,
    #[serde(default)]
    pub prekeys: Vec<u32>,
    #[serde(default)]
    pub uploads: u64,
    /// Absent in files before issue 12.
    #[serde(default)]
    pub keys: Option<SavedKeys>,
    /// Absent in files before the addressing checks.
    #[serde(default)]
    pub told: Vec<String>,
}

/// [`UploadedKeys`] in the state file, keys in base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedKeys {
    registration_id: u32,
    identity: String,
    signed_id: u32,
    signed_public: String,
    signed_signature: String,
    one_time: BTreeMap<u32, String>,
}

impl From<&UploadedKeys> for SavedKeys {
    fn from(k: &UploadedKeys) -> Self {
        SavedKeys {
            registration_id: k.registration_id,
            identity: STANDARD.encode(k.identity),
            signed_id: k.signed.id,
            signed_public: STANDARD.encode(k.signed.public),
            signed_signature: STANDARD.encode(k.signed.signature),
            one_time: k
                .one_time
                .iter()
                .map(|(id, v)| (*id, STANDARD.encode(v)))
                .collect(),
        }
    }
}

fn fixed<const N: usize>(text: &str) -> Result<[u8; N], String> {
    STANDARD
        .decode(text)
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|v: Vec<u8>| format!("{} bytes, expected {N}", v.len()))
}

impl TryFrom<SavedKeys> for UploadedKeys {
    type Error = String;

    fn try_from(k: SavedKeys) -> Result<Self, String> {
        Ok(UploadedKeys {
            registration_id: k.registration_id,
            identity: fixed(&k.identity)?,
            signed: UploadedSignedKey {
                id: k.signed_id,
                public: fixed(&k.signed_public)?,
                signature: fixed(&k.signed_signature)?,
            },
            one_time: k
                .one_time
                .iter()
                .map(|(id, v)| Ok((*id, fixed(v)?)))
                .collect::<Result<_, String>>()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn stanza(tag: &str, id: &str) -> Node {
        Node::new(tag).attr("id", id).attr("from", "s.whatsapp.net")
    }

    #[test]
    fn acks_close_by_tag_id_and_address_and_the_box_saves() {
        let mut mb = Mailbox::default();
        mb.push(stanza("notification", "1"));
        mb.push(stanza("message", "1"));
        mb.push(stanza("receipt", "2"));
        assert_eq!(mb.close("message", &["1"], Some("elsewhere")), 0);
        assert_eq!(mb.close("message", &["1"], Some("s.whatsapp.net")), 1);
        assert!(mb.pending("1"));
        assert_eq!(mb.close("notification", &["1"], None), 1);
        mb.prekeys.extend([5, 1, 9]);
        assert_eq!(mb.consume(2), 2);
        mb.told.insert("15550001111:0@s.whatsapp.net".into());
        let back = Mailbox::from_saved(mb.to_saved()).unwrap();
        assert_eq!(back.queue, mb.queue);
        assert_eq!(
            back.told, mb.told,
            "what the device was told survives a restart"
        );
        assert_eq!(back.prekeys.into_iter().collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn bundles_use_each_uploaded_key_once_and_survive_a_save() {
        use crate::wa::creds::{Credentials, KeyPair};
        use crate::wa::prekey::{PreKey, parse_upload, upload};
        let creds = Credentials::generate();
        let keys: Vec<PreKey> = (1..=3)
            .map(|id| PreKey {
                id,
                key_pair: KeyPair::generate(),
            })
            .collect();
        let mut mb = Mailbox::default();
        assert_eq!(mb.take_bundle(), None, "nothing before an upload");
        mb.accept_upload(&parse_upload(&upload("u", &creds, &keys)).unwrap());
        // An admin consume takes key 1 without handing it out.
        mb.consume(1);
        let mut back = Mailbox::from_saved(mb.to_saved()).unwrap();
        let first = back.take_bundle().unwrap();
        assert_eq!(first.identity, creds.identity.public);
        assert_eq!(first.registration_id, u32::from(creds.registration_id));
        let one_time = first.one_time.unwrap();
        assert_eq!(one_time.id, 2);
        assert_eq!(one_time.public, keys[1].key_pair.public);
        assert_eq!(back.take_bundle().unwrap().one_time.unwrap().id, 3);
        assert_eq!(back.take_bundle().unwrap().one_time, None);
        assert!(back.prekeys.is_empty());
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut mb = Mailbox::default();
        for i in 0..MAX_QUEUED {
            assert!(mb.push(stanza("receipt", &i.to_string())));
        }
        assert!(!mb.push(stanza("receipt", "last")));
        assert_eq!(mb.queue.len(), MAX_QUEUED);
        assert!(!mb.pending("0") && mb.pending("last"));
    }
}
