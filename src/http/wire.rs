//! The whole `Status` as JSON, for consoles that follow a pool from another process
//! (`GET /events?form=full`, read by `wasp attach`). Unlike the documented `GET /sessions`
//! rows, nothing is rounded: instants travel as wall-clock nanoseconds since the Unix epoch and
//! come back as instants of the reading process; durations keep every nanosecond. The QR text
//! travels only to a reader holding the token.

use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::json::Clock;
use crate::session::status::{
    Account, Backups, Liveness, OutboxView, Phase, QrText, QrView, StateName, Status, TimelineEntry,
};

/// A wall-clock time in nanoseconds since the Unix epoch.
type WallNs = u64;

fn to_ns(clock: &Clock, at: Instant) -> WallNs {
    let since = clock
        .wall_time(at)
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

fn from_ns(clock: &Clock, ns: WallNs) -> Instant {
    clock.instant(UNIX_EPOCH + Duration::from_nanos(ns))
}

/// One session's status on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireStatus {
    pub id: String,
    pub label: String,
    pub phase: WirePhase,
    pub since_ns: WallNs,
    pub reason: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub conflicts_1h: u32,
    pub disconnects_1h: u32,
    pub last_cause: Option<String>,
    pub last_code: Option<u16>,
    pub uptime_pct: f64,
    pub last_reconnect: Option<Duration>,
    pub last_rtt: Option<Duration>,
    pub last_frame_ns: Option<WallNs>,
    pub misses: u32,
    #[serde(default)]
    pub stalled: bool,
    pub timeline: Vec<WireEntry>,
    pub phone: Option<String>,
    pub paired: bool,
    pub backups: u32,
    pub last_backup_ns: Option<WallNs>,
    /// The WhatsApp Web version the session dials with.
    #[serde(default)]
    pub client_version: String,
    /// Clustered: the node that runs the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Messages in the outbox and when the next may go.
    #[serde(default)]
    pub queued: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_send_ns: Option<WallNs>,
    /// Over the last hour: sent (server acks), delivered, received.
    #[serde(default)]
    pub sent_1h: u32,
    #[serde(default)]
    pub delivered_1h: u32,
    #[serde(default)]
    pub received_1h: u32,
    /// The proxy the session dials through, password hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// The end-to-end probe did not arrive in time.
    #[serde(default)]
    pub degraded: bool,
}

/// The state with its own data (`Phase`), tagged by the state name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WirePhase {
    Stopped,
    Connecting,
    Handshaking,
    /// `qr` is `None` for a reader without the token.
    Pairing {
        qr: Option<String>,
        index: u32,
        count: u32,
        expires_ns: WallNs,
    },
    Online {
        since_ns: WallNs,
    },
    Backoff {
        retry_ns: WallNs,
    },
    Cooldown {
        until_ns: WallNs,
    },
    Conflict,
    LoggedOut {
        repair_after_ns: Option<WallNs>,
    },
    Failed {
        probe_ns: Option<WallNs>,
    },
}

/// One timeline entry on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEntry {
    pub at_ns: WallNs,
    pub state: StateName,
    pub cause: String,
    pub code: Option<u16>,
    pub detail: String,
}

impl WirePhase {
    fn new(phase: &Phase, clock: &Clock, with_qr: bool) -> Self {
        let ns = |at: Instant| to_ns(clock, at);
        match phase {
            Phase::Stopped => WirePhase::Stopped,
            Phase::Connecting => WirePhase::Connecting,
            Phase::Handshaking => WirePhase::Handshaking,
            Phase::Pairing { qr } => WirePhase::Pairing {
                qr: with_qr.then(|| qr.text.as_str().to_string()),
                index: qr.index,
                count: qr.count,
                expires_ns: ns(qr.expires_at),
            },
            Phase::Online { since } => WirePhase::Online {
                since_ns: ns(*since),
            },
            Phase::Backoff { retry_at } => WirePhase::Backoff {
                retry_ns: ns(*retry_at),
            },
            Phase::Cooldown { until } => WirePhase::Cooldown {
                until_ns: ns(*until),
            },
            Phase::Conflict => WirePhase::Conflict,
            Phase::LoggedOut { repair_after } => WirePhase::LoggedOut {
                repair_after_ns: repair_after.map(ns),
            },
            Phase::Failed { probe_at } => WirePhase::Failed {
                probe_ns: probe_at.map(ns),
            },
        }
    }

    /// Back to a `Phase`; a QR withheld from this reader becomes an empty text (the console
    /// says it is hidden).
    fn phase(&self, clock: &Clock) -> Phase {
        let at = |ns: WallNs| from_ns(clock, ns);
        match self {
            WirePhase::Stopped => Phase::Stopped,
            WirePhase::Connecting => Phase::Connecting,
            WirePhase::Handshaking => Phase::Handshaking,
            WirePhase::Pairing {
                qr,
                index,
                count,
                expires_ns,
            } => Phase::Pairing {
                qr: QrView {
                    text: QrText::new(qr.clone().unwrap_or_default()),
                    index: *index,
                    count: *count,
                    expires_at: at(*expires_ns),
                },
            },
            WirePhase::Online { since_ns } => Phase::Online {
                since: at(*since_ns),
            },
            WirePhase::Backoff { retry_ns } => Phase::Backoff {
                retry_at: at(*retry_ns),
            },
            WirePhase::Cooldown { until_ns } => Phase::Cooldown {
                until: at(*until_ns),
            },
            WirePhase::Conflict => Phase::Conflict,
            WirePhase::LoggedOut { repair_after_ns } => Phase::LoggedOut {
                repair_after: repair_after_ns.map(at),
            },
            WirePhase::Failed { probe_ns } => Phase::Failed {
                probe_at: probe_ns.map(at),
            },
        }
    }
}

impl WireStatus {
    /// The wire form of `s`; the QR text only when `with_qr`.
    pub fn new(s: &Status, clock: &Clock, with_qr: bool) -> Self {
        let ns = |at: Instant| to_ns(clock, at);
        WireStatus {
            id: s.id.clone(),
            label: s.label.clone(),
            phase: WirePhase::new(&s.phase, clock, with_qr),
            since_ns: ns(s.since),
            reason: s.reason.clone(),
            attempt: s.attempt,
            max_attempts: s.max_attempts,
            conflicts_1h: s.conflicts_1h,
            disconnects_1h: s.disconnects_1h,
            last_cause: s.last_cause.clone(),
            last_code: s.last_code,
            uptime_pct: s.uptime_now(clock.read_at()),
            last_reconnect: s.last_reconnect,
            last_rtt: s.liveness.last_rtt,
            last_frame_ns: s.liveness.last_frame_at.map(ns),
            misses: s.liveness.misses,
            stalled: s.liveness.stalled,
            timeline: s
                .timeline
                .iter()
                .map(|e| WireEntry {
                    at_ns: ns(e.at),
                    state: e.state,
                    cause: e.cause.clone(),
                    code: e.code,
                    detail: e.detail.clone(),
                })
                .collect(),
            phone: s.account.phone.clone(),
            paired: s.account.paired,
            backups: s.backups.count,
            last_backup_ns: s.backups.last_at.map(ns),
            client_version: s.client_version.clone(),
            owner: s.owner.clone(),
            queued: s.outbox.queued,
            next_send_ns: s.outbox.next_send_at.map(ns),
            sent_1h: s.outbox.sent_1h,
            delivered_1h: s.outbox.delivered_1h,
            received_1h: s.outbox.received_1h,
            proxy: s.proxy.clone(),
            degraded: s.outbox.degraded,
        }
    }

    /// The `Status` this describes, with instants of this process (anchored by `clock`).
    pub fn status(&self, clock: &Clock) -> Status {
        let at = |ns: WallNs| from_ns(clock, ns);
        Status {
            id: self.id.clone(),
            label: self.label.clone(),
            phase: self.phase.phase(clock),
            since: at(self.since_ns),
            reason: self.reason.clone(),
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            conflicts_1h: self.conflicts_1h,
            disconnects_1h: self.disconnects_1h,
            last_cause: self.last_cause.clone(),
            last_code: self.last_code,
            uptime_pct: self.uptime_pct,
            uptime: None,
            last_reconnect: self.last_reconnect,
            liveness: Liveness {
                last_rtt: self.last_rtt,
                last_frame_at: self.last_frame_ns.map(at),
                misses: self.misses,
                stalled: self.stalled,
            },
            timeline: self
                .timeline
                .iter()
                .map(|e| TimelineEntry {
                    at: at(e.at_ns),
                    state: e.state,
                    cause: e.cause.clone(),
                    code: e.code,
                    detail: e.detail.clone(),
                })
                .collect(),
            account: Account {
                phone: self.phone.clone(),
                paired: self.paired,
            },
            backups: Backups {
                count: self.backups,
                last_at: self.last_backup_ns.map(at),
            },
            client_version: self.client_version.clone(),
            owner: self.owner.clone(),
            outbox: OutboxView {
                queued: self.queued,
                next_send_at: self.next_send_ns.map(at),
                sent_1h: self.sent_1h,
                delivered_1h: self.delivered_1h,
                received_1h: self.received_1h,
                degraded: self.degraded,
                silent_reconnects: 0,
            },
            proxy: self.proxy.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn busy(now: Instant) -> Status {
        let mut s = Status::new("sales-1", "Sales", now);
        s.phase = Phase::Pairing {
            qr: QrView {
                text: QrText::new("2@ref,key,id,adv".into()),
                index: 2,
                count: 6,
                expires_at: now + Duration::from_millis(20_123),
            },
        };
        s.since = now - Duration::from_nanos(1_234_567_891);
        s.reason = "waiting for the phone".into();
        s.attempt = 3;
        s.max_attempts = 10;
        s.last_cause = Some("conflict".into());
        s.last_code = Some(440);
        s.uptime_pct = 97.25;
        s.last_reconnect = Some(Duration::from_nanos(1_500_000_001));
        s.liveness = Liveness {
            last_rtt: Some(Duration::from_micros(4_321)),
            last_frame_at: Some(now - Duration::from_secs(2)),
            misses: 1,
            stalled: true,
        };
        s.timeline.push(TimelineEntry {
            at: now - Duration::from_secs(60),
            state: StateName::Backoff,
            cause: "closed".into(),
            code: Some(428),
            detail: "by the server".into(),
        });
        s.account = Account {
            phone: Some("4915112345678".into()),
            paired: false,
        };
        s.backups = Backups {
            count: 2,
            last_at: Some(now - Duration::from_secs(3600)),
        };
        s
    }

    #[test]
    fn a_status_survives_json_with_the_same_anchor() {
        let clock = Clock::now();
        let status = busy(Instant::now());
        let text = serde_json::to_string(&WireStatus::new(&status, &clock, true)).unwrap();
        let back: WireStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(back.status(&clock), status);
        assert!(text.contains("\"state\":\"pairing\""), "{text}");
    }

    #[test]
    fn every_phase_survives_json() {
        let clock = Clock::now();
        let now = Instant::now();
        let phases = [
            Phase::Stopped,
            Phase::Connecting,
            Phase::Handshaking,
            Phase::Online { since: now },
            Phase::Backoff {
                retry_at: now + Duration::from_secs(3),
            },
            Phase::Cooldown {
                until: now + Duration::from_secs(30),
            },
            Phase::Conflict,
            Phase::LoggedOut {
                repair_after: Some(now + Duration::from_secs(9)),
            },
            Phase::Failed { probe_at: None },
        ];
        for phase in phases {
            let mut status = Status::new("a", "A", now);
            status.phase = phase;
            let text = serde_json::to_string(&WireStatus::new(&status, &clock, true)).unwrap();
            let back: WireStatus = serde_json::from_str(&text).unwrap();
            assert_eq!(back.status(&clock), status, "{text}");
        }
    }

    #[test]
    fn the_qr_text_stays_home_without_the_token() {
        let clock = Clock::now();
        let status = busy(Instant::now());
        let text = serde_json::to_string(&WireStatus::new(&status, &clock, false)).unwrap();
        assert!(!text.contains("2@ref"), "{text}");
        let back: WireStatus = serde_json::from_str(&text).unwrap();
        let qr = back.status(&clock).qr().cloned().unwrap();
        assert_eq!((qr.text.as_str(), qr.index, qr.count), ("", 2, 6));
    }
}
