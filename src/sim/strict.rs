//! How strict the simulator is, switch by switch (all on by default, as WhatsApp is):
//! pushed traffic after login, the ack deadline and how many overdue stanzas end the stream,
//! the lowest client version, the device-name check and truthful pre-key bookkeeping. Changed
//! at run time with `POST /admin/strict` (the `StrictPatch` JSON).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wa::payload::ClientVersion;

/// The lowest version the simulator accepts by default: Baileys' built-in revision, below
/// wasp's own, so a current client passes and an old one gets 405.
pub const DEFAULT_MIN_VERSION: ClientVersion = ClientVersion::new(2, 3000, 1_043_857_760);
/// How long a pushed stanza may stay unacknowledged before it counts as overdue.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(20);
/// Overdue stanzas that end the stream with `<stream:error><ack/>`.
pub const DEFAULT_MAX_UNACKED: usize = 3;

/// The simulator's switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strictness {
    /// After login push offline preview, queued stanzas, offline end, edge routing,
    /// notifications and receipts (and history to a newly paired device).
    pub pushes: bool,
    /// How long an ack may take.
    pub ack_timeout: Duration,
    /// This many overdue stanzas end the stream; 0 never ends it (unacked ones are still
    /// kept and redelivered).
    pub max_unacked: usize,
    /// Logins and registrations claiming an older version get `<failure reason="405">`.
    pub min_version: ClientVersion,
    /// A registration's `DeviceProps` must be a known `Browser (OS)` pair, else 409.
    pub check_device_name: bool,
    /// Answer the pre-key count truthfully and check uploads; off answers a comfortable
    /// count and takes any upload.
    pub prekeys: bool,
}

impl Default for Strictness {
    fn default() -> Self {
        Strictness {
            pushes: true,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            max_unacked: DEFAULT_MAX_UNACKED,
            min_version: DEFAULT_MIN_VERSION,
            check_device_name: true,
            prekeys: true,
        }
    }
}

impl Strictness {
    /// Everything off: the simulator as friendly as before issue 11.
    pub fn lenient() -> Self {
        Strictness {
            pushes: false,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            max_unacked: 0,
            min_version: ClientVersion::new(0, 0, 0),
            check_device_name: false,
            prekeys: false,
        }
    }

    /// Whether overdue acks end the stream.
    pub fn ack_check(&self) -> bool {
        self.max_unacked > 0
    }

    /// Applies the fields a patch names.
    pub fn apply(&mut self, patch: &StrictPatch) -> Result<(), String> {
        if let Some(v) = &patch.min_version {
            self.min_version = v
                .parse()
                .map_err(|_| format!("min_version {v:?} is not of the form 2.3000.N"))?;
        }
        if let Some(ms) = patch.ack_timeout_ms {
            if ms == 0 {
                return Err("ack_timeout_ms must be above 0".into());
            }
            self.ack_timeout = Duration::from_millis(ms);
        }
        if let Some(v) = patch.pushes {
            self.pushes = v;
        }
        if let Some(v) = patch.max_unacked {
            self.max_unacked = v;
        }
        if let Some(v) = patch.check_device_name {
            self.check_device_name = v;
        }
        if let Some(v) = patch.prekeys {
            self.prekeys = v;
        }
        Ok(())
    }

    /// The JSON form `POST /admin/strict` answers with.
    pub fn to_patch(&self) -> StrictPatch {
        StrictPatch {
            pushes: Some(self.pushes),
            ack_timeout_ms: Some(self.ack_timeout.as_millis() as u64),
            max_unacked: Some(self.max_unacked),
            min_version: Some(self.min_version.to_string()),
            check_device_name: Some(self.check_device_name),
            prekeys: Some(self.prekeys),
        }
    }
}

/// `POST /admin/strict` body: the fields to change (all optional); the answer has them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictPatch {
    pub pushes: Option<bool>,
    pub ack_timeout_ms: Option<u64>,
    pub max_unacked: Option<usize>,
    pub min_version: Option<String>,
    pub check_device_name: Option<bool>,
    pub prekeys: Option<bool>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_what_it_names_and_round_trips() {
        let mut s = Strictness::default();
        let patch: StrictPatch =
            serde_json::from_str(r#"{"pushes": false, "min_version": "2.3000.9"}"#).unwrap();
        s.apply(&patch).unwrap();
        assert!(!s.pushes && s.prekeys);
        assert_eq!(s.min_version, ClientVersion::new(2, 3000, 9));
        let mut again = Strictness::lenient();
        again.apply(&s.to_patch()).unwrap();
        assert_eq!(again, s);
        let bad = StrictPatch {
            min_version: Some("two".into()),
            ..StrictPatch::default()
        };
        assert!(s.apply(&bad).unwrap_err().contains("min_version"));
        assert!(DEFAULT_MIN_VERSION < ClientVersion::default());
    }
}
