//! A made-up fleet for snapshots, benches and demos: `sample_fleet(n, now)` gives `n` statuses
//! in a fixed mix of states with plausible timers, counters and timelines, all relative to
//! `now` and the same on every call.

use std::time::{Duration, Instant};

use base64::Engine;

use crate::session::status::{Liveness, Phase, QrText, QrView, StateName, Status, TimelineEntry};

/// Deterministic spread of `i` over `0..m` (a multiplicative hash; no randomness).
fn spread(i: usize, salt: u64, m: u64) -> u64 {
    let x = (i as u64 + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    (x ^ (x >> 31)) % m.max(1)
}

fn ago(now: Instant, secs: u64) -> Instant {
    now.checked_sub(Duration::from_secs(secs)).unwrap_or(now)
}

/// The state of the `i`-th sample session: mostly online, a few of every other state.
fn state_of(i: usize) -> StateName {
    match i % 50 {
        0 | 25 => StateName::Backoff,
        1 => StateName::Pairing,
        2 | 27 => StateName::Connecting,
        3 => StateName::Handshaking,
        4 => StateName::Cooldown,
        5 | 30 => StateName::Conflict,
        6 => StateName::LoggedOut,
        7 => StateName::Failed,
        8 | 33 => StateName::Stopped,
        _ => StateName::Online,
    }
}

/// A QR text shaped like WhatsApp's (prefix, `2@` ref, three 44-char base64 keys, platform);
/// the keys are made up from `seed`.
pub fn sample_qr_text(seed: usize) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = |salt: u64| {
        let bytes: Vec<u8> = (0..32)
            .map(|k| spread(seed * 97 + k, salt, 256) as u8)
            .collect();
        b64.encode(bytes)
    };
    let reference: Vec<u8> = (0..18)
        .map(|k| spread(seed * 31 + k, 9, 256) as u8)
        .collect();
    format!(
        "https://wa.me/settings/linked_devices#2@{},{},{},{},1",
        b64.encode(reference),
        key(1),
        key(2),
        key(3)
    )
}

/// A plausible phase for a session in `state` at `now` (waits end a minute from now), for
/// tests and demos that only care about the state.
pub fn phase_of(state: StateName, now: Instant) -> Phase {
    let later = now + Duration::from_secs(60);
    match state {
        StateName::Stopped => Phase::Stopped,
        StateName::Connecting => Phase::Connecting,
        StateName::Handshaking => Phase::Handshaking,
        StateName::Pairing => Phase::Pairing {
            qr: QrView {
                text: QrText::new(sample_qr_text(0)),
                index: 1,
                count: 6,
                expires_at: later,
            },
        },
        StateName::Online => Phase::Online { since: now },
        StateName::Backoff => Phase::Backoff { retry_at: later },
        StateName::Cooldown => Phase::Cooldown { until: later },
        StateName::Conflict => Phase::Conflict,
        StateName::LoggedOut => Phase::LoggedOut { repair_after: None },
        StateName::Failed => Phase::Failed { probe_at: None },
    }
}

/// `n` sample sessions (`s0001`...), statuses as the pool would publish them at `now`.
pub fn sample_fleet(n: usize, now: Instant) -> Vec<Status> {
    (0..n).map(|i| sample_status(i, now)).collect()
}

fn sample_status(i: usize, now: Instant) -> Status {
    let id = format!("s{:04}", i + 1);
    let teams = ["Sales", "Support", "Billing", "Ops", "Alerts"];
    let label = format!("{} line {}", teams[i % teams.len()], i / teams.len() + 1);
    let mut s = Status::new(id, label, now);
    let state = state_of(i);
    let in_state = 5 + spread(i, 1, 600);
    s.phase = match state {
        StateName::Stopped => Phase::Stopped,
        StateName::Connecting => Phase::Connecting,
        StateName::Handshaking => Phase::Handshaking,
        StateName::Conflict => Phase::Conflict,
        StateName::Failed => Phase::Failed { probe_at: None },
        // The states with data get it below.
        _ => Phase::Stopped,
    };
    s.since = ago(now, in_state);
    s.account.paired = !matches!(state, StateName::Pairing | StateName::LoggedOut);
    if s.account.paired {
        s.account.phone = Some(format!("+1555{:07}", 1_000_000 + spread(i, 2, 8_999_999)));
        s.backups.count = 1 + spread(i, 3, 5) as u32;
        s.backups.last_at = Some(ago(now, 60 * (1 + spread(i, 4, 29))));
    }
    s.conflicts_1h = if i.is_multiple_of(17) {
        1 + spread(i, 5, 3) as u32
    } else {
        0
    };
    s.disconnects_1h = spread(i, 6, 4) as u32;
    s.uptime_pct = match state {
        StateName::Online => 95.0 + spread(i, 7, 50) as f64 / 10.0,
        _ => 40.0 + spread(i, 7, 500) as f64 / 10.0,
    };
    s.liveness = Liveness {
        last_rtt: Some(Duration::from_millis(40 + spread(i, 8, 300))),
        last_frame_at: Some(ago(now, spread(i, 9, 25))),
        misses: 0,
        stalled: false,
    };

    let mut timeline = vec![
        TimelineEntry {
            at: ago(now, in_state + 900),
            state: StateName::Connecting,
            cause: "start".into(),
            code: None,
            detail: String::new(),
        },
        TimelineEntry {
            at: ago(now, in_state + 898),
            state: StateName::Online,
            cause: "login".into(),
            code: None,
            detail: String::new(),
        },
    ];
    let (cause, code, detail, reason): (&str, Option<u16>, &str, &str) = match state {
        StateName::Online => ("login", None, "", ""),
        StateName::Backoff => ("closed", Some(428), "connection closed", "network"),
        StateName::Pairing => ("no credentials", None, "", "scan the QR"),
        StateName::Connecting => ("retry", None, "", ""),
        StateName::Handshaking => ("dialled", None, "", ""),
        StateName::Cooldown => ("temporary ban", Some(402), "server expiry", "temporary ban"),
        StateName::Conflict => ("conflict", Some(440), "replaced", "replaced elsewhere"),
        StateName::LoggedOut => ("logged out", Some(401), "device removed", "needs pairing"),
        StateName::Failed => ("client outdated", Some(405), "", "set the client version"),
        StateName::Stopped => ("operator disconnect", None, "", "operator"),
    };
    if state != StateName::Online {
        timeline.push(TimelineEntry {
            at: s.since,
            state,
            cause: cause.into(),
            code,
            detail: detail.into(),
        });
        s.last_cause = Some(cause.into());
        s.last_code = code;
    } else {
        s.phase = Phase::Online { since: s.since };
        s.last_reconnect = Some(Duration::from_millis(300 + spread(i, 10, 2000)));
        if i.is_multiple_of(3) {
            // A recent reconnect, so the fleet has a connects/min figure.
            timeline.push(TimelineEntry {
                at: ago(now, in_state.min(50) + 2),
                state: StateName::Connecting,
                cause: "closed".into(),
                code: Some(428),
                detail: String::new(),
            });
            timeline.push(TimelineEntry {
                at: ago(now, in_state.min(50)),
                state: StateName::Online,
                cause: "login".into(),
                code: None,
                detail: String::new(),
            });
        }
    }
    s.reason = reason.into();
    s.timeline = timeline;
    match state {
        StateName::Backoff => {
            s.attempt = 1 + spread(i, 11, 6) as u32;
            s.max_attempts = 20;
            s.phase = Phase::Backoff {
                retry_at: now + Duration::from_secs(1 + spread(i, 12, 60)),
            };
        }
        StateName::Cooldown => {
            s.phase = Phase::Cooldown {
                until: now + Duration::from_secs(30 + spread(i, 13, 600)),
            };
        }
        StateName::Conflict => {
            s.conflicts_1h = s.conflicts_1h.max(1);
        }
        StateName::LoggedOut => {
            s.phase = Phase::LoggedOut {
                repair_after: Some(now + Duration::from_secs(60 + spread(i, 14, 240))),
            };
        }
        StateName::Connecting | StateName::Handshaking => {
            s.attempt = spread(i, 15, 3) as u32;
            s.max_attempts = 20;
        }
        StateName::Pairing => {
            let index = 1 + spread(i, 16, 6) as u32;
            let qr = QrView {
                text: QrText::new(sample_qr_text(i)),
                index,
                count: 6,
                expires_at: now + Duration::from_secs(5 + spread(i, 17, 15)),
            };
            s.phase = Phase::Pairing { qr };
        }
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_has_every_state_and_is_reproducible() {
        let now = Instant::now();
        let fleet = sample_fleet(100, now);
        for state in StateName::ALL {
            assert!(
                fleet.iter().any(|s| s.state() == state),
                "{state:?} missing"
            );
        }
        assert_eq!(fleet, sample_fleet(100, now));
    }

    #[test]
    fn sample_qr_texts_have_the_whatsapp_shape() {
        let text = sample_qr_text(1);
        let fields: Vec<&str> = text
            .trim_start_matches("https://wa.me/settings/linked_devices#")
            .split(',')
            .collect();
        assert_eq!(fields.len(), 5);
        assert_eq!(
            [fields[1].len(), fields[2].len(), fields[3].len()],
            [44, 44, 44]
        );
        assert_eq!(text.len(), 201);
    }
}
