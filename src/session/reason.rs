//! Why a session is in a waiting or stopped state: one enum per state, shown on screen and in
//! HTTP answers through `Display` (the sentences are part of the console's look).

use std::fmt;

use crate::wa::stanza::Cause;

/// Why a session is `stopped`.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// The session was never started (no autostart, not online before).
    NotStarted,
    /// The operator disconnected it.
    Operator,
    /// Every QR ref was shown and none was scanned.
    PairingTimedOut,
    /// The operator wiped the credentials.
    Wiped,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::NotStarted => "not started",
            StopReason::Operator => "stopped by the operator",
            StopReason::PairingTimedOut => "pairing timed out",
            StopReason::Wiped => "credentials wiped; press p to pair",
        })
    }
}

/// Why a session waits in `cooldown`.
#[derive(Debug, Clone, PartialEq)]
pub enum CooldownReason {
    /// Too many conflicts within the hour.
    Conflicts { in_last_hour: u32 },
    /// A 402 temporary ban of this many seconds.
    TempBan { secs: u64 },
}

impl fmt::Display for CooldownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CooldownReason::Conflicts { in_last_hour } => {
                write!(f, "{in_last_hour} conflicts in the last hour")
            }
            CooldownReason::TempBan { secs } => write!(f, "temporary ban for {secs}s"),
        }
    }
}

/// Why a session is `logged_out`.
#[derive(Debug, Clone, PartialEq)]
pub enum LogoutReason {
    /// The server removed the device (401).
    ByServer,
    /// The logout wait was cleared; pairing may start.
    ReadyToPair,
    /// Credentials were stored but none loads (the store's sentence).
    CredentialsLost(String),
}

impl fmt::Display for LogoutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogoutReason::ByServer => f.write_str("logged out by the server (device removed)"),
            LogoutReason::ReadyToPair => f.write_str("logged out; ready to pair again"),
            LogoutReason::CredentialsLost(why) => f.write_str(why),
        }
    }
}

/// Why a session gave up (`failed`).
#[derive(Debug, Clone, PartialEq)]
pub enum FailReason {
    /// 403: the account is locked.
    Locked,
    /// 406: the account is banned.
    Banned,
    /// 411: multi-device mismatch.
    Mismatch,
    /// 405: the server refuses our client version (`refused`, as dialled).
    ClientOutdated { refused: String },
    /// 409: the server refuses the device name (user agent).
    UserAgentRejected,
    /// The login payload cannot be built from the stored credentials.
    Payload(String),
    /// Too many reconnect attempts for the last cause.
    GaveUp { attempts: u32, cause: Cause },
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Locked => f.write_str("account locked; credentials kept"),
            FailReason::Banned => f.write_str("account banned; credentials kept"),
            FailReason::Mismatch => f.write_str("multi-device mismatch; credentials kept"),
            FailReason::ClientOutdated { refused } => write!(
                f,
                "the server refused client version {refused} as outdated (405): set a newer \
                 client_version in [server] and reload"
            ),
            FailReason::UserAgentRejected => f.write_str(
                "the server refused the device name (409): set another device_name in [server]",
            ),
            FailReason::Payload(why) => {
                write!(
                    f,
                    "cannot build the login payload ({why}); credentials kept"
                )
            }
            FailReason::GaveUp { attempts, cause } => {
                write!(f, "gave up after {attempts} attempts ({cause})")
            }
        }
    }
}
