//! Receiving (PROTOCOL-MESSAGING.md §4, §5): decrypt each `<enc>` of a `<message>`, unpad and
//! decode, report it and answer with the delivery receipt; on failure a retry receipt (with
//! fresh keys from the second try on) and a plain ack. Receipts for our messages become
//! status changes; a retry receipt makes us resend.

use tracing::{debug, info, warn};

use super::{MessageEvent, MessageEventKind, MessageStatus, Messenger, ReceivedMessage};
use crate::store::SecretBody;
use crate::store::app_state_keys::AppStateKey;
use crate::store::outbox::InboxEntry;
use crate::store::signal::SignalWrite;
use crate::wa::ack;
use crate::wa::jid::Jid;
use crate::wa::message::{AppStateSyncKey, Body, decode_padded};
use crate::wa::messaging::receipt::{
    MAX_RETRY_COUNT, Receipt, ReceiptKind, RetryKeys, parse_retry, receipt_for, retry_receipt,
};
use crate::wa::messaging::stanza::Incoming;
use crate::wa::node::Node;
use crate::wa::prekey::{OneTimeKey, UploadedSignedKey};
use crate::wa::signal::{self, EncType, SenderKeyId, SignalAddress, SignalError};
use wacore_libsignal::protocol::SignalProtocolError;

/// What decrypting one stanza came to.
enum Outcome {
    /// The plaintext, and for a 1:1 message the ratchet writes still to commit (with the
    /// message's inbox row, in one transaction).
    Decrypted(Vec<u8>, Vec<SignalWrite>),
    /// Already decrypted before (a redelivery after a crash or a lost receipt).
    Duplicate,
    Failed(SignalError),
    /// No `<enc>` we can read.
    Nothing,
}

impl Messenger {
    pub(super) async fn on_message(&mut self, node: &Node) {
        let own_jid = self.own_jid();
        let incoming = match Incoming::parse(node) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "unreadable message: nacked");
                if let Some(nack) = ack::ack(node, own_jid.as_deref()) {
                    self.send_ack(nack.attr("error", "487")).await;
                }
                return;
            }
        };
        match self.decrypt(&incoming).await {
            Outcome::Decrypted(padded, held) => {
                if !self.delivered(&incoming, &padded, held).await {
                    // Not stored (the key store refused: lease lost, Redis down): no receipt,
                    // so the server delivers it again, to whichever node then holds the lease.
                    return;
                }
                self.retry_counts.remove(&incoming.id);
                self.send_node(receipt_for(&incoming, &ReceiptKind::Delivered))
                    .await;
            }
            Outcome::Duplicate => {
                debug!(id = %incoming.id, "message decrypted before: receipt again");
                self.send_node(receipt_for(&incoming, &ReceiptKind::Delivered))
                    .await;
            }
            Outcome::Failed(e) => {
                self.metrics.decrypt_failures.inc();
                warn!(id = %incoming.id, from = %incoming.from, error = %e, "could not decrypt a message");
                self.ask_again(&incoming).await;
                if let Some(plain) = ack::ack(node, own_jid.as_deref()) {
                    self.send_ack(plain).await;
                }
            }
            Outcome::Nothing => {
                if let Some(plain) = ack::ack(node, own_jid.as_deref()) {
                    self.send_ack(plain).await;
                }
            }
        }
    }

    /// Our device JID (the `from` of message acks), once paired.
    fn own_jid(&self) -> Option<String> {
        let (_, _, creds) = self.link.as_ref()?;
        creds.account.as_ref().map(|a| a.jid.clone())
    }

    /// Sends an ack and counts it with the driver's.
    async fn send_ack(&self, ack: Node) {
        if self.send_node(ack).await {
            self.metrics.acks_sent.inc();
        }
    }

    async fn decrypt(&self, incoming: &Incoming) -> Outcome {
        let sender = incoming.sender().clone();
        let group = incoming
            .participant
            .is_some()
            .then(|| incoming.from.to_string());
        let encs = incoming.encs.clone();
        let done = self
            .blocking(move |store| {
                let address = SignalAddress::of(&sender);
                let mut out = Outcome::Nothing;
                // One 1:1 copy: its ratchet step is committed with the message itself.
                let hold = group.is_none() && encs.len() == 1;
                if hold {
                    store.hold();
                }
                for enc in &encs {
                    let result = match enc.enc_type() {
                        Some(kind @ (EncType::PkMsg | EncType::Msg)) => {
                            signal::decrypt(store, &address, kind, &enc.ciphertext)
                                .map(|d| d.plaintext)
                        }
                        Some(EncType::SkMsg) => {
                            let Some(group) = group.clone() else { continue };
                            let id = SenderKeyId {
                                group,
                                sender: address.clone(),
                            };
                            signal::group_decrypt(store, &id, &enc.ciphertext)
                        }
                        None => continue,
                    };
                    out = match result {
                        Ok(padded) => {
                            // A pairwise copy may carry the group's sender key.
                            if let (Ok((m, _)), Some(group)) = (decode_padded(&padded), &group)
                                && let Some(skdm) = m
                                    .sender_key_distribution_message
                                    .as_ref()
                                    .and_then(|s| s.axolotl_sender_key_distribution_message.clone())
                            {
                                let id = SenderKeyId {
                                    group: group.clone(),
                                    sender: address.clone(),
                                };
                                if let Err(e) =
                                    signal::process_sender_key_distribution(store, &id, &skdm)
                                {
                                    warn!(error = %e, "sender key distribution refused");
                                }
                            }
                            Outcome::Decrypted(padded, store.take_held())
                        }
                        Err(SignalError::Protocol {
                            source: SignalProtocolError::DuplicatedMessage(..),
                            ..
                        }) => Outcome::Duplicate,
                        Err(e) => {
                            store.take_held();
                            return Outcome::Failed(e);
                        }
                    };
                }
                // A failed or duplicate decrypt changed nothing worth keeping.
                if hold && !matches!(out, Outcome::Decrypted(..)) {
                    store.take_held();
                }
                out
            })
            .await;
        done.unwrap_or(Outcome::Nothing)
    }

    /// Decodes a decrypted message, keeps it and reports it, unless the same id from the same
    /// sender was kept before (a resend carries a new ciphertext: the id tells). False when
    /// its ratchet step could not be stored, so it must not be acknowledged.
    async fn delivered(
        &mut self,
        incoming: &Incoming,
        padded: &[u8],
        held: Vec<SignalWrite>,
    ) -> bool {
        let (message, body) = match decode_padded(padded) {
            Ok(decoded) => decoded,
            Err(e) => {
                warn!(id = %incoming.id, error = %e, "decrypted message does not decode");
                if let Err(e) = self
                    .keys_call(move |keys, session| keys.signal_apply(&session, &held))
                    .await
                {
                    warn!(error = %e, "could not store a ratchet step");
                    return false;
                }
                return true;
            }
        };
        let from_me = incoming.recipient.is_some() || message.device_sent_message.is_some();
        let chat = message
            .destination()
            .map(str::to_owned)
            .or_else(|| incoming.recipient.as_ref().map(Jid::to_string))
            .unwrap_or_else(|| incoming.from.to_user().to_string());
        if let Some(shared) = message.app_state_key_share() {
            self.keep_app_state_keys(incoming, shared).await;
        }
        let (text, kind, bytes) = match message.body(body) {
            Body::Text(t) => (Some(t), "text".to_owned(), body.len()),
            Body::Other { kind, len } => (None, kind, len),
        };
        // Another session's probe (`[probe]`): kept (so a redelivery is known) but no
        // traffic: no webhook, count or event.
        let probe = text.as_deref().is_some_and(super::is_probe_text);
        let kept = InboxEntry {
            id: incoming.id.clone(),
            from: incoming.sender().to_string(),
            chat: chat.clone(),
            kind: if probe { "probe".into() } else { kind.clone() },
            text: text.clone(),
            time: incoming.t,
        };
        let peer = incoming.sender().to_user().to_string();
        let keep = self.outbox.config.keep;
        let event = MessageEvent {
            session: self.session.clone(),
            kind: MessageEventKind::Received(ReceivedMessage {
                id: incoming.id.clone(),
                chat,
                sender: incoming.sender().to_string(),
                from_me,
                text,
                kind,
                bytes,
                timestamp: incoming.t,
            }),
        };
        // The webhook event commits with the message row: both or neither.
        let hook = if probe {
            None
        } else {
            self.hooks.delivery(&event)
        };
        let hooked = hook.is_some();
        let now = super::queue::unix_ms();
        match self
            .keys_call(move |keys, session| {
                let hook = hook.as_ref().map(|h| (h, now));
                keys.inbox_record(&session, (&peer, &kept), keep, &held, hook)
            })
            .await
        {
            Ok(false) => {
                debug!(id = %incoming.id, "message received before: not reported again");
                return true;
            }
            Ok(true) if hooked => self.hooks.queued(),
            Ok(true) => {}
            Err(e) => {
                warn!(id = %incoming.id, error = %e, "could not keep a received message");
                return false;
            }
        }
        if probe {
            return true;
        }
        self.metrics.messages_received.inc();
        self.metrics.message(&self.session, "received");
        if !from_me {
            self.outbox
                .tally
                .add(crate::store::tally::Counted::Received, now, 1);
        }
        let _ = self.events.send(event);
        true
    }

    /// Stores the keys of an app-state key share, when our own account sent it (§4.7: a share
    /// from anyone else is ignored).
    async fn keep_app_state_keys(&self, incoming: &Incoming, shared: &[AppStateSyncKey]) {
        let Some(account) = self.link.as_ref().and_then(|(_, _, c)| c.account.as_ref()) else {
            return;
        };
        let sender = incoming.sender();
        let ours = [Some(&account.jid), account.lid.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|j| j.parse::<Jid>().ok())
            .any(|own| own.same_user(sender));
        if !ours {
            warn!(id = %incoming.id, from = %sender, "app-state keys from another account: ignored");
            return;
        }
        let keys: Vec<AppStateKey> = shared
            .iter()
            .filter_map(|k| {
                let data = k.key_data.as_ref()?;
                Some(AppStateKey {
                    key_id: k.key_id.as_ref()?.key_id.clone()?,
                    key_data: SecretBody::new(data.key_data.clone()?),
                    fingerprint: data.fingerprint.clone().unwrap_or_default(),
                    timestamp: data.timestamp.unwrap_or_default(),
                })
            })
            .collect();
        let count = keys.len();
        match self
            .blocking(move |store| store.put_app_state_keys(&keys))
            .await
        {
            Some(Ok(())) => info!(id = %incoming.id, count, "app-state keys stored"),
            Some(Err(e)) => warn!(id = %incoming.id, error = %e, "app-state keys not stored"),
            None => warn!(id = %incoming.id, "app-state keys not stored: no key store"),
        }
    }

    /// Sends the retry receipt for an undecryptable message: keys from the second try on.
    async fn ask_again(&mut self, incoming: &Incoming) {
        let from_enc = incoming
            .encs
            .iter()
            .filter_map(|e| e.count)
            .max()
            .unwrap_or(0);
        let count = self
            .retry_counts
            .entry(incoming.id.clone())
            .or_insert(from_enc);
        *count += 1;
        let count = *count;
        if count > MAX_RETRY_COUNT {
            warn!(id = %incoming.id, "gave up asking for a message again");
            return;
        }
        let Some((_, _, creds)) = self.link.as_ref() else {
            return;
        };
        let registration = u32::from(creds.registration_id);
        let keys = if count > 1 {
            self.retry_keys().await
        } else {
            None
        };
        info!(id = %incoming.id, count, with_keys = keys.is_some(), "retry receipt sent");
        self.send_node(retry_receipt(incoming, count, registration, keys.as_ref()))
            .await;
    }

    /// Our keys for a retry receipt: identity, one fresh one-time pre-key (stored and
    /// marked uploaded, since the peer gets it from us), signed pre-key, device identity.
    async fn retry_keys(&self) -> Option<RetryKeys> {
        let (_, _, creds) = self.link.as_ref()?;
        let account = creds.account.as_ref()?;
        let signed = UploadedSignedKey {
            id: creds.signed_pre_key.id,
            public: creds.signed_pre_key.key_pair.public,
            signature: creds.signed_pre_key.signature,
        };
        let (identity, device_identity) = (creds.identity.public, account.signed_identity.clone());
        let key = self
            .keys_call(|keys, session| {
                let made = keys.keys_to_upload(&session, 1)?;
                let ids: Vec<u32> = made.iter().map(|k| k.id).collect();
                keys.mark_uploaded(&session, &ids)?;
                Ok(made.into_iter().next())
            })
            .await
            .ok()??;
        Some(RetryKeys {
            identity,
            one_time: OneTimeKey {
                id: key.id,
                public: key.key_pair.public,
            },
            signed,
            device_identity,
        })
    }

    /// A receipt from the server (a retry request, or a status change of our messages, or
    /// of another client's, which changes nothing): handled, then acked (when `ack`), only
    /// after its status is stored.
    pub(super) async fn on_receipt(&mut self, node: &Node, ack: bool) {
        self.apply_receipt(node).await;
        let own_jid = self.own_jid();
        if ack && let Some(plain) = ack::ack(node, own_jid.as_deref()) {
            self.send_ack(plain).await;
        }
    }

    async fn apply_receipt(&mut self, node: &Node) {
        if node.get_attr("type") == Some("retry") {
            match parse_retry(node, "from") {
                Ok(req) => {
                    if let Err(e) = self.resend(req).await {
                        warn!(error = %e, "could not answer a retry receipt");
                    }
                }
                Err(e) => warn!(error = %e, "unreadable retry receipt"),
            }
            return;
        }
        let receipt = match Receipt::parse(node, "from") {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "unreadable receipt");
                return;
            }
        };
        let status = match receipt.kind {
            ReceiptKind::Delivered | ReceiptKind::Inactive => MessageStatus::Delivered,
            ReceiptKind::Read | ReceiptKind::ReadSelf => MessageStatus::Read,
            ReceiptKind::Played | ReceiptKind::PlayedSelf => MessageStatus::Played,
            _ => return,
        };
        // Our own devices' receipts (`sender`) are not the recipient's.
        if let Some((_, _, creds)) = self.link.as_ref()
            && let Some(own) = creds
                .account
                .as_ref()
                .and_then(|a| a.jid.parse::<Jid>().ok())
            && receipt.peer.same_user(&own)
        {
            return;
        }
        for id in &receipt.ids {
            self.status(id, status.clone()).await;
        }
    }

    /// An `encrypt` notification with `<identity/>`: the peer reinstalled; its sessions,
    /// identity and device list go, so the next send starts afresh.
    pub(super) async fn on_identity_change(&mut self, node: &Node) {
        let Some(from) = node.get_attr("from").and_then(|f| f.parse::<Jid>().ok()) else {
            return;
        };
        let name = SignalAddress::of(&from.to_user()).name;
        let user = from.to_user().to_string();
        let result = self
            .keys_call(move |keys, session| {
                keys.devices_forget(&session, &user)?;
                keys.signal_forget_peer(&session, &name)
            })
            .await;
        match result {
            Ok(n) => info!(peer = %from, records = n, "peer identity changed: sessions dropped"),
            Err(e) => warn!(error = %e, "could not drop a changed peer's sessions"),
        }
    }
}
