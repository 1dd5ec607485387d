//! The published snapshot: the whole `Status`, built from the machine alone (driver facts such
//! as the paired phone and the backups entered as events).

use std::time::Instant;

use super::super::state::State;
use super::super::status::{Account, Liveness, Phase, QrText, QrView, Status};
use super::{Session, is_server_class};
use crate::wa::stanza::Cause;

impl Session {
    /// The published snapshot.
    pub fn status(&self, now: Instant) -> Status {
        let phase = match &self.state {
            State::Stopped { .. } => Phase::Stopped,
            State::Connecting { .. } => Phase::Connecting,
            State::Handshaking { .. } => Phase::Handshaking,
            State::Pairing {
                codes,
                index,
                expires_at,
                ..
            } => Phase::Pairing {
                qr: QrView {
                    text: codes
                        .get(*index)
                        .cloned()
                        .unwrap_or_else(|| QrText::new(String::new())),
                    index: *index as u32 + 1,
                    count: codes.len() as u32,
                    expires_at: *expires_at,
                },
            },
            State::Online { since, .. } => Phase::Online { since: *since },
            State::Backoff { until, .. } => Phase::Backoff { retry_at: *until },
            State::Cooldown { until, .. } => Phase::Cooldown { until: *until },
            State::Conflict => Phase::Conflict,
            State::LoggedOut { .. } => Phase::LoggedOut {
                repair_after: self.repair_after,
            },
            State::Failed { probe_at, .. } => Phase::Failed {
                probe_at: *probe_at,
            },
        };
        let (misses, stalled) = match &self.state {
            State::Online { keepalive, .. } => (keepalive.misses, keepalive.stalled),
            _ => (0, false),
        };
        Status {
            id: self.id.clone(),
            label: self.label.clone(),
            phase,
            since: self.since,
            reason: self.state.reason(),
            attempt: self.attempt,
            max_attempts: match &self.last_cause {
                Some(c) if is_server_class(c) => self.policy.max_attempts_server,
                _ => self.policy.max_attempts_network,
            },
            conflicts_1h: self.conflicts.count(now),
            disconnects_1h: self.disconnects.count(now),
            last_cause: self.last_cause.as_ref().map(|c| c.name().to_string()),
            last_code: self.last_cause.as_ref().map(Cause::code),
            uptime_pct: self.uptime.percent(now),
            uptime: Some(self.uptime.clone()),
            last_reconnect: self.last_reconnect,
            liveness: Liveness {
                last_rtt: self.last_rtt,
                last_frame_at: self.last_frame_at,
                misses,
                stalled,
            },
            timeline: self.timeline.to_vec(),
            account: Account {
                phone: self.phone.clone(),
                paired: self.has_credentials,
            },
            backups: self.backups,
            client_version: self.client_version.clone().unwrap_or_default(),
            owner: None,
            outbox: Default::default(),
            proxy: None,
        }
    }
}
