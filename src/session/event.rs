//! What can happen to a session: events from the socket, timers and the operator.

use std::time::Duration;

use crate::wa::stanza::Cause;

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

/// A timer with its generation: a fired timer whose generation is no longer armed is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub kind: TimerKind,
    pub generation: u64,
}

/// What the operator (console, HTTP) asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start connecting (from `stopped`, `failed`, `conflict`, ...).
    Connect,
    /// Close any socket and dial now, skipping every wait.
    ReconnectNow,
    /// Close the socket and stay `stopped`.
    Disconnect,
    /// Clear a cooldown, backoff or logout wait, then connect.
    ResetCooldown,
    /// Remove the key material (after one last backup when `backup`).
    WipeCredentials { backup: bool },
    /// Start pairing (a session without credentials shows a QR).
    Pair,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::ReconnectNow => "reconnect",
            Command::Disconnect => "disconnect",
            Command::ResetCooldown => "reset cooldown",
            Command::WipeCredentials { .. } => "wipe",
            Command::Pair => "pair",
        }
    }
}

/// An input to the state machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Connect requested by config (autostart, or online before the last stop).
    Start,
    /// The WebSocket of `conn` is open; the handshake runs.
    Dialled {
        conn: ConnId,
    },
    /// The Noise handshake of `conn` completed.
    HandshakeDone {
        conn: ConnId,
    },
    /// The server offered pairing refs (one QR each).
    QrRefs {
        conn: ConnId,
        refs: Vec<String>,
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
    /// The current credentials file was refused and a backup was restored (the note says
    /// which file, why, and where the bad one was kept).
    CredentialsRestored {
        note: String,
    },
}
