//! The disconnect policy as data: every number of SPEC.md's table, loaded from config
//! (globally and per session). The decision logic that reads it lives in `machine.rs`.

use std::time::Duration;

/// What to do with credentials when the server logs a session out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLogout {
    /// Back up, then remove the key material (default).
    Wipe,
    /// Keep the credentials as they are.
    Keep,
}

/// Every tunable of a session's life. `Policy::default()` is SPEC.md's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub keepalive_interval_min: Duration,
    pub keepalive_interval_max: Duration,
    pub keepalive_deadline: Duration,
    pub dead_after: Duration,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Fraction in [0, 1): each delay is multiplied by a factor in [1 - j, 1 + j].
    pub backoff_jitter: f64,
    pub backoff_reset_after: Duration,
    pub max_attempts_network: u32,
    pub max_attempts_server: u32,
    pub failed_probe_interval: Duration,
    pub conflict_auto_retries: u32,
    pub conflict_cooldown: Duration,
    pub on_logout: OnLogout,
    pub logout_cooldown: Duration,
    pub backup_interval: Duration,
    pub backup_stable_after: Duration,
    pub backups_kept: u32,
}

impl Default for Policy {
    fn default() -> Self {
        let s = Duration::from_secs;
        Policy {
            keepalive_interval_min: s(20),
            keepalive_interval_max: s(30),
            keepalive_deadline: s(10),
            dead_after: s(60),
            connect_timeout: s(20),
            query_timeout: s(60),
            backoff_base: s(1),
            backoff_cap: s(60),
            backoff_jitter: 0.2,
            backoff_reset_after: s(30),
            max_attempts_network: 20,
            max_attempts_server: 10,
            failed_probe_interval: s(300),
            conflict_auto_retries: 0,
            conflict_cooldown: s(60),
            on_logout: OnLogout::Wipe,
            logout_cooldown: s(300),
            backup_interval: s(1800),
            backup_stable_after: s(300),
            backups_kept: 5,
        }
    }
}
