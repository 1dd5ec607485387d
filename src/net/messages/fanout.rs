//! The fan-out check of §3.5/§3.6: the server's ack carries `phash`, its hash of the device
//! lists it fanned our message out to. When it differs from the hash of the lists we
//! encrypted for (a device was added or removed and no `devices` notification reached us),
//! the cached lists are dropped, fetched again, and every device that did not get a copy
//! gets one now: the same message id, a `<message>` with only the new `<to>` copies.
//! whatsmeow only logs and drops its cache here; a message that reaches every device is
//! what a user expects, so wasp also sends the missing copies.

use tracing::{info, warn};

use super::{Messenger, SendError};
use crate::wa::jid::Jid;
use crate::wa::messaging::stanza::{Outgoing, participant_hash};
use crate::wa::messaging::usync::UserDevices;

/// Every device of `users` (our own sending device included), as the server hashes them.
pub(super) fn fanout_devices(users: &[UserDevices]) -> Vec<Jid> {
    users.iter().flat_map(|u| u.device_jids(None)).collect()
}

impl Messenger {
    /// Compares the ack's `phash` for message `id` with ours; on a mismatch (once per
    /// message) refreshes the device lists and sends the missing copies.
    pub(super) async fn check_fanout(&mut self, id: &str, server_phash: &str) {
        let Some(sent) = self.sent.get_mut(id) else {
            return;
        };
        let Some(ours) = &sent.phash else { return };
        if ours == server_phash || sent.refreshed {
            return;
        }
        sent.refreshed = true;
        info!(id, ours = %ours, server = %server_phash, "device lists changed: refreshing");
        self.metrics.device_list_refreshes.inc();
        if let Err(e) = self.send_missing_copies(id).await {
            warn!(id, error = %e, "could not send the copies a device-list refresh found");
        }
    }

    /// Fetches the recipient's and our own device lists afresh and sends message `id` to
    /// the devices it was not encrypted for.
    async fn send_missing_copies(&mut self, id: &str) -> Result<(), SendError> {
        let (querier, own, identity, _) = self.online()?;
        let Some(sent) = self.sent.get_mut(id) else {
            return Ok(());
        };
        let Some(peer) = sent.to.parse::<Jid>().ok() else {
            return Ok(());
        };
        let (had, message) = (sent.devices.clone(), sent.message.clone());
        let forget = [peer.to_string(), own.to_user().to_string()];
        self.keys_call(move |keys, session| {
            forget
                .iter()
                .try_for_each(|user| keys.devices_forget(&session, user))
        })
        .await?;
        let users = self
            .devices(&querier, &[peer.clone(), own.to_user()])
            .await?;
        let fresh: Vec<Jid> = users
            .iter()
            .flat_map(|u| u.device_jids(Some(&own)))
            .filter(|d| !had.contains(d))
            .collect();
        let phash = participant_hash(&fanout_devices(&users));
        if fresh.is_empty() {
            info!(id, "device lists refreshed: no device is missing its copy");
            return Ok(());
        }
        let targets = self.ensure_sessions(&querier, fresh, false).await?;
        let copies = self.encrypt_copies(&peer, &own, &message, targets).await?;
        if copies.is_empty() {
            return Ok(());
        }
        let out = Outgoing {
            id: id.to_owned(),
            to: peer,
            kind: "text".to_owned(),
            copies,
            device_identity: Some(identity),
            retry: false,
        };
        if let Some(sent) = self.sent.get_mut(id) {
            sent.devices
                .extend(out.copies.iter().map(|(jid, _)| jid.clone()));
            sent.phash = Some(phash);
        }
        info!(
            id,
            copies = out.copies.len(),
            "message sent to the devices it missed"
        );
        if querier.send(out.node()).await.is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }
}
