//! What the state machine asks the driver to do.

use std::time::Instant;

use super::event::{ConnId, TimerId};
use super::status::TimelineEntry;
use crate::wa::stanza::Cause;

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open one connection (through the global rate limit). Never emitted while another
    /// connection of the session is outstanding or open.
    Dial {
        conn: ConnId,
    },
    /// Close the connection; a `Closed { conn }` event must follow.
    Close {
        conn: ConnId,
        reason: String,
    },
    /// Send a keepalive ping on `conn`; answer with `PingAnswered` or `PingMissed`.
    SendPing {
        conn: ConnId,
    },
    SaveCredentials,
    BackupCredentials,
    WipeCredentials {
        backup: bool,
    },
    /// Show QR ref `index` (1-based) of `count` until `expires_at`.
    ShowQr {
        index: u32,
        count: u32,
        expires_at: Instant,
    },
    /// Deliver `TimerFired { timer }` at `at`.
    ScheduleTimer {
        timer: TimerId,
        at: Instant,
    },
    /// A transition for the timeline (already in the session's ring).
    Record(TimelineEntry),
    /// The live socket closed for `cause` (a metric, counted once per close).
    Disconnected {
        cause: Cause,
    },
    /// The session will reconnect after a disconnect caused by `cause` (a metric).
    Reconnect {
        cause: Cause,
    },
}
