//! What can happen to a session: events from the socket, timers and the operator.

use std::time::Duration;

use super::status::{Backups, QrText};
use crate::wa::stanza::Cause;

pub use super::command::Command;

/// Identifies one dial; events from an older connection are ignored.
pub type ConnId = u64;

/// The kinds of timer a session arms (at most one of each is live).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Dial again (end of backoff, cooldown or a failed-state probe).
    Retry,
    /// Dial plus handshake took too long.
    ConnectTimeout,
    /// Time to send a keepalive ping.
    Ping,
    /// Check whether the link has been silent for `dead_after`.
    Dead,
    /// The current QR ref expires.
    QrExpiry,
    /// Online long enough: reset the attempt counter.
    Stable,
    /// Time to back up the credentials.
    Backup,
}

impl TimerKind {
    /// How many kinds there are.
    pub const COUNT: usize = 7;

    /// A dense index, below `COUNT`.
    pub fn index(self) -> usize {
        match self {
            TimerKind::Retry => 0,
            TimerKind::ConnectTimeout => 1,
            TimerKind::Ping => 2,
            TimerKind::Dead => 3,
            TimerKind::QrExpiry => 4,
            TimerKind::Stable => 5,
            TimerKind::Backup => 6,
        }
    }
}

/// A timer with its generation: a fired timer whose generation is no longer armed is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub kind: TimerKind,
    pub generation: u64,
}

/// An input to the state machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Connect requested by config (autostart, or online before the last stop).
    Start,
    /// The dial of `conn` has its handshake slot and rate token: the TCP connect starts now.
    /// (Until then it waited its turn, which does not count against the connect timeout.)
    DialStarted {
        conn: ConnId,
    },
    /// The WebSocket of `conn` is open; the handshake runs.
    Dialled {
        conn: ConnId,
    },
    /// The Noise handshake of `conn` completed.
    HandshakeDone {
        conn: ConnId,
    },
    /// The server offered pairing refs; `codes` holds the full QR text of each, in order.
    QrRefs {
        conn: ConnId,
        codes: Vec<QrText>,
    },
    /// The phone paired us (pair-success verified and answered); a 515 follows.
    Paired {
        conn: ConnId,
        phone: String,
    },
    /// `<success>`: logged in.
    Online {
        conn: ConnId,
    },
    /// Any frame arrived (proof of life).
    FrameReceived {
        conn: ConnId,
    },
    PingAnswered {
        conn: ConnId,
        rtt: Duration,
    },
    PingMissed {
        conn: ConnId,
    },
    /// The socket of `conn` is closed (by either side) for `cause`.
    Closed {
        conn: ConnId,
        cause: Cause,
    },
    TimerFired {
        timer: TimerId,
    },
    Operator(Command),
    /// The client version the driver dials with: set at start, and again when a config
    /// reload changes it (then a session `failed` on 405 probes again at once).
    ClientVersion {
        version: String,
    },
    /// The store found credentials but none loads (the reason says why).
    CredentialsLost {
        reason: String,
    },
    /// The phone the credentials (or the config, before pairing) name; sent at start and
    /// after a wipe (`Paired` carries it too).
    Phone {
        phone: Option<String>,
    },
    /// The credential backups on disk now.
    Backups(Backups),
    /// The current credentials file was refused and a backup was restored (the note says
    /// which file, why, and where the bad one was kept).
    CredentialsRestored {
        note: String,
    },
}
