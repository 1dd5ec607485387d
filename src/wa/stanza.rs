//! Typed stanzas: how a connection ends (PROTOCOL.md section 7) as a `Cause` with its code.

use std::fmt;

/// Why a connection ended, with the numeric code clients report for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// 440: another client logged in with these credentials (`conflict type="replaced"`).
    Conflict,
    /// 401: logged out or device removed.
    LoggedOut,
    /// 515: restart required (normal right after pairing).
    RestartRequired,
    /// 500 or 503 (or another server code): the server failed or is unavailable.
    Server(u16),
    /// 403: account locked.
    Locked,
    /// 406: account banned.
    Banned,
    /// 402: temporary ban, with the expiry in seconds from now when the server gave one.
    TempBanned { expires_s: Option<u64> },
    /// 405: client version outdated.
    ClientOutdated,
    /// 411: multi-device mismatch (`<ib><downgrade_webclient/>`).
    Mismatch,
    /// 428: the stream ended (`xmlstreamend`) or the socket closed.
    Closed,
    /// 408: keepalive unanswered, connect or query timeout, or a network error.
    TimedOut(String),
    /// Malformed bytes or an impossible message from the server (reported as 500).
    Protocol(String),
    /// A failure reason this client does not know.
    UnknownFailure(u16),
}

impl Cause {
    /// The numeric code clients report for this cause.
    pub fn code(&self) -> u16 {
        match self {
            Cause::Conflict => 440,
            Cause::LoggedOut => 401,
            Cause::RestartRequired => 515,
            Cause::Server(code) => *code,
            Cause::Locked => 403,
            Cause::Banned => 406,
            Cause::TempBanned { .. } => 402,
            Cause::ClientOutdated => 405,
            Cause::Mismatch => 411,
            Cause::Closed => 428,
            Cause::TimedOut(_) => 408,
            Cause::Protocol(_) => 500,
            Cause::UnknownFailure(code) => *code,
        }
    }

    /// A short lower-case name for tables, metrics labels and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Cause::Conflict => "conflict",
            Cause::LoggedOut => "logged_out",
            Cause::RestartRequired => "restart_required",
            Cause::Server(_) => "server_error",
            Cause::Locked => "locked",
            Cause::Banned => "banned",
            Cause::TempBanned { .. } => "temp_banned",
            Cause::ClientOutdated => "client_outdated",
            Cause::Mismatch => "mismatch",
            Cause::Closed => "closed",
            Cause::TimedOut(_) => "timed_out",
            Cause::Protocol(_) => "protocol_error",
            Cause::UnknownFailure(_) => "failure",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::TimedOut(why) | Cause::Protocol(why) => {
                write!(f, "{} ({}): {why}", self.name(), self.code())
            }
            Cause::TempBanned { expires_s: Some(s) } => write!(f, "temp_banned (402) for {s}s"),
            _ => write!(f, "{} ({})", self.name(), self.code()),
        }
    }
}
