//! The process's file-descriptor limit: raising the soft `RLIMIT_NOFILE` to the hard limit at
//! start, and the budget a config needs (one per session, one for all the session locks, the
//! HTTP endpoint's connection cap, a fixed allowance for files), so a pool that cannot fit is refused with one sentence
//! instead of failing dials with "Too many open files" later.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::Config;

/// Descriptors kept for everything that is not a session or an HTTP connection: stdio, log
/// files, the runtime's own (epoll, wakers), credential writes and backups in flight.
pub const FILES_ALLOWANCE: u64 = 64;
/// Descriptors each session may hold at once: its socket. On Linux its lock is a byte of the
/// one shared lock file ([`SESSION_LOCKS`]); elsewhere it keeps its own lock file open.
#[cfg(target_os = "linux")]
pub const PER_SESSION: u64 = 1;
#[cfg(not(target_os = "linux"))]
pub const PER_SESSION: u64 = 2;
/// Descriptors for all the session locks together: the store's one `sessions.lock` on Linux.
#[cfg(target_os = "linux")]
pub const SESSION_LOCKS: u64 = 1;
#[cfg(not(target_os = "linux"))]
pub const SESSION_LOCKS: u64 = 0;
/// What "raise to the hard limit" means when the hard limit is unlimited (Linux refuses a
/// soft limit above `fs.nr_open`, 1,048,576 by default).
const UNLIMITED_TARGET: u64 = 1 << 20;

/// Why the limit could not be read or the config does not fit in it.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    #[error("could not read the open-files limit: {0}")]
    Read(#[source] nix::Error),
    #[error(
        "{sessions} sessions need about {needed} file descriptors ({PER_SESSION} per session, {SESSION_LOCKS} for the session locks, {http} for HTTP connections, {FILES_ALLOWANCE} for files) but the open-files limit is {limit}: raise it (ulimit -n, or LimitNOFILE= in the systemd unit) or configure fewer sessions"
    )]
    DoesNotFit {
        sessions: u64,
        needed: u64,
        http: u64,
        limit: u64,
    },
}

/// The soft and hard `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// The current limits.
pub fn current() -> Result<Limit, DescriptorError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(DescriptorError::Read)?;
    Ok(Limit { soft, hard })
}

/// Raises the soft limit to the hard one (or to 2^20 when the hard one is unlimited) and
/// returns the limits in force afterwards. A refusal leaves the soft limit as it was.
pub fn raise() -> Result<Limit, DescriptorError> {
    let before = current()?;
    let target = before.hard.min(UNLIMITED_TARGET).max(before.soft);
    if target > before.soft
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, target, before.hard)
    {
        tracing::warn!(error = %e, soft = before.soft, "could not raise the open-files limit");
    }
    current()
}

/// What a config needs, counted the way `check` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub sessions: u64,
    /// The endpoint's open share plus its reserve (0 without an endpoint).
    pub http: u64,
}

impl Budget {
    /// The configured sessions, and the endpoint's cap when `http` is on.
    pub fn of(config: &Config, http: bool) -> Budget {
        let http = if http {
            config.http.clone().unwrap_or_default().connection_budget()
        } else {
            0
        };
        Budget {
            sessions: config.sessions.len() as u64,
            http,
        }
    }

    pub fn needed(&self) -> u64 {
        self.sessions * PER_SESSION + SESSION_LOCKS + self.http + FILES_ALLOWANCE
    }

    /// How many sessions fit in `limit` beside the session locks, the HTTP share and the files.
    pub fn sessions_that_fit(&self, limit: u64) -> u64 {
        limit.saturating_sub(SESSION_LOCKS + self.http + FILES_ALLOWANCE) / PER_SESSION
    }

    /// Refuses a budget that does not fit in `limit`.
    pub fn check(&self, limit: u64) -> Result<(), DescriptorError> {
        if self.needed() <= limit {
            return Ok(());
        }
        Err(DescriptorError::DoesNotFit {
            sessions: self.sessions,
            needed: self.needed(),
            http: self.http,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HttpConfig, SessionConfig};
    use crate::session::policy::Policy;

    fn config(sessions: usize, http: bool) -> Config {
        Config {
            http: http.then(HttpConfig::default),
            sessions: (0..sessions)
                .map(|i| SessionConfig::new(format!("s{i}"), Policy::default()))
                .collect(),
            ..Config::default()
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn two_thousand_sessions_fit_in_65536_but_not_in_1024() {
        let budget = Budget::of(&config(2000, true), true);
        assert_eq!(budget.needed(), 2000 + 1 + 256 + 16 + 64);
        assert!(budget.check(65_536).is_ok());
        let error = budget.check(1024).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "2000 sessions need about 2337 file descriptors (1 per session, 1 for the session locks, 272 for HTTP connections, 64 for files)"
            ),
            "{error}"
        );
        assert!(error.contains("limit is 1024"), "{error}");
        assert!(!error.contains(". "), "one sentence: {error}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn ten_thousand_sessions_fit_under_20000_with_the_endpoint() {
        let budget = Budget::of(&config(10_000, true), true);
        assert_eq!(budget.needed(), 10_337);
        assert!(budget.check(20_000).is_ok());
        assert!(budget.sessions_that_fit(20_000) >= 10_000);
    }

    #[test]
    fn a_small_pool_fits_in_1024_with_the_endpoint() {
        let budget = Budget::of(&config(300, true), true);
        assert!(budget.check(1024).is_ok());
        assert_eq!(
            budget.sessions_that_fit(1024),
            (1024 - SESSION_LOCKS - 256 - 16 - 64) / PER_SESSION
        );
        assert_eq!(Budget::of(&config(300, true), false).http, 0);
        // The count `check` refuses past is the count `sessions_that_fit` gives.
        let fit = budget.sessions_that_fit(1024);
        let at = |sessions| Budget { sessions, ..budget };
        assert!(at(fit).check(1024).is_ok());
        assert!(at(fit + 1).check(1024).is_err());
    }

    #[test]
    fn raising_never_lowers_the_soft_limit() {
        let before = current().unwrap();
        let after = raise().unwrap();
        assert!(after.soft >= before.soft);
        assert_eq!(after.hard, before.hard);
    }
}
