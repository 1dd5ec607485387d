//! The states of a session; each variant carries only the data that state needs.

use std::time::Instant;

use super::event::ConnId;
use super::reason::{CooldownReason, FailReason, LogoutReason, StopReason};
use super::status::{QrText, StateName};
use crate::wa::stanza::Cause;

/// Keepalive bookkeeping, alive only while the session is online.
#[derive(Debug, Clone, PartialEq)]
pub struct Keepalive {
    /// The last sign of life (any frame, a ping answer, the login).
    pub last_alive: Instant,
    /// Pings missed in a row.
    pub misses: u32,
    /// A ping was sent and has neither been answered nor missed.
    pub ping_outstanding: bool,
    /// A ping went unanswered with no frame at all during its deadline: the link is stalled
    /// (counted as down) until a frame comes, or `dead_after` ends it.
    pub stalled: bool,
}

impl Keepalive {
    pub fn new(now: Instant) -> Self {
        Keepalive {
            last_alive: now,
            misses: 0,
            ping_outstanding: false,
            stalled: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not connecting: by the operator, by config, or after pairing timed out.
    Stopped { reason: StopReason },
    /// Waiting for the rate limit or the WebSocket.
    Connecting { conn: ConnId },
    /// WebSocket open; Noise handshake and login (or waiting for pairing refs).
    Handshaking { conn: ConnId },
    /// Showing QR code `index` (0-based) of `codes` until `expires_at`.
    Pairing {
        conn: ConnId,
        codes: Vec<QrText>,
        index: usize,
        expires_at: Instant,
    },
    /// Logged in.
    Online {
        conn: ConnId,
        since: Instant,
        keepalive: Keepalive,
    },
    /// Waiting to retry after `cause`.
    Backoff { until: Instant, cause: Cause },
    /// Waiting until `until` (temporary ban, conflict cooldown).
    Cooldown { until: Instant, why: CooldownReason },
    /// Replaced by another client; waits for the operator.
    Conflict,
    /// Logged out; re-pairing is allowed after the session's `repair_after`.
    LoggedOut { reason: LogoutReason },
    /// Gave up; a slow probe may retry at `probe_at`.
    Failed {
        reason: FailReason,
        probe_at: Option<Instant>,
    },
}

impl State {
    pub fn name(&self) -> StateName {
        match self {
            State::Stopped { .. } => StateName::Stopped,
            State::Connecting { .. } => StateName::Connecting,
            State::Handshaking { .. } => StateName::Handshaking,
            State::Pairing { .. } => StateName::Pairing,
            State::Online { .. } => StateName::Online,
            State::Backoff { .. } => StateName::Backoff,
            State::Cooldown { .. } => StateName::Cooldown,
            State::Conflict => StateName::Conflict,
            State::LoggedOut { .. } => StateName::LoggedOut,
            State::Failed { .. } => StateName::Failed,
        }
    }

    /// The text shown with the state.
    pub fn reason(&self) -> String {
        match self {
            State::Stopped { reason } => reason.to_string(),
            State::LoggedOut { reason } => reason.to_string(),
            State::Failed { reason, .. } => reason.to_string(),
            State::Cooldown { why, .. } => why.to_string(),
            State::Backoff { cause, .. } => cause.to_string(),
            State::Conflict => "replaced by another client; press r to reconnect".to_string(),
            _ => String::new(),
        }
    }

    /// True when the session is meant to be online: it is, or it is on its way back without
    /// waiting for the operator. This is the persisted `was_online` flag, so a restart (after
    /// a graceful stop or a kill alike) resumes exactly these sessions.
    pub fn wants_online(&self) -> bool {
        self.name().wants_online()
    }
}

impl StateName {
    /// See [`State::wants_online`]; the rule lives here so a published status answers it too.
    pub fn wants_online(self) -> bool {
        match self {
            StateName::Online
            | StateName::Connecting
            | StateName::Handshaking
            | StateName::Backoff
            | StateName::Cooldown => true,
            StateName::Stopped
            | StateName::Pairing
            | StateName::Conflict
            | StateName::LoggedOut
            | StateName::Failed => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wants_online_for_every_state() {
        use StateName as S;
        let table = [
            (S::Stopped, false),
            (S::Connecting, true),
            (S::Handshaking, true),
            (S::Pairing, false),
            (S::Online, true),
            (S::Backoff, true),
            (S::Cooldown, true),
            (S::Conflict, false),
            (S::LoggedOut, false),
            (S::Failed, false),
        ];
        assert_eq!(
            table.len(),
            S::ALL.len(),
            "a state is missing from the table"
        );
        for (state, wanted) in table {
            assert_eq!(state.wants_online(), wanted, "{state:?}");
        }
        let now = Instant::now();
        let backoff = State::Backoff {
            until: now,
            cause: Cause::Closed,
        };
        assert!(backoff.wants_online());
        let stopped = State::Stopped {
            reason: StopReason::Operator,
        };
        assert!(!stopped.wants_online());
    }
}
