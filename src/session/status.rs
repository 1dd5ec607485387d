//! The published view of one session: what the pool sends to the console and the HTTP
//! endpoint. A plain snapshot (no handles, no secrets), cheap to clone and coalesce.

use std::time::{Duration, Instant};

use super::timeline::Uptime;

/// The state names of SPEC.md, as shown in the console and returned by HTTP.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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

/// One QR code's full text. It holds public keys and the adv secret's base64: it is shown only
/// as a QR code on screen and given to the operator's own HTTP client, never logged (`Debug`
/// prints no byte of it).
#[derive(Clone, PartialEq, Eq)]
pub struct QrText(String);

impl QrText {
    pub fn new(text: String) -> Self {
        QrText(text)
    }

    /// The text, for rendering; never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for QrText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QrText(<redacted, {} bytes>)", self.0.len())
    }
}

/// The QR currently offered for pairing.
#[derive(Debug, Clone, PartialEq)]
pub struct QrView {
    pub text: QrText,
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
    /// Online, but a ping and its whole deadline passed without a frame.
    pub stalled: bool,
}

/// The state of a published status with the data only that state has.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Stopped,
    Connecting,
    Handshaking,
    Pairing {
        qr: QrView,
    },
    Online {
        since: Instant,
    },
    Backoff {
        retry_at: Instant,
    },
    Cooldown {
        until: Instant,
    },
    Conflict,
    /// `repair_after`: re-pairing is allowed from then on.
    LoggedOut {
        repair_after: Option<Instant>,
    },
    /// `probe_at`: the next slow probe, if any.
    Failed {
        probe_at: Option<Instant>,
    },
}

impl Phase {
    pub fn name(&self) -> StateName {
        match self {
            Phase::Stopped => StateName::Stopped,
            Phase::Connecting => StateName::Connecting,
            Phase::Handshaking => StateName::Handshaking,
            Phase::Pairing { .. } => StateName::Pairing,
            Phase::Online { .. } => StateName::Online,
            Phase::Backoff { .. } => StateName::Backoff,
            Phase::Cooldown { .. } => StateName::Cooldown,
            Phase::Conflict => StateName::Conflict,
            Phase::LoggedOut { .. } => StateName::LoggedOut,
            Phase::Failed { .. } => StateName::Failed,
        }
    }
}

/// The account behind a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    /// The paired phone, or the configured one until pairing tells.
    pub phone: Option<String>,
    /// Usable paired credentials exist.
    pub paired: bool,
}

/// The session's credential backups.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backups {
    pub count: u32,
    pub last_at: Option<Instant>,
}

/// The session's outbox: messages waiting to be sent (or acked by the server) and when the
/// send limits let the next one go (`None` while nothing can go: empty, or offline).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxView {
    pub queued: u32,
    pub next_send_at: Option<Instant>,
    /// Over the last hour: messages the server acked, delivered (or read) ones, received ones.
    pub sent_1h: u32,
    pub delivered_1h: u32,
    pub received_1h: u32,
    /// The last end-to-end probe was not delivered in time (`[probe]`), though the socket
    /// looked healthy; cleared by the next probe that arrives.
    pub degraded: bool,
    /// Reconnects the probe asked for (`reconnect_on_silence`), counted up.
    pub silent_reconnects: u32,
}

impl OutboxView {
    /// Delivered over sent in the last hour, as a percentage capped at 100 (a receipt can
    /// count a message acked more than an hour ago); `None` while nothing was sent.
    pub fn delivery_pct(&self) -> Option<f64> {
        (self.sent_1h > 0)
            .then(|| (f64::from(self.delivered_1h) * 100.0 / f64::from(self.sent_1h)).min(100.0))
    }
}

/// A snapshot of one session for the console and HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub id: String,
    pub label: String,
    pub phase: Phase,
    /// When the current state was entered.
    pub since: Instant,
    /// Free text that goes with the state (`pairing timed out`, `banned`, a hint).
    pub reason: String,
    /// Reconnect attempt number in the current outage (0 when online).
    pub attempt: u32,
    pub max_attempts: u32,
    pub conflicts_1h: u32,
    pub disconnects_1h: u32,
    pub last_cause: Option<String>,
    pub last_code: Option<u16>,
    /// Share of the observed lifetime spent online, 0..=100, as of the publish; readers in
    /// this process refresh it from `uptime` ([`Status::uptime_now`]).
    pub uptime_pct: f64,
    /// The accumulators behind `uptime_pct` (`None` for a status rebuilt from the wire).
    pub uptime: Option<Uptime>,
    pub last_reconnect: Option<Duration>,
    pub liveness: Liveness,
    /// Newest last, bounded by the session's ring.
    pub timeline: Vec<TimelineEntry>,
    pub account: Account,
    pub backups: Backups,
    /// The WhatsApp Web version this session dials with ("2.3000.N"; empty before start).
    pub client_version: String,
    /// Clustered: the node that runs the session (set by the console and the cluster, never by
    /// the machine); `None` when wasp runs alone.
    pub owner: Option<String>,
    /// Set by the driver from the session's messenger.
    pub outbox: OutboxView,
    /// The proxy the session dials through, password hidden (`socks5://user:***@host:port`);
    /// `None` when it connects directly. Set by the driver.
    pub proxy: Option<String>,
}

impl Status {
    /// The uptime share at `now`: from the accumulators when this process has them, else
    /// the figure as published.
    pub fn uptime_now(&self, now: Instant) -> f64 {
        self.uptime
            .as_ref()
            .map_or(self.uptime_pct, |u| u.percent(now))
    }

    /// A fresh `stopped` status for a session that has not run yet.
    pub fn new(id: impl Into<String>, label: impl Into<String>, now: Instant) -> Self {
        Status {
            id: id.into(),
            label: label.into(),
            phase: Phase::Stopped,
            since: now,
            reason: String::new(),
            attempt: 0,
            max_attempts: 0,
            conflicts_1h: 0,
            disconnects_1h: 0,
            last_cause: None,
            last_code: None,
            uptime_pct: 0.0,
            uptime: None,
            last_reconnect: None,
            liveness: Liveness::default(),
            timeline: Vec::new(),
            account: Account::default(),
            backups: Backups::default(),
            client_version: String::new(),
            owner: None,
            outbox: OutboxView::default(),
            proxy: None,
        }
    }

    pub fn state(&self) -> StateName {
        self.phase.name()
    }

    /// When the next dial is due: the end of a backoff, or a failed session's next probe.
    pub fn retry_at(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Backoff { retry_at } => Some(*retry_at),
            Phase::Failed { probe_at } => *probe_at,
            _ => None,
        }
    }

    /// When a wait ends: a cooldown, or the logout wait before re-pairing.
    pub fn cooldown_until(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Cooldown { until } => Some(*until),
            Phase::LoggedOut { repair_after } => *repair_after,
            _ => None,
        }
    }

    pub fn online_since(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Online { since } => Some(*since),
            _ => None,
        }
    }

    /// The QR offered while pairing.
    pub fn qr(&self) -> Option<&QrView> {
        match &self.phase {
            Phase::Pairing { qr } => Some(qr),
            _ => None,
        }
    }
}
