//! What a sender may address, as the server checks it before fanning a `<message>` out
//! (PROTOCOL-MESSAGING.md §3.5, §3.6): the simulator remembers which devices each device was
//! told about (usync answers, receipts delivered to it), refuses a stanza whose copies name
//! one device twice, name a device its sender was never told about, or open a session
//! (`pkmsg`) without `<device-identity>`; and it computes the participant-list hash
//! (`phash`) of the device lists it fans out to, which its ack carries.

use super::registry::{Registry, device_jid};
use super::relay::{paired, phone_of};
use crate::wa::jid::{Jid, LID_SERVER, PN_SERVER};
use crate::wa::messaging::stanza::{Outgoing, participant_hash};
use crate::wa::messaging::usync::UserDevices;

/// smax-invalid, "malformed or stale addressing" (§3.6): the code the facts give for a
/// stanza whose addressing the server cannot use.
pub const SMAX_INVALID: u16 = 479;

/// Why the server refused a `<message>`; every refusal is acked with [`Refusal::code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Two `<to>` copies name the same device (in any of its JID forms).
    Duplicate(Jid),
    /// A copy names a device no usync answer or receipt ever told the sender about (or a
    /// user the server does not know).
    NeverTold(Jid),
    /// A copy is a `pkmsg` and the stanza carries no `<device-identity>`.
    NoDeviceIdentity,
}

impl Refusal {
    /// The ack's `error`. Duplicate and never-told copies are malformed or stale addressing:
    /// 479 by the facts. UNCONFIRMED: the facts name no code for a pkmsg without
    /// `<device-identity>` (both libraries always attach it, §3.5); 479 is our choice.
    pub fn code(&self) -> u16 {
        SMAX_INVALID
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Duplicate(jid) => write!(f, "device {jid} is addressed twice"),
            Refusal::NeverTold(jid) => write!(f, "the sender was never told about device {jid}"),
            Refusal::NoDeviceIdentity => write!(f, "a pkmsg copy without <device-identity>"),
        }
    }
}

/// A device in the one form the bookkeeping uses (`PHONE:DEV@s.whatsapp.net`), whichever
/// JID form (PN or LID) named it; `None` for a user the server does not know.
fn canonical(reg: &Registry, jid: &Jid) -> Option<String> {
    phone_of(reg, jid).map(|phone| device_jid(&phone, jid.device))
}

/// Remembers that `device` was told about every device of `users` (a usync answer).
pub fn told_devices(reg: &mut Registry, device: &str, users: &[UserDevices]) {
    let named: Vec<String> = users
        .iter()
        .flat_map(|u| u.devices.iter().map(move |d| u.jid.with_device(d.id)))
        .filter_map(|jid| canonical(reg, &jid))
        .collect();
    reg.mailbox(device).told.extend(named);
}

/// Remembers that `device` was told about device `about` (a receipt from it, which a retry
/// resend answers).
pub fn told_device(reg: &mut Registry, device: &str, about: &Jid) {
    if let Some(about) = canonical(reg, about) {
        reg.mailbox(device).told.insert(about);
    }
}

/// Checks a `<message>` from `sender` (a device JID) before any copy is routed.
pub fn check(reg: &mut Registry, sender: &str, out: &Outgoing) -> Result<(), Refusal> {
    if out.has_pkmsg() && out.device_identity.is_none() {
        return Err(Refusal::NoDeviceIdentity);
    }
    let mut seen = Vec::with_capacity(out.copies.len());
    for (target, _) in &out.copies {
        let Some(device) = canonical(reg, target) else {
            return Err(Refusal::NeverTold(target.clone()));
        };
        if seen.contains(&device) {
            return Err(Refusal::Duplicate(target.clone()));
        }
        if !reg.mailbox(sender).told.contains(&device) {
            return Err(Refusal::NeverTold(target.clone()));
        }
        seen.push(device);
    }
    Ok(())
}

/// The `phash` of a fan-out from `from_phone`'s device to chat `to`: over every device of
/// the recipient (in the JID form of `to`, PN or LID) and every device of the sender's
/// account in PN form. UNCONFIRMED: the facts do not say which list the server hashes;
/// whatsmeow hashes its whole usync answer for both users, the sending device included, so
/// that is the list taken here. `None` when `to` names no known user.
pub fn fanout_hash(reg: &Registry, from_phone: &str, to: &Jid) -> Option<String> {
    let to_phone = phone_of(reg, to)?;
    let server = if to.is_lid() { LID_SERVER } else { PN_SERVER };
    let mut devices: Vec<Jid> = account_devices(reg, &to_phone)
        .map(|d| Jid::new(&to.user, d, server))
        .collect();
    devices.extend(account_devices(reg, from_phone).map(|d| Jid::new(from_phone, d, PN_SERVER)));
    Some(participant_hash(&devices))
}

/// An account's device numbers: the phone (0) and its paired devices.
fn account_devices(reg: &Registry, phone: &str) -> impl Iterator<Item = u32> {
    std::iter::once(0).chain(paired(reg, phone))
}
