//! The states of a session; each variant carries only the data that state needs.

use std::time::Instant;

use super::event::ConnId;
use super::status::StateName;
use crate::wa::stanza::Cause;

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not connecting: by the operator, by config, or after pairing timed out.
    Stopped { reason: String },
    /// Waiting for the rate limit or the WebSocket.
    Connecting { conn: ConnId },
    /// WebSocket open; Noise handshake and login (or waiting for pairing refs).
    Handshaking { conn: ConnId },
    /// Showing QR ref `index` (0-based) of `refs` until `expires_at`.
    Pairing {
        conn: ConnId,
        refs: Vec<String>,
        index: usize,
        expires_at: Instant,
    },
    /// Logged in.
    Online { conn: ConnId, since: Instant },
    /// Waiting to retry after `cause`.
    Backoff { until: Instant, cause: Cause },
    /// Waiting until `until` (temporary ban, conflict cooldown).
    Cooldown { until: Instant, why: String },
    /// Replaced by another client; waits for the operator.
    Conflict,
    /// Logged out; re-pairing allowed after `repair_after`.
    LoggedOut {
        reason: String,
        repair_after: Option<Instant>,
    },
    /// Gave up; a slow probe may retry at `probe_at`.
    Failed {
        reason: String,
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

    /// The connection this state is using, if any.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            State::Connecting { conn }
            | State::Handshaking { conn }
            | State::Pairing { conn, .. }
            | State::Online { conn, .. } => Some(*conn),
            _ => None,
        }
    }

    /// The free text shown with the state.
    pub fn reason(&self) -> String {
        match self {
            State::Stopped { reason }
            | State::LoggedOut { reason, .. }
            | State::Failed { reason, .. } => reason.clone(),
            State::Cooldown { why, .. } => why.clone(),
            State::Backoff { cause, .. } => cause.to_string(),
            State::Conflict => "replaced by another client; press r to reconnect".to_string(),
            _ => String::new(),
        }
    }
}
