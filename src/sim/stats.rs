//! The simulator's figures (`GET /admin/stats`): sockets and logins now, handshakes, logins,
//! pairings, conflicts sent, each device's peak of simultaneous logins, faults and errors by
//! kind, and the strictness figures: acks, unacknowledged stanzas, pre-keys, refusals.

use std::collections::BTreeMap;

use serde::Serialize;

/// Something that went wrong on a connection, counted in `Stats::errors` under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client's connection header named a dictionary version other than 3.
    DictionaryVersion,
    /// The Noise handshake failed (bad bytes, bad key, socket closed mid-way).
    Handshake,
    /// The client did not finish the handshake within the deadline.
    HandshakeTimeout,
    /// The ClientPayload could not be decoded or is neither a login nor a registration.
    BadPayload,
    /// A registration whose signed pre-key signature does not verify with its identity key.
    BadSignedPreKey,
    /// A login for a device the simulator does not know (or with another noise key).
    UnknownDevice,
    /// The client answered pair-success with an error: the HMAC did not match.
    ClientReportedBadHmac,
    /// The client answered pair-success with an error: the account signature did not verify.
    ClientReportedBadSignature,
    /// The client answered pair-success with another error.
    ClientRejectedPairing,
    /// The client's pair-device-sign reply failed the phone's checks (device signature).
    BadDeviceSignature,
    /// The client did not answer pair-success in time.
    PairingTimeout,
    /// A login whose client left before it was answered (not logged in, nobody kicked).
    AbandonedLogin,
    /// The state file could not be written.
    StateSave,
}

impl ErrorKind {
    /// The key in `Stats::errors`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::DictionaryVersion => "dictionary_version",
            ErrorKind::Handshake => "handshake",
            ErrorKind::HandshakeTimeout => "handshake_timeout",
            ErrorKind::BadPayload => "bad_payload",
            ErrorKind::BadSignedPreKey => "bad_signed_pre_key",
            ErrorKind::UnknownDevice => "unknown_device",
            ErrorKind::ClientReportedBadHmac => "client_reported_bad_hmac",
            ErrorKind::ClientReportedBadSignature => "client_reported_bad_signature",
            ErrorKind::ClientRejectedPairing => "client_rejected_pairing",
            ErrorKind::BadDeviceSignature => "bad_device_signature",
            ErrorKind::PairingTimeout => "pairing_timeout",
            ErrorKind::AbandonedLogin => "abandoned_login",
            ErrorKind::StateSave => "state_save",
        }
    }
}

/// One device's figures.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeviceStats {
    pub phone: String,
    /// Logged-in connections now.
    pub concurrent: u32,
    /// Of those, connections a stall fault silenced (logged in, answering nothing).
    pub stalled: u32,
    /// Keepalive pings that arrived on a stalled connection (and went unanswered).
    pub pings_unanswered: u64,
    /// The most logged-in connections this device ever had at once (1 in a healthy run).
    pub max_concurrent: u32,
    pub logins: u64,
    /// `conflict type="replaced"` stream errors sent to this device (440).
    pub conflicts_sent: u64,
    pub faults_applied: u64,
    /// Pushed stanzas the client closed with an ack (or a receipt, for messages).
    pub acks_received: u64,
    /// Pushed stanzas waiting for their ack now (redelivered at the next login).
    pub unacked: u64,
    /// One-time pre-keys the server holds for the device.
    pub prekeys: u64,
    /// Accepted pre-key uploads.
    pub prekey_uploads: u64,
    /// `<stream:error><ack/>` sent because too many acks were overdue.
    pub stream_errors_ack: u64,
    /// The TCP peer address of the latest login (`ip:port`): a proxy's outbound address when
    /// the device dialled through one.
    pub last_peer: Option<String>,
}

/// Everything `GET /admin/stats` answers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections open now, at any stage.
    pub connections: u64,
    /// Logged-in connections now.
    pub logged_in: u64,
    /// Connections showing QR refs now, waiting for the phone.
    pub pending_pairings: u64,
    /// Completed Noise handshakes.
    pub handshakes: u64,
    /// Logins answered with `<success>`.
    pub logins: u64,
    /// Devices paired by the virtual phone.
    pub pairings: u64,
    /// 440 conflicts sent, by the one-login rule or by a fault.
    pub conflicts_sent: u64,
    /// The highest number of simultaneous logged-in connections any one device ever had.
    pub max_concurrent_per_device: u32,
    /// Faults that reached a connection, in all and by kind.
    pub faults_applied: u64,
    pub faults: BTreeMap<String, u64>,
    /// Stanzas pushed to devices (notifications, receipts, messages).
    pub pushed: u64,
    /// Pushed stanzas closed by an ack or receipt.
    pub acks_received: u64,
    /// `<stream:error><ack/>` sent.
    pub stream_errors_ack: u64,
    /// Accepted and refused (`400 bad-request`) pre-key uploads.
    pub prekey_uploads: u64,
    pub prekey_uploads_refused: u64,
    /// Logins or registrations refused with 405 (below `min_version`).
    pub version_refused: u64,
    /// Registrations refused with 409 (a device name the server does not accept).
    pub device_name_refused: u64,
    /// Dials that started with the `ED` edge-routing prefix.
    pub routed_dials: u64,
    /// Message copies routed to a device or a simulated phone (issue 12).
    pub messages_relayed: u64,
    /// Copies queued for a device that was offline when they arrived.
    pub messages_queued: u64,
    /// Copies the receiving device closed with a receipt or ack, or a phone decrypted.
    pub messages_delivered: u64,
    /// Copies addressed to a device or user the server does not know.
    pub messages_unroutable: u64,
    /// `<message>` stanzas refused whole (error 479): a device addressed twice, a device the
    /// sender was never told about, a pkmsg without `<device-identity>`.
    pub messages_refused: u64,
    /// Messages acked and then dropped by a `blackhole` fault.
    pub messages_blackholed: u64,
    /// Receipts forwarded to the device they name (or taken by a phone).
    pub receipts_forwarded: u64,
    /// Retry receipts seen and copies a simulated phone could not decrypt.
    pub decrypt_failures: u64,
    /// Texts the simulated phones sent (`POST /admin/send`).
    pub phone_messages_sent: u64,
    /// Copies a phone decrypted with an id it already had from that sender (dropped from its
    /// list, receipted again): resends after a lost ack.
    pub phone_duplicates: u64,
    /// Problems by kind (`ErrorKind::name`).
    pub errors: BTreeMap<String, u64>,
    /// Per device (by JID).
    pub devices: BTreeMap<String, DeviceStats>,
}

impl Stats {
    /// A device's figures (made on first use).
    pub(super) fn device(&mut self, jid: &str) -> &mut DeviceStats {
        self.devices.entry(jid.to_string()).or_default()
    }

    pub(super) fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind.name().to_string()).or_default() += 1;
    }

    /// A login of `jid` now has `concurrent` logged-in connections (this one included).
    pub(super) fn login(&mut self, jid: &str, phone: &str, concurrent: u32) {
        self.logins += 1;
        self.logged_in += 1;
        let device = self.devices.entry(jid.to_string()).or_default();
        device.phone = phone.to_string();
        device.logins += 1;
        device.concurrent = concurrent;
        device.max_concurrent = device.max_concurrent.max(concurrent);
        self.max_concurrent_per_device = self.max_concurrent_per_device.max(concurrent);
    }

    /// A logged-in connection of `jid` ended; `concurrent` are left.
    pub(super) fn left(&mut self, jid: &str, concurrent: u32) {
        self.logged_in = self.logged_in.saturating_sub(1);
        if let Some(device) = self.devices.get_mut(jid) {
            device.concurrent = concurrent;
        }
    }

    pub(super) fn conflict_sent(&mut self, jid: &str) {
        self.conflicts_sent += 1;
        if let Some(device) = self.devices.get_mut(jid) {
            device.conflicts_sent += 1;
        }
    }

    pub(super) fn fault_applied(&mut self, jid: Option<&str>, kind: &str) {
        self.faults_applied += 1;
        *self.faults.entry(kind.to_string()).or_default() += 1;
        if let Some(device) = jid.and_then(|j| self.devices.get_mut(j)) {
            device.faults_applied += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_most_logins_at_once_not_the_total() {
        let mut stats = Stats::default();
        let jid = "15550001111:1@s.whatsapp.net";
        stats.login(jid, "15550001111", 1);
        stats.left(jid, 0);
        stats.login(jid, "15550001111", 1);
        stats.login(jid, "15550001111", 2);
        stats.left(jid, 1);
        let device = &stats.devices[jid];
        assert_eq!(
            (device.logins, device.concurrent, device.max_concurrent),
            (3, 1, 2)
        );
        assert_eq!((stats.logins, stats.logged_in), (3, 1));
        assert_eq!(stats.max_concurrent_per_device, 2);
    }
}
