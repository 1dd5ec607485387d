//! Sending a 1:1 text (PROTOCOL-MESSAGING.md §3): the recipient's and our own devices (usync,
//! cached in keys.db), bundles for devices without a session, one encrypted copy per device
//! (a device-sent copy for our own), the `<message>` stanza, and the server's ack matched to
//! the message id. Also the resend a retry receipt asks for (§4.6).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use super::fanout::fanout_devices;
use super::{MessageStatus, Messenger, SendError};
use crate::net::conn::Querier;
use crate::store::keys::KeysError;
use crate::store::outbox::OutboxEntry;
use crate::store::signal::CachedDevices;
use crate::wa::jid::Jid;
use crate::wa::message::{Message, encode_padded};
use crate::wa::messaging::keys::{bundle_query, parse_bundle_answer};
use crate::wa::messaging::receipt::RetryRequest;
use crate::wa::messaging::stanza::{Enc, Outgoing, parse_server_ack, participant_hash};
use crate::wa::messaging::usync::{UserDevices, devices_query, parse_answer};
use crate::wa::node::Node;
use crate::wa::signal::{self, Bundle, SignalAddress, SignalError};

/// How long a cached device list is trusted without a `devices` notification (Baileys: 5 min).
const DEVICES_TTL: Duration = Duration::from_secs(300);

/// Retry receipts answered per (message, device) before the requester is ignored (whatsmeow).
const MAX_RESENDS: u32 = 10;

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The chat JID for what a caller wrote: digits (a leading `+` allowed) or a JID.
pub fn parse_recipient(to: &str) -> Option<Jid> {
    let digits = to.strip_prefix('+').unwrap_or(to);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Jid::pn(digits));
    }
    let jid: Jid = to.parse().ok()?;
    (!jid.is_group()).then(|| jid.to_user())
}

impl Messenger {
    pub(super) fn online(&self) -> Result<(Querier, Jid, Vec<u8>, u32), SendError> {
        let not_online = || SendError::NotOnline {
            session: self.session.clone(),
        };
        let (querier, _, creds) = self.link.as_ref().ok_or_else(not_online)?;
        let account = creds.account.as_ref().ok_or_else(not_online)?;
        let own: Jid = account.jid.parse().map_err(|_| not_online())?;
        Ok((
            querier.clone(),
            own,
            account.signed_identity.clone(),
            u32::from(creds.registration_id),
        ))
    }

    /// Sends the query `node` (`what` names it in errors) and parses its answer.
    pub(super) async fn ask<T, E: std::fmt::Display>(
        &self,
        querier: &Querier,
        node: Node,
        what: &'static str,
        parse: impl FnOnce(&Node) -> Result<T, E>,
    ) -> Result<T, SendError> {
        let answer =
            querier
                .query(node, self.timeout)
                .await
                .map_err(|source| SendError::Query {
                    session: self.session.clone(),
                    what,
                    source,
                })?;
        parse(&answer).map_err(|e| SendError::Answer {
            session: self.session.clone(),
            what,
            reason: e.to_string(),
        })
    }

    fn signal_err(&self, source: SignalError) -> SendError {
        SendError::Signal {
            session: self.session.clone(),
            source: Box::new(source),
        }
    }

    fn keys_err(&self, source: KeysError) -> SendError {
        SendError::Keys {
            session: self.session.clone(),
            source: Box::new(source),
        }
    }

    pub(super) fn stopped(&self) -> SendError {
        SendError::Stopped {
            session: self.session.clone(),
        }
    }

    /// Encrypts and sends the outbox message `entry` with its own id (the same id on every
    /// resend); the server's ack arrives later as a status change.
    pub(super) async fn send_queued(&mut self, entry: &OutboxEntry) -> Result<(), SendError> {
        let (querier, own, identity, _) = self.online()?;
        let peer = parse_recipient(&entry.to).ok_or_else(|| SendError::BadRecipient {
            session: self.session.clone(),
            to: entry.to.clone(),
        })?;
        let message = Message::text(&entry.text);
        let id = entry.id.clone();
        let users = self
            .devices(&querier, &[peer.clone(), own.to_user()])
            .await?;
        let mut targets = Vec::new();
        for user in &users {
            targets.extend(user.device_jids(Some(&own)));
        }
        if !targets.iter().any(|t| t.same_user(&peer)) {
            return Err(SendError::NoDevices {
                session: self.session.clone(),
                to: peer.to_string(),
            });
        }
        let phash = participant_hash(&fanout_devices(&users));
        let targets = self.ensure_sessions(&querier, targets, false).await?;
        let copies = self.encrypt_copies(&peer, &own, &message, targets).await?;
        let out = Outgoing {
            id: id.clone(),
            to: peer.clone(),
            kind: "text".to_owned(),
            copies,
            device_identity: Some(identity),
            retry: false,
        };
        self.sent.insert(&id, &peer.to_string(), message);
        if let Some(sent) = self.sent.get_mut(&id) {
            sent.phash = Some(phash);
            sent.devices = out.copies.iter().map(|(jid, _)| jid.clone()).collect();
        }
        if querier.send(out.node()).await.is_err() {
            return Err(self.stopped());
        }
        self.metrics.messages_sent.inc();
        debug!(id = %id, to = %peer, copies = out.copies.len(), "message sent");
        Ok(())
    }

    /// One copy of `message` (to chat `peer`) per target: the plain message for the peer's
    /// devices, a device-sent copy for our own, each padded and encrypted.
    pub(super) async fn encrypt_copies(
        &self,
        peer: &Jid,
        own: &Jid,
        message: &Message,
        targets: Vec<Jid>,
    ) -> Result<Vec<(Jid, Enc)>, SendError> {
        let (chat, plain) = (peer.to_string(), message.clone());
        let own_user = own.to_user();
        self.blocking(move |store| {
            let own_copy = encode_padded(&Message::device_sent(&chat, &plain));
            let peer_copy = encode_padded(&plain);
            targets
                .into_iter()
                .map(|jid| {
                    let padded = if jid.same_user(&own_user) {
                        &own_copy
                    } else {
                        &peer_copy
                    };
                    let (kind, bytes) = signal::encrypt(store, &SignalAddress::of(&jid), padded)?;
                    Ok((jid, Enc::new(kind, bytes)))
                })
                .collect::<Result<Vec<_>, SignalError>>()
        })
        .await
        .ok_or_else(|| self.stopped())?
        .map_err(|e| self.signal_err(e))
    }

    /// The device lists of `users` (bare JIDs): from the cache when fresh, else one usync
    /// for the rest, whose answers are cached.
    pub(super) async fn devices(
        &self,
        querier: &Querier,
        users: &[Jid],
    ) -> Result<Vec<UserDevices>, SendError> {
        let now = unix_now();
        let wanted: Vec<String> = users.iter().map(Jid::to_string).collect();
        let cached = self
            .keys_call(move |keys, session| {
                wanted
                    .iter()
                    .map(|u| keys.devices_get(&session, u))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (user, cached) in users.iter().zip(cached) {
            match cached {
                Some(c) if now.saturating_sub(c.fetched_at) < DEVICES_TTL.as_secs() => {
                    found.push(UserDevices {
                        jid: user.clone(),
                        devices: c
                            .devices
                            .iter()
                            .map(|&id| crate::wa::messaging::usync::DeviceEntry {
                                id: u32::from(id),
                                // Cached lists hold only devices already picked.
                                key_index: u32::from(id != 0),
                            })
                            .collect(),
                        lid: c.lid.as_deref().and_then(|l| l.parse().ok()),
                        error: None,
                    })
                }
                _ => missing.push(user.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let id = querier.next_id();
        let node = devices_query(&id, &id, &missing);
        let fetched = self
            .ask(querier, node, "devices (usync)", parse_answer)
            .await?;
        let mut to_cache = Vec::new();
        for user in fetched {
            if let Some((code, text)) = &user.error {
                warn!(user = %user.jid, code, %text, "usync refused a user");
                continue;
            }
            let picked: Vec<u16> = user
                .device_jids(None)
                .iter()
                .filter_map(|j| u16::try_from(j.device).ok())
                .collect();
            to_cache.push((
                user.jid.to_string(),
                CachedDevices {
                    devices: picked,
                    lid: user.lid.as_ref().map(Jid::to_string),
                    fetched_at: now,
                },
            ));
            found.push(user);
        }
        self.keys_call(move |keys, session| {
            to_cache
                .iter()
                .try_for_each(|(user, c)| keys.devices_put(&session, user, c))
        })
        .await?;
        Ok(found)
    }

    /// Makes sure a session exists with each of `targets`: fetches bundles for those without
    /// (`force`: for every target) and starts sessions from them. Devices whose bundle the
    /// server refused are left out of the result.
    pub(super) async fn ensure_sessions(
        &self,
        querier: &Querier,
        targets: Vec<Jid>,
        force: bool,
    ) -> Result<Vec<Jid>, SendError> {
        let check = targets.clone();
        let missing: Vec<Jid> = if force {
            targets.clone()
        } else {
            self.blocking(move |store| {
                check
                    .into_iter()
                    .filter_map(
                        |jid| match signal::has_session(store, &SignalAddress::of(&jid)) {
                            Ok(true) => None,
                            Ok(false) => Some(Ok(jid)),
                            Err(e) => Some(Err(e)),
                        },
                    )
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .ok_or_else(|| self.stopped())?
            .map_err(|e| self.signal_err(e))?
        };
        if missing.is_empty() {
            return Ok(targets);
        }
        let node = bundle_query(&querier.next_id(), &missing, false);
        let bundles = self
            .ask(querier, node, "pre-key bundles", parse_bundle_answer)
            .await?;
        let mut usable: Vec<(Jid, Bundle)> = Vec::new();
        for (jid, bundle) in bundles {
            match bundle {
                Ok(b) => usable.push((jid, b)),
                Err(e) => warn!(device = %jid, error = %e, "no bundle for a device: skipped"),
            }
        }
        let started = self
            .blocking(move |store| {
                usable
                    .into_iter()
                    .filter_map(|(jid, bundle)| {
                        let address = SignalAddress::of(&jid);
                        match signal::process_bundle(store, &address, &bundle) {
                            Ok(()) => Some(jid),
                            Err(e) => {
                                warn!(device = %jid, error = %e, "bundle refused: skipped");
                                None
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .ok_or_else(|| self.stopped())?;
        Ok(targets
            .into_iter()
            .filter(|t| !missing.contains(t) || started.contains(t))
            .collect())
    }

    /// The server's `<ack class="message">` for one of ours: sent, or failed with its code.
    /// A `phash` other than ours means the server fanned out to other device lists than we
    /// did: the lists are refreshed and new devices get their copy (`fanout.rs`).
    pub(super) async fn on_server_ack(&mut self, node: &Node) {
        let Some(ack) = parse_server_ack(node) else {
            return;
        };
        match ack.error {
            None => {
                self.status(&ack.id, MessageStatus::Sent).await;
                if let Some(phash) = &ack.phash {
                    self.check_fanout(&ack.id, phash).await;
                }
            }
            Some(code) => {
                warn!(id = %ack.id, code, "the server refused a message");
                self.status(
                    &ack.id,
                    MessageStatus::Failed(format!("server error {code}")),
                )
                .await;
            }
        }
    }

    /// Re-encrypts message `req`'s id for the one device that asked (§4.6): a fresh session
    /// from the keys it sent, else a bundle when we hold no session.
    pub(super) async fn resend(&mut self, req: RetryRequest) -> Result<(), SendError> {
        let (querier, own, identity, _) = self.online()?;
        let id = req.receipt.id().to_owned();
        let device = req
            .receipt
            .participant
            .clone()
            .unwrap_or(req.receipt.peer.clone());
        if self.sent.get_mut(&id).is_none() {
            // Sent before a restart: the outbox still has its text.
            let wanted = id.clone();
            if let Ok(Some(row)) = self
                .keys_call(move |keys, session| keys.outbox_get(&session, &wanted))
                .await
            {
                self.sent.insert(&id, &row.to, Message::text(&row.text));
            }
        }
        let Some(sent) = self.sent.get_mut(&id) else {
            debug!(id = %id, "retry receipt for a message no longer kept");
            return Ok(());
        };
        let tries = sent.retries.entry(device.to_string()).or_insert(0);
        *tries += 1;
        if *tries > MAX_RESENDS {
            debug!(id = %id, device = %device, "retry requests exhausted: ignored");
            return Ok(());
        }
        let plain = if device.same_user(&own) {
            Message::device_sent(&sent.to, &sent.message)
        } else {
            sent.message.clone()
        };
        let address = SignalAddress::of(&device);
        let ready = match req.keys {
            Some((bundle, _)) => {
                let address = address.clone();
                self.blocking(move |store| {
                    signal::delete_session(store, &address)?;
                    signal::process_bundle(store, &address, &bundle)
                })
                .await
                .ok_or_else(|| self.stopped())?
                .map_err(|e| self.signal_err(e))?;
                vec![device.clone()]
            }
            None => {
                self.ensure_sessions(&querier, vec![device.clone()], false)
                    .await?
            }
        };
        if ready.is_empty() {
            return Ok(());
        }
        let (kind, bytes) = self
            .blocking(move |store| signal::encrypt(store, &address, &encode_padded(&plain)))
            .await
            .ok_or_else(|| self.stopped())?
            .map_err(|e| self.signal_err(e))?;
        let mut enc = Enc::new(kind, bytes);
        enc.count = Some(req.count);
        let out = Outgoing {
            id: id.clone(),
            to: device.clone(),
            kind: "text".to_owned(),
            copies: vec![(device.clone(), enc)],
            device_identity: Some(identity),
            retry: true,
        };
        info!(id = %id, device = %device, count = req.count, "message re-sent on a retry receipt");
        if querier.send(out.node()).await.is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// A `devices` notification: the user's device list changed, drop the cached one.
    pub(super) async fn on_devices_notification(&mut self, node: &Node) {
        let Some(from) = node.get_attr("from").and_then(|f| f.parse::<Jid>().ok()) else {
            return;
        };
        let user = from.to_user().to_string();
        if let Err(e) = self
            .keys_call(move |keys, session| keys.devices_forget(&session, &user))
            .await
        {
            warn!(error = %e, "could not drop a cached device list");
        }
    }

    /// Runs a key-database call on the blocking pool.
    pub(super) async fn keys_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::keys::KeyStore, String) -> Result<T, KeysError> + Send + 'static,
    ) -> Result<T, SendError> {
        let keys = self.keys.clone();
        let session = self.session.clone();
        tokio::task::spawn_blocking(move || f(&keys, session))
            .await
            .map_err(|_| self.stopped())?
            .map_err(|e| self.keys_err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wa::jid::PN_SERVER;

    #[test]
    fn recipients_are_digits_or_user_jids() {
        assert_eq!(
            parse_recipient("+15551234567"),
            Some(Jid::pn("15551234567"))
        );
        assert_eq!(
            parse_recipient("15551234567:3@s.whatsapp.net"),
            Some(Jid::new("15551234567", 0, PN_SERVER))
        );
        assert_eq!(parse_recipient("123-456@g.us"), None, "groups are not 1:1");
        assert_eq!(parse_recipient("hello"), None);
        assert_eq!(parse_recipient(""), None);
    }
}
