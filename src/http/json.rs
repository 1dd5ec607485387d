//! JSON views of session statuses: instants become RFC 3339 wall-clock times, durations
//! become milliseconds. Built only from `Status`, which holds no secrets (the QR text is
//! included only in the single-session view while pairing, and only for the token holder:
//! whoever scans it links the session).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::session::status::{Status, TimelineEntry};

/// Converts monotonic instants to wall-clock text, anchored once per answer.
pub struct Clock {
    now: Instant,
    wall: SystemTime,
}

impl Clock {
    pub fn now() -> Self {
        Clock {
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// RFC 3339 UTC text (`2026-11-22T23:08:49Z`) for a monotonic instant.
    pub fn wall(&self, at: Instant) -> String {
        rfc3339(self.wall_time(at))
    }

    /// The wall-clock time of a monotonic instant.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        if at >= self.now {
            self.wall + (at - self.now)
        } else {
            self.wall - (self.now - at)
        }
    }

    /// The monotonic instant of a wall-clock time (the anchor itself when it cannot be
    /// represented, e.g. before the machine booted).
    /// The instant this clock was read at.
    pub fn read_at(&self) -> Instant {
        self.now
    }

    pub fn instant(&self, wall: SystemTime) -> Instant {
        match wall.duration_since(self.wall) {
            Ok(ahead) => self.now.checked_add(ahead),
            Err(behind) => self.now.checked_sub(behind.duration()),
        }
        .unwrap_or(self.now)
    }
}

/// Formats a wall time as RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One row of `GET /sessions`.
#[derive(Serialize, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub label: String,
    pub phone: Option<String>,
    pub state: &'static str,
    pub since: String,
    pub reason: String,
    pub attempt: u32,
    pub retry_at: Option<String>,
    pub cooldown_until: Option<String>,
    pub conflicts_1h: u32,
    pub last_cause: Option<String>,
    pub last_code: Option<u16>,
    pub uptime_pct: f64,
    pub last_rtt_ms: Option<u64>,
    /// Online, but the last ping's deadline passed without any frame.
    pub stalled: bool,
    /// Messages in the outbox, and when the send limits let the next go.
    pub queued: u32,
    pub next_send: Option<String>,
    /// The proxy the session dials through, password hidden; `null` when direct.
    pub proxy: Option<String>,
    /// The end-to-end probe (`[probe]`) did not arrive in time though the socket looked
    /// healthy.
    pub degraded: bool,
}

impl SessionRow {
    pub fn new(s: &Status, clock: &Clock) -> Self {
        SessionRow {
            id: s.id.clone(),
            label: s.label.clone(),
            phone: s.account.phone.clone(),
            state: s.state().as_str(),
            since: clock.wall(s.since),
            reason: s.reason.clone(),
            attempt: s.attempt,
            retry_at: s.retry_at().map(|t| clock.wall(t)),
            cooldown_until: s.cooldown_until().map(|t| clock.wall(t)),
            conflicts_1h: s.conflicts_1h,
            last_cause: s.last_cause.clone(),
            last_code: s.last_code,
            uptime_pct: (s.uptime_now(clock.now) * 10.0).round() / 10.0,
            last_rtt_ms: s.liveness.last_rtt.map(ms),
            stalled: s.liveness.stalled,
            queued: s.outbox.queued,
            next_send: s.outbox.next_send_at.map(|t| clock.wall(t)),
            proxy: s.proxy.clone(),
            degraded: s.outbox.degraded,
        }
    }

    /// True when `self` shows the operator nothing `earlier` did not: every field alike but
    /// `uptime_pct`, which moves with the clock and is read afresh on every row anyway.
    pub fn shows_same_as(&self, earlier: &SessionRow) -> bool {
        let mut this = self.clone();
        this.uptime_pct = earlier.uptime_pct;
        this == *earlier
    }
}

#[derive(Serialize)]
pub struct TimelineRow {
    pub at: String,
    pub state: &'static str,
    pub cause: String,
    pub code: Option<u16>,
    pub detail: String,
}

impl TimelineRow {
    fn new(e: &TimelineEntry, clock: &Clock) -> Self {
        TimelineRow {
            at: clock.wall(e.at),
            state: e.state.as_str(),
            cause: e.cause.clone(),
            code: e.code,
            detail: e.detail.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct LivenessView {
    pub last_rtt_ms: Option<u64>,
    pub last_frame_age_ms: Option<u64>,
    pub misses: u32,
    /// Online, but the last ping's deadline passed without any frame.
    pub stalled: bool,
}

/// `GET /sessions/{id}`: the row plus diagnostics.
#[derive(Serialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub row: SessionRow,
    pub max_attempts: u32,
    pub disconnects_1h: u32,
    pub online_since: Option<String>,
    pub last_reconnect_ms: Option<u64>,
    pub liveness: LivenessView,
    pub paired: bool,
    pub backups: u32,
    pub last_backup_at: Option<String>,
    /// The WhatsApp Web version the session dials with ("2.3000.N").
    pub client_version: String,
    /// Present only for a request with the token: without it there is no `qr` key at all.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub pairing: Option<PairingView>,
    pub timeline: Vec<TimelineRow>,
}

/// The QR text while pairing (the operator's client renders it).
#[derive(Serialize)]
pub struct PairingView {
    pub qr: Option<String>,
    pub qr_ref: Option<String>,
    pub qr_expires_at: Option<String>,
}

impl SessionDetail {
    /// The view of `s`; `with_qr` only for a request that carries the token.
    pub fn new(s: &Status, clock: &Clock, with_qr: bool) -> Self {
        SessionDetail {
            row: SessionRow::new(s, clock),
            max_attempts: s.max_attempts,
            disconnects_1h: s.disconnects_1h,
            online_since: s.online_since().map(|t| clock.wall(t)),
            last_reconnect_ms: s.last_reconnect.map(ms),
            liveness: LivenessView {
                last_rtt_ms: s.liveness.last_rtt.map(ms),
                last_frame_age_ms: s
                    .liveness
                    .last_frame_at
                    .map(|t| ms(clock.now.saturating_duration_since(t))),
                misses: s.liveness.misses,
                stalled: s.liveness.stalled,
            },
            paired: s.account.paired,
            backups: s.backups.count,
            last_backup_at: s.backups.last_at.map(|t| clock.wall(t)),
            client_version: s.client_version.clone(),
            pairing: with_qr.then(|| PairingView {
                qr: s.qr().map(|q| q.text.as_str().to_string()),
                qr_ref: s.qr().map(|q| format!("{}/{}", q.index, q.count)),
                qr_expires_at: s.qr().map(|q| clock.wall(q.expires_at)),
            }),
            timeline: s
                .timeline
                .iter()
                .map(|e| TimelineRow::new(e, clock))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_388_929);
        assert_eq!(rfc3339(t), "2026-11-22T23:08:49Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
