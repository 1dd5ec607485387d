//! The simulator as a relay between Signal peers (issue 12): usync device lists from the
//! registry, pre-key bundles from what devices uploaded (consuming one-time keys), each
//! `<to>` copy of a `<message>` routed to its device (queued in the device's mailbox, so an
//! offline device gets it at its next login) or decrypted by the account's simulated phone,
//! receipts forwarded, retry receipts answered by phones, and phones sending texts.
//!
//! Every function here is one step on the registry under its lock; each answers the devices
//! whose live connections must be woken to flush their mailbox (`Vec<String>` of JIDs).

use super::accounts::{Answer, PhoneAccount, Sent, as_delivered};
use super::addressing::{self, SMAX_INVALID};
use super::registry::{Registry, device_jid};
use super::{SimError, pushes};
use crate::wa::jid::{Jid, PN_SERVER};
use crate::wa::message::{self, Message};
use crate::wa::messaging::keys::{self, BundleEntry};
use crate::wa::messaging::receipt::{Receipt, ReceiptKind, parse_retry};
use crate::wa::messaging::stanza::{Enc, Incoming, Outgoing, server_ack};
use crate::wa::messaging::usync::{self, DeviceEntry, UserDevices};
use crate::wa::node::Node;
use crate::wa::prekey;
use crate::wa::signal::{self, Bundle, SignalAddress};

/// The LID user part of a device's stored LID (`USER[:DEV]@lid`).
fn lid_user(lid: &str) -> &str {
    let user = lid.split('@').next().unwrap_or(lid);
    user.split(':').next().unwrap_or(user)
}

/// The account (phone digits) a JID names: a PN user that has an account or a paired device,
/// or a LID user through the accounts' and devices' LIDs.
pub fn phone_of(reg: &Registry, jid: &Jid) -> Option<String> {
    if jid.is_lid() {
        return reg
            .accounts
            .values()
            .find(|a| a.lid == jid.user)
            .map(|a| a.phone.clone())
            .or_else(|| {
                reg.devices()
                    .find(|d| lid_user(&d.lid) == jid.user)
                    .map(|d| d.phone.clone())
            });
    }
    if jid.server != PN_SERVER {
        return None;
    }
    let known = reg.accounts.contains_key(&jid.user) || reg.devices_of(&jid.user).next().is_some();
    known.then(|| jid.user.clone())
}

/// The phone of an account, made on first use; its LID is the one its devices were paired
/// with, or a new one.
pub fn account<'a>(reg: &'a mut Registry, phone: &str) -> &'a mut PhoneAccount {
    if !reg.accounts.contains_key(phone) {
        let lid = reg
            .devices_of(phone)
            .next()
            .map(|d| lid_user(&d.lid).to_string())
            .unwrap_or_else(new_lid);
        reg.accounts
            .insert(phone.to_string(), PhoneAccount::new(phone, &lid));
    }
    reg.accounts
        .entry(phone.to_string())
        .or_insert_with(|| PhoneAccount::new(phone, &new_lid()))
}

/// A LID user part as the server makes them (15 digits).
pub fn new_lid() -> String {
    (100_000_000_000_000u64 + rand::random::<u64>() % 900_000_000_000_000).to_string()
}

/// The paired device numbers of an account, ascending.
pub(super) fn paired(reg: &Registry, phone: &str) -> Vec<u32> {
    reg.devices_of(phone).map(|d| d.device).collect()
}

/// The JIDs of an account's paired devices other than `except`.
pub fn other_devices(reg: &Registry, phone: &str, except: &str) -> Vec<String> {
    reg.devices_of(phone)
        .filter(|d| d.jid != except)
        .map(|d| d.jid.clone())
        .collect()
}

/// Queues a stanza for a device (it is pushed when the device's connection flushes). A
/// receipt tells the device about the device it came from.
fn deliver(reg: &mut Registry, jid: &str, node: Node, wake: &mut Vec<String>) {
    if node.tag == "receipt"
        && let Some(from) = node.get_attr("from").and_then(|f| f.parse::<Jid>().ok())
    {
        addressing::told_device(reg, jid, &from);
    }
    reg.enqueue(jid, node);
    if !wake.iter().any(|w| w == jid) {
        wake.push(jid.to_string());
    }
}

/// The answer to a usync query from device `asker`: each known user's phone (device 0) and
/// paired devices (key index = device number) and the account's LID; unknown users get an
/// empty list. The asker may then address those devices.
pub fn usync_answer(reg: &mut Registry, asker: Option<&str>, query: &usync::UsyncQuery) -> Node {
    let users: Vec<UserDevices> = query
        .users
        .iter()
        .map(|user| match phone_of(reg, user) {
            Some(phone) => {
                let lid = account(reg, &phone).lid_jid();
                let devices = std::iter::once(0)
                    .chain(paired(reg, &phone))
                    .map(|id| DeviceEntry { id, key_index: id })
                    .collect();
                UserDevices {
                    jid: user.to_user(),
                    devices,
                    lid: Some(lid),
                    error: None,
                }
            }
            None => UserDevices {
                jid: user.to_user(),
                devices: Vec::new(),
                lid: None,
                error: None,
            },
        })
        .collect();
    if let Some(asker) = asker {
        addressing::told_devices(reg, asker, &users);
    }
    usync::answer(query, &users)
}

/// A device's bundle: the phone's from its store, a paired device's from its upload (using
/// up a one-time key, and telling the device when it runs low).
fn bundle_of(reg: &mut Registry, jid: &Jid, now: u64, wake: &mut Vec<String>) -> Option<Bundle> {
    let phone = phone_of(reg, jid)?;
    if jid.device == 0 {
        return Some(account(reg, &phone).bundle());
    }
    let device = device_jid(&phone, jid.device);
    if !reg.knows(&device) {
        return None;
    }
    let mailbox = reg.mailbox(&device);
    let bundle = mailbox.take_bundle()?;
    let left = mailbox.prekeys.len();
    let told = mailbox
        .queue
        .iter()
        .any(|n| n.tag == "notification" && n.get_attr("type") == Some("encrypt"));
    reg.sync_mail_stats(&device);
    if left < prekey::LOW_WATER as usize && !told && reg.strict.pushes {
        deliver(reg, &device, pushes::encrypt_low(left, now), wake);
    }
    Some(bundle)
}

/// The answer to a bundle query.
pub fn bundle_answer(reg: &mut Registry, node: &Node, now: u64) -> (Node, Vec<String>) {
    let id = node.get_attr("id").unwrap_or_default().to_string();
    let mut wake = Vec::new();
    let Ok(jids) = keys::parse_bundle_query(node) else {
        return (crate::wa::stanza::iq_error(&id, 400, "bad-request"), wake);
    };
    let entries: Vec<BundleEntry> = jids
        .into_iter()
        .map(|jid| {
            let bundle = bundle_of(reg, &jid, now, &mut wake)
                .ok_or_else(|| (404, "item-not-found".to_string()));
            (jid, bundle)
        })
        .collect();
    (keys::bundle_answer(&id, &entries), wake)
}

/// A device's JID as its sender sees it: `PHONE:DEV@s.whatsapp.net`.
fn sender_jid(reg: &Registry, jid: &str) -> Option<(Jid, String)> {
    let parsed: Jid = jid.parse().ok()?;
    let phone = phone_of(reg, &parsed)?;
    Some((parsed, phone))
}

/// A `<message>` from a logged-in device: each copy to its device, the server ack to the
/// sender (error 479 when the stanza is not a message the server can read).
pub fn route_message(
    reg: &mut Registry,
    sender: &str,
    node: &Node,
    now: u64,
) -> (Node, Vec<String>) {
    let mut wake = Vec::new();
    let id = node.get_attr("id").unwrap_or_default().to_string();
    let (Ok(out), Some((from, from_phone))) = (Outgoing::parse(node), sender_jid(reg, sender))
    else {
        let to = Jid::new("", 0, PN_SERVER);
        let mut ack = server_ack(&id, &to, now, Some(SMAX_INVALID));
        ack.attrs.retain(|(k, _)| k != "from");
        return (ack, wake);
    };
    if let Err(refusal) = addressing::check(reg, sender, &out) {
        reg.stats.messages_refused += 1;
        tracing::debug!(sender, id = %out.id, %refusal, "message refused");
        return (
            server_ack(&out.id, &out.to, now, Some(refusal.code())),
            wake,
        );
    }
    let phash = (!out.retry)
        .then(|| addressing::fanout_hash(reg, &from_phone, &out.to))
        .flatten();
    if reg.is_blackholed(sender) {
        // Checked and acked like any message; then lost (fault `blackhole`).
        reg.stats.messages_blackholed += 1;
        let mut ack = server_ack(&out.id, &out.to, now, None);
        if let Some(phash) = phash {
            ack.set_attr("phash", phash);
        }
        return (ack, wake);
    }
    let sender_lid = account(reg, &from_phone).lid_jid().with_device(from.device);
    for (target, enc) in &out.copies {
        let Some(phone) = phone_of(reg, target) else {
            reg.stats.messages_unroutable += 1;
            continue;
        };
        let own = phone == from_phone && !out.retry;
        // A resend to one of our own devices names the chat itself (§4.6).
        let resent_to = out
            .retry
            .then(|| {
                node.get_attr("recipient")
                    .and_then(|r| r.parse::<Jid>().ok())
            })
            .flatten();
        let incoming = Incoming {
            id: out.id.clone(),
            from: from.clone(),
            t: now,
            kind: out.kind.clone(),
            recipient: own.then(|| out.to.to_user()).or(resent_to),
            participant: None,
            sender_lid: Some(sender_lid.clone()),
            notify: None,
            offline: false,
            encs: vec![enc.clone()],
        };
        reg.stats.messages_relayed += 1;
        if target.device == 0 {
            reg.stats.messages_delivered += 1;
            let phone_jid = account(reg, &phone).jid();
            let answer = account(reg, &phone).receive(&incoming, now);
            let reply = match answer {
                Answer::Receipt(r) => r,
                Answer::Retry(r) => {
                    reg.stats.decrypt_failures += 1;
                    r
                }
            };
            reg.stats.receipts_forwarded += 1;
            deliver(reg, sender, as_delivered(reply, &phone_jid, now), &mut wake);
            continue;
        }
        let device = device_jid(&phone, target.device);
        if !reg.knows(&device) {
            reg.stats.messages_unroutable += 1;
            continue;
        }
        if reg.live_controls(&device).is_empty() {
            reg.stats.messages_queued += 1;
        }
        reg.relayed.insert((device.clone(), out.id.clone()));
        deliver(reg, &device, incoming.node(), &mut wake);
    }
    let mut ack = server_ack(&out.id, &out.to, now, None);
    if let Some(phash) = phash {
        ack.set_attr("phash", phash);
    }
    (ack, wake)
}

/// A `<receipt>` from a logged-in device (after it closed the copy it names): forwarded to
/// the device in `to`, or taken by a simulated phone (counted; a retry makes it resend).
pub fn route_receipt(reg: &mut Registry, sender: &str, node: &Node, now: u64) -> Vec<String> {
    let mut wake = Vec::new();
    let (Ok(receipt), Some((from, _))) = (Receipt::parse(node, "to"), sender_jid(reg, sender))
    else {
        return wake;
    };
    let Some(phone) = phone_of(reg, &receipt.peer) else {
        return wake;
    };
    reg.stats.receipts_forwarded += 1;
    if receipt.peer.device == 0 {
        if receipt.kind == ReceiptKind::Retry {
            phone_resend(reg, &phone, &from, node, now, &mut wake);
        } else {
            account(reg, &phone).got_receipt(&receipt.kind);
        }
        return wake;
    }
    let device = device_jid(&phone, receipt.peer.device);
    if reg.knows(&device) {
        deliver(
            reg,
            &device,
            as_delivered(node.clone(), &from, now),
            &mut wake,
        );
    }
    wake
}

/// A retry receipt for a relayed copy: a decrypt failure, not a delivery (call it before the
/// receipt closes the copy). Retries for stanzas the relay did not carry (the welcome's opaque
/// peer messages) are not counted.
pub fn count_retry(reg: &mut Registry, device: &str, node: &Node) {
    if node.tag != "receipt" || node.get_attr("type") != Some("retry") {
        return;
    }
    let Some(id) = node.get_attr("id") else {
        return;
    };
    if reg.relayed.remove(&(device.to_string(), id.to_string())) {
        reg.stats.decrypt_failures += 1;
    }
}

/// Makes sure `phone`'s store has a session with `target`, from a fresh bundle if needed.
fn ensure_session(
    reg: &mut Registry,
    phone: &str,
    target: &Jid,
    now: u64,
    wake: &mut Vec<String>,
) -> bool {
    let address = SignalAddress::of(target);
    if signal::has_session(&account(reg, phone).store, &address).unwrap_or(false) {
        return true;
    }
    let Some(bundle) = bundle_of(reg, target, now, wake) else {
        return false;
    };
    signal::process_bundle(&mut account(reg, phone).store, &address, &bundle).is_ok()
}

/// The phone answers a retry receipt from `requester`: a fresh session (from the receipt's
/// keys, or a new bundle), then the same message id again to that one device.
fn phone_resend(
    reg: &mut Registry,
    phone: &str,
    requester: &Jid,
    node: &Node,
    now: u64,
    wake: &mut Vec<String>,
) {
    let Ok(request) = parse_retry(node, "to") else {
        return;
    };
    let Some(sent) = account(reg, phone).find_sent(request.receipt.id()).cloned() else {
        return;
    };
    let address = SignalAddress::of(requester);
    let store = &mut account(reg, phone).store;
    let fresh = match &request.keys {
        Some((bundle, _)) => signal::process_bundle(store, &address, bundle).is_ok(),
        None => false,
    };
    if !fresh && !ensure_session(reg, phone, requester, now, wake) {
        return;
    }
    let Some(req_phone) = phone_of(reg, requester) else {
        return;
    };
    let plain = if req_phone == phone {
        Message::device_sent(&sent.chat.to_string(), &sent.message)
    } else {
        sent.message.clone()
    };
    let store = &mut account(reg, phone).store;
    let Ok((kind, bytes)) = signal::encrypt(store, &address, &message::encode_padded(&plain))
    else {
        return;
    };
    let mut enc = Enc::new(kind, bytes);
    enc.count = Some(request.count);
    let from = account(reg, phone).jid();
    let device = device_jid(&req_phone, requester.device);
    let incoming = Incoming {
        id: sent.id.clone(),
        from,
        t: now,
        kind: "text".to_string(),
        recipient: (req_phone == phone).then(|| sent.chat.clone()),
        participant: None,
        sender_lid: None,
        notify: None,
        offline: false,
        encs: vec![enc],
    };
    if reg.knows(&device) {
        reg.stats.messages_relayed += 1;
        reg.relayed.insert((device.clone(), sent.id.clone()));
        deliver(reg, &device, incoming.node(), wake);
    }
}

/// `from`'s phone sends a text to `to` (digits or a JID): one copy for every device of the
/// recipient and every paired device of its own account (as a device-sent message).
/// Answers the message id and the devices to wake.
pub fn phone_send(
    reg: &mut Registry,
    from: &str,
    to: &str,
    text: &str,
    now: u64,
) -> Result<(String, Vec<String>), SimError> {
    let to_jid: Jid = if to.contains('@') {
        to.parse()
            .map_err(|_| SimError::UnknownAccount(to.to_string()))?
    } else {
        Jid::pn(to)
    };
    let to_phone =
        phone_of(reg, &to_jid).ok_or_else(|| SimError::UnknownAccount(to.to_string()))?;
    let from_jid = account(reg, from).jid();
    let chat = Jid::pn(&to_phone);
    let id = message::new_message_id(now, from);
    let original = Message::text(text);
    let mut targets: Vec<(Jid, bool)> = std::iter::once(0)
        .chain(paired(reg, &to_phone))
        .map(|d| (chat.with_device(d), false))
        .collect();
    if to_phone != from {
        targets.extend(
            paired(reg, from)
                .into_iter()
                .map(|d| (from_jid.with_device(d), true)),
        );
    }
    let mut wake = Vec::new();
    for (target, own) in targets {
        if !ensure_session(reg, from, &target, now, &mut wake) {
            continue;
        }
        let plain = if own {
            Message::device_sent(&chat.to_string(), &original)
        } else {
            original.clone()
        };
        let store = &mut account(reg, from).store;
        let address = SignalAddress::of(&target);
        let Ok((kind, bytes)) = signal::encrypt(store, &address, &message::encode_padded(&plain))
        else {
            continue;
        };
        let incoming = Incoming {
            id: id.clone(),
            from: from_jid.clone(),
            t: now,
            kind: "text".to_string(),
            recipient: own.then(|| chat.clone()),
            participant: None,
            sender_lid: Some(account(reg, from).lid_jid()),
            notify: None,
            offline: false,
            encs: vec![Enc::new(kind, bytes)],
        };
        reg.stats.messages_relayed += 1;
        if target.device == 0 {
            reg.stats.messages_delivered += 1;
            if let Answer::Receipt(_) = account(reg, &to_phone).receive(&incoming, now) {
                account(reg, from).got_receipt(&ReceiptKind::Delivered);
            } else {
                reg.stats.decrypt_failures += 1;
            }
            continue;
        }
        let device = device_jid(&target.user, target.device);
        if reg.live_controls(&device).is_empty() {
            reg.stats.messages_queued += 1;
        }
        reg.relayed.insert((device.clone(), id.clone()));
        deliver(reg, &device, incoming.node(), &mut wake);
    }
    reg.stats.phone_messages_sent += 1;
    account(reg, from).sent(Sent {
        id: id.clone(),
        chat,
        message: original,
    });
    Ok((id, wake))
}
