//! Sessions other nodes run, as statuses the console can show beside its own: the state from
//! their shared state, the owner named in the reason (`on node-b`), and the figures the table
//! has columns for. A command on such a row is forwarded to its owner by the pool handle.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::net::gate::SharedState;
use crate::session::status::{Phase, StateName, Status};

/// The console's row for a session `shared.owner` runs. `now`/`wall` are one instant on the
/// monotonic and the wall clock.
pub fn remote_status(shared: &SharedState, now: Instant, wall: SystemTime) -> Status {
    let at = |ms: u64| {
        let then = UNIX_EPOCH + Duration::from_millis(ms);
        let age = wall.duration_since(then).unwrap_or_default();
        now.checked_sub(age).unwrap_or(now)
    };
    let since = shared.connected_at_ms.map_or(now, at);
    let phase = match StateName::parse(&shared.state) {
        Some(StateName::Online) => Phase::Online { since },
        Some(StateName::Connecting) => Phase::Connecting,
        Some(StateName::Handshaking) => Phase::Handshaking,
        Some(StateName::Backoff) => Phase::Backoff { retry_at: now },
        Some(StateName::Cooldown) => Phase::Cooldown { until: now },
        Some(StateName::Conflict) => Phase::Conflict,
        Some(StateName::LoggedOut) => Phase::LoggedOut { repair_after: None },
        Some(StateName::Failed) => Phase::Failed { probe_at: None },
        // Pairing shows its QR on the owner's console only.
        Some(StateName::Pairing | StateName::Stopped) | None => Phase::Stopped,
    };
    let mut status = Status::new(&shared.id, &shared.id, since);
    status.phase = phase;
    status.reason = if shared.reason.is_empty() {
        format!("on {}", shared.owner)
    } else {
        format!("on {}: {}", shared.owner, shared.reason)
    };
    status.attempt = shared.reconnect_attempts;
    status.conflicts_1h = shared.conflicts_1h;
    status.disconnects_1h = shared.disconnects_1h;
    status.account.phone = shared.phone.clone();
    status.owner = Some(shared.owner.clone());
    status.liveness.last_frame_at = shared.last_activity_ms.map(at);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_session_names_its_owner_and_keeps_its_state() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let wall_ms = |ago: u64| {
            u64::try_from(
                wall.duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(0)
                - ago
        };
        let shared = SharedState {
            id: "s07".to_string(),
            owner: "node-b".to_string(),
            state: "online".to_string(),
            reason: String::new(),
            phone: Some("+15551234567".to_string()),
            reconnect_attempts: 0,
            conflicts_1h: 2,
            disconnects_1h: 3,
            connected_at_ms: Some(wall_ms(60_000)),
            last_activity_ms: Some(wall_ms(1_000)),
            written_ms: wall_ms(0),
        };
        let status = remote_status(&shared, now, wall);
        assert_eq!(status.state(), StateName::Online);
        assert_eq!(status.reason, "on node-b");
        assert_eq!(status.conflicts_1h, 2);
        assert_eq!(status.owner.as_deref(), Some("node-b"));
        let online_for = now.duration_since(status.online_since().unwrap_or(now));
        assert!(online_for >= Duration::from_secs(59) && online_for <= Duration::from_secs(61));
        let cooled = SharedState {
            state: "cooldown".to_string(),
            reason: "cluster: redis unreachable".to_string(),
            ..shared
        };
        let status = remote_status(&cooled, now, wall);
        assert_eq!(status.state(), StateName::Cooldown);
        assert_eq!(status.reason, "on node-b: cluster: redis unreachable");
    }
}
