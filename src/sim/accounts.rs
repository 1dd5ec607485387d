//! The simulated accounts' phones (device 0) as full Signal devices: an in-memory key store,
//! what each phone decrypted (`GET /admin/messages`), the messages it sent (kept for retry
//! receipts), and how it answers a copy addressed to it: a delivery receipt (`sender` for
//! its own account's device-sent copies) or, when it cannot decrypt, a retry receipt.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::wa::jid::{Jid, LID_SERVER, PN_SERVER};
use crate::wa::message::{self, Body, Message};
use crate::wa::messaging::receipt::{self, ReceiptKind, RetryKeys};
use crate::wa::messaging::stanza::Incoming;
use crate::wa::node::Node;
use crate::wa::signal::{self, Bundle, MemoryStore, SignalAddress};

/// Sent messages a phone keeps for retries (whatsmeow keeps 256).
const SENT_KEPT: usize = 256;
/// Decrypted messages a phone keeps for `GET /admin/messages`.
const INBOX_KEPT: usize = 10_000;

/// One message a phone decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    pub id: String,
    /// The sending device.
    pub from: String,
    /// The chat a device-sent copy went to (our own account sent it from another device).
    pub to: Option<String>,
    /// The text; `None` for other message types (see `kind`).
    pub text: Option<String>,
    /// `text`, or the type name of what else it is.
    pub kind: String,
    /// Server time of delivery (unix seconds).
    pub time: u64,
}

/// A message a phone sent: kept so a retry receipt can be answered.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    /// The chat (bare user JID).
    pub chat: Jid,
    pub message: Message,
}

/// One simulated account's phone.
#[derive(Debug)]
pub struct PhoneAccount {
    /// Digits.
    pub phone: String,
    /// The account's LID user part.
    pub lid: String,
    pub store: MemoryStore,
    pub inbox: VecDeque<Received>,
    sent: VecDeque<Sent>,
    retries: HashMap<String, u32>,
    /// Receipts the phone got for what it sent, by kind (`delivered`, `read`, ...).
    pub receipts: HashMap<String, u64>,
    /// (message id, sender's user) of everything decrypted: a second copy of an id (a
    /// resend after a lost ack, with a new ciphertext) is receipted but not kept again.
    seen: HashSet<(String, String)>,
    /// Copies dropped that way.
    pub duplicates: u64,
}

/// What a phone answers to a copy addressed to it.
pub enum Answer {
    /// Decrypted: this receipt goes to the sender (as the phone sends it, with `to`).
    Receipt(Node),
    /// Not decrypted: this retry receipt goes to the sender.
    Retry(Node),
}

impl PhoneAccount {
    pub fn new(phone: &str, lid: &str) -> Self {
        PhoneAccount {
            phone: phone.to_string(),
            lid: lid.to_string(),
            store: MemoryStore::generate(),
            inbox: VecDeque::new(),
            sent: VecDeque::new(),
            retries: HashMap::new(),
            receipts: HashMap::new(),
            seen: HashSet::new(),
            duplicates: 0,
        }
    }

    /// The phone's JID (`PHONE@s.whatsapp.net`).
    pub fn jid(&self) -> Jid {
        Jid::new(&self.phone, 0, PN_SERVER)
    }

    pub fn lid_jid(&self) -> Jid {
        Jid::new(&self.lid, 0, LID_SERVER)
    }

    /// The phone's bundle with a fresh one-time key (as if it had uploaded one more).
    pub fn bundle(&mut self) -> Bundle {
        let key = self.store.generate_prekeys(1);
        self.store.bundle(key.first())
    }

    /// Keys for a retry receipt: a fresh one-time key and the signed pre-key.
    fn retry_keys(&mut self) -> RetryKeys {
        let bundle = self.bundle();
        RetryKeys {
            identity: bundle.identity,
            one_time: bundle.one_time.unwrap_or(crate::wa::prekey::OneTimeKey {
                id: 0,
                public: [0; 32],
            }),
            signed: bundle.signed,
            device_identity: Vec::new(),
        }
    }

    /// Decrypts a copy from `message.from`, keeps what it says, and answers the sender.
    pub fn receive(&mut self, message: &Incoming, now: u64) -> Answer {
        let sender = SignalAddress::of(&message.from);
        let mut failed = message.encs.is_empty();
        for enc in &message.encs {
            let decoded = enc
                .enc_type()
                .ok_or_else(|| format!("unknown enc type {}", enc.kind))
                .and_then(|t| {
                    signal::decrypt(&mut self.store, &sender, t, &enc.ciphertext)
                        .map_err(|e| e.to_string())
                })
                .and_then(|d| {
                    let (m, body) =
                        message::decode_padded(&d.plaintext).map_err(|e| e.to_string())?;
                    Ok((m.clone(), m.body(body)))
                });
            match decoded {
                Ok((m, body)) => self.keep(message, &m, body, now),
                Err(why) => {
                    tracing::debug!(phone = %self.phone, from = %message.from, id = %message.id, %why, "the phone could not decrypt");
                    failed = true;
                }
            }
        }
        if !failed {
            self.retries.remove(&message.id);
            return Answer::Receipt(receipt::receipt_for(message, &ReceiptKind::Delivered));
        }
        let count = self.retries.entry(message.id.clone()).or_default();
        *count += 1;
        let count = *count;
        let no_session = !signal::has_session(&self.store, &sender).unwrap_or(false);
        let keys = (count > 1 || no_session).then(|| self.retry_keys());
        let registration = self.store.local().registration_id;
        Answer::Retry(receipt::retry_receipt(
            message,
            count,
            registration,
            keys.as_ref(),
        ))
    }

    fn keep(&mut self, message: &Incoming, m: &Message, body: Body, now: u64) {
        let seen = (message.id.clone(), message.from.to_user().to_string());
        if !self.seen.insert(seen) {
            self.duplicates += 1;
            return;
        }
        let to = m
            .destination()
            .map(str::to_string)
            .or_else(|| message.recipient.as_ref().map(Jid::to_string));
        let (text, kind) = match body {
            Body::Text(t) => (Some(t), "text".to_string()),
            Body::Other { kind, .. } => (None, kind),
        };
        if self.inbox.len() >= INBOX_KEPT {
            self.inbox.pop_front();
        }
        self.inbox.push_back(Received {
            id: message.id.clone(),
            from: message.from.to_string(),
            to,
            text,
            kind,
            time: now,
        });
    }

    /// Remembers a sent message for retries.
    pub fn sent(&mut self, sent: Sent) {
        if self.sent.len() >= SENT_KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back(sent);
    }

    pub fn find_sent(&self, id: &str) -> Option<&Sent> {
        self.sent.iter().rev().find(|s| s.id == id)
    }

    /// Counts a receipt for one of the phone's messages.
    pub fn got_receipt(&mut self, kind: &ReceiptKind) {
        let name = kind.as_attr().unwrap_or("delivered").to_string();
        *self.receipts.entry(name).or_default() += 1;
    }
}

/// A stanza one device sent (with `to`) as the server delivers it to the addressee: `to`
/// removed, `from` = the sender, and `t` when it had none.
pub fn as_delivered(mut node: Node, from: &Jid, now: u64) -> Node {
    node.attrs.retain(|(k, _)| k != "to");
    node.set_attr("from", from.to_string());
    if node.get_attr("t").is_none() {
        node.set_attr("t", now.to_string());
    }
    node
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::wa::messaging::stanza::Enc;

    /// A resend carries the same id in a new ciphertext: the phone receipts it and keeps the
    /// message once.
    #[test]
    fn a_second_copy_of_an_id_is_receipted_and_not_kept_again() {
        let mut phone = PhoneAccount::new("15550009999", "100000000000001");
        let mut sender = MemoryStore::generate();
        let sender_jid = Jid::new("15550001111", 3, PN_SERVER);
        let phone_address = SignalAddress::of(&phone.jid());
        signal::process_bundle(&mut sender, &phone_address, &phone.bundle()).unwrap();
        let copy = |sender: &mut MemoryStore| {
            let padded = message::encode_padded(&Message::text("once"));
            let (kind, bytes) = signal::encrypt(sender, &phone_address, &padded).unwrap();
            Incoming {
                id: "3EB0SAMEID".into(),
                from: sender_jid.clone(),
                t: 1,
                kind: "text".into(),
                recipient: None,
                participant: None,
                sender_lid: None,
                notify: None,
                offline: false,
                encs: vec![Enc::new(kind, bytes)],
            }
        };
        let (first, second) = (copy(&mut sender), copy(&mut sender));
        assert_ne!(first.encs[0].ciphertext, second.encs[0].ciphertext);
        assert!(matches!(phone.receive(&first, 1), Answer::Receipt(_)));
        assert!(matches!(phone.receive(&second, 2), Answer::Receipt(_)));
        assert_eq!(phone.inbox.len(), 1, "kept once");
        assert_eq!(phone.duplicates, 1);
    }
}
