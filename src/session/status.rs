//! The published view of one session: what the pool sends to the console and the HTTP
//! endpoint. A plain snapshot (no handles, no secrets), cheap to clone and coalesce.

use std::time::{Duration, Instant};

/// The state names of SPEC.md, as shown in the console and returned by HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Stopped,
    Connecting,
    Handshaking,
    Pairing,
    Online,
    Backoff,
    Cooldown,
    Conflict,
    LoggedOut,
    Failed,
}

impl StateName {
    /// Every state, in the order the console lists fleet counts.
    pub const ALL: [StateName; 10] = [
        StateName::Online,
        StateName::Pairing,
        StateName::Connecting,
        StateName::Handshaking,
        StateName::Backoff,
        StateName::Cooldown,
        StateName::Conflict,
        StateName::LoggedOut,
        StateName::Failed,
        StateName::Stopped,
    ];

    /// The snake_case name used on screen, in HTTP answers and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Stopped => "stopped",
            StateName::Connecting => "connecting",
            StateName::Handshaking => "handshaking",
            StateName::Pairing => "pairing",
            StateName::Online => "online",
            StateName::Backoff => "backoff",
            StateName::Cooldown => "cooldown",
            StateName::Conflict => "conflict",
            StateName::LoggedOut => "logged_out",
            StateName::Failed => "failed",
        }
    }

    /// Parses a state name as typed in a filter (`state=backoff`).
    pub fn parse(text: &str) -> Option<StateName> {
        StateName::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The QR currently offered for pairing.
#[derive(Debug, Clone, PartialEq)]
pub struct QrView {
    /// The QR text (holds public keys and the adv secret's base64: shown only as a QR code
    /// on screen and given to the operator's own HTTP client, never logged).
    pub text: String,
    /// 1-based index of this ref among `count`.
    pub index: u32,
    pub count: u32,
    pub expires_at: Instant,
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub at: Instant,
    pub state: StateName,
    /// Cause name (`conflict`, `closed`, ...) or operator action (`operator reconnect`).
    pub cause: String,
    pub code: Option<u16>,
    pub detail: String,
}

/// Keepalive figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Liveness {
    pub last_rtt: Option<Duration>,
    pub last_frame_at: Option<Instant>,
    pub misses: u32,
}

/// A snapshot of one session for the console and HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub id: String,
    pub label: String,
    pub phone: Option<String>,
    pub state: StateName,
    /// When the current state was entered.
    pub since: Instant,
    /// Free text that goes with the state (`pairing timed out`, `banned`, a hint).
    pub reason: String,
    /// Reconnect attempt number in the current outage (0 when online).
    pub attempt: u32,
    pub max_attempts: u32,
    pub retry_at: Option<Instant>,
    pub cooldown_until: Option<Instant>,
    pub conflicts_1h: u32,
    pub disconnects_1h: u32,
    pub last_cause: Option<String>,
    pub last_code: Option<u16>,
    /// Share of the observed lifetime spent online, 0..=100.
    pub uptime_pct: f64,
    pub online_since: Option<Instant>,
    pub last_reconnect: Option<Duration>,
    pub liveness: Liveness,
    pub qr: Option<QrView>,
    /// Newest last, bounded by the session's ring.
    pub timeline: Vec<TimelineEntry>,
    pub paired: bool,
    pub backups: u32,
    pub last_backup_at: Option<Instant>,
    /// The WhatsApp Web version this session dials with ("2.3000.N"; empty before start).
    pub client_version: String,
}

impl Status {
    /// A fresh `stopped` status for a session that has not run yet.
    pub fn new(id: impl Into<String>, label: impl Into<String>, now: Instant) -> Self {
        Status {
            id: id.into(),
            label: label.into(),
            phone: None,
            state: StateName::Stopped,
            since: now,
            reason: String::new(),
            attempt: 0,
            max_attempts: 0,
            retry_at: None,
            cooldown_until: None,
            conflicts_1h: 0,
            disconnects_1h: 0,
            last_cause: None,
            last_code: None,
            uptime_pct: 0.0,
            online_since: None,
            last_reconnect: None,
            liveness: Liveness::default(),
            qr: None,
            timeline: Vec::new(),
            paired: false,
            backups: 0,
            last_backup_at: None,
            client_version: String::new(),
        }
    }
}
