//! The policy keys of sessions.toml: read from `[policy]` over the defaults, then from each
//! `[[session]]` over the global policy, with the checks that involve two keys.

use std::time::Duration;

use crate::session::policy::{OnLogout, Policy};

use super::duration::format_duration;
use super::error::ConfigError;
use super::read::{Problems, Span, Table};

/// Every policy key, in the order of SPEC.md.
pub(super) const POLICY_KEYS: [&str; 20] = [
    "keepalive_interval_min",
    "keepalive_interval_max",
    "keepalive_deadline",
    "dead_after",
    "connect_timeout",
    "query_timeout",
    "backoff_base",
    "backoff_cap",
    "backoff_jitter",
    "backoff_reset_after",
    "max_attempts_network",
    "max_attempts_server",
    "failed_probe_interval",
    "conflict_auto_retries",
    "conflict_cooldown",
    "on_logout",
    "logout_cooldown",
    "backup_interval",
    "backup_stable_after",
    "backups_kept",
];

const ON_LOGOUT: [(&str, OnLogout); 2] = [("wipe", OnLogout::Wipe), ("keep", OnLogout::Keep)];

fn duration_slot<'p>(policy: &'p mut Policy, key: &str) -> Option<&'p mut Duration> {
    Some(match key {
        "keepalive_interval_min" => &mut policy.keepalive_interval_min,
        "keepalive_interval_max" => &mut policy.keepalive_interval_max,
        "keepalive_deadline" => &mut policy.keepalive_deadline,
        "dead_after" => &mut policy.dead_after,
        "connect_timeout" => &mut policy.connect_timeout,
        "query_timeout" => &mut policy.query_timeout,
        "backoff_base" => &mut policy.backoff_base,
        "backoff_cap" => &mut policy.backoff_cap,
        "backoff_reset_after" => &mut policy.backoff_reset_after,
        "failed_probe_interval" => &mut policy.failed_probe_interval,
        "conflict_cooldown" => &mut policy.conflict_cooldown,
        "logout_cooldown" => &mut policy.logout_cooldown,
        "backup_interval" => &mut policy.backup_interval,
        "backup_stable_after" => &mut policy.backup_stable_after,
        _ => return None,
    })
}

/// A count's slot and the smallest value that makes sense for it.
fn count_slot<'p>(policy: &'p mut Policy, key: &str) -> Option<(&'p mut u32, u32)> {
    Some(match key {
        "max_attempts_network" => (&mut policy.max_attempts_network, 1),
        "max_attempts_server" => (&mut policy.max_attempts_server, 1),
        "conflict_auto_retries" => (&mut policy.conflict_auto_retries, 0),
        "backups_kept" => (&mut policy.backups_kept, 1),
        _ => return None,
    })
}

/// Reads the policy keys present in `table` on top of `base`, reporting bad values; a bad
/// value leaves the base value in place so later checks still run.
pub(super) fn overlay(problems: &mut Problems, table: &Table<'_, '_>, base: &Policy) -> Policy {
    let mut policy = base.clone();
    let mut set_here: Vec<(&'static str, Span)> = Vec::new();
    for key in POLICY_KEYS {
        if table.get(key).is_none() {
            continue;
        }
        let span = if let Some(slot) = duration_slot(&mut policy, key) {
            table.duration(problems, key).map(|(value, span)| {
                *slot = value;
                span
            })
        } else if let Some((slot, min)) = count_slot(&mut policy, key) {
            table.count(problems, key, min).map(|(value, span)| {
                *slot = value;
                span
            })
        } else if key == "backoff_jitter" {
            table.fraction(problems, key).map(|(value, span)| {
                policy.backoff_jitter = value;
                span
            })
        } else {
            // The only key left is on_logout.
            table
                .choice(problems, key, &ON_LOGOUT, "\"wipe\" or \"keep\"")
                .map(|(value, span)| {
                    policy.on_logout = value;
                    span
                })
        };
        if let Some(span) = span {
            set_here.push((key, span));
        }
    }
    let order = |low: &'static str, high: &'static str, values: (Duration, Duration)| Order {
        low,
        high,
        values,
    };
    let checks = [
        order(
            "backoff_base",
            "backoff_cap",
            (policy.backoff_base, policy.backoff_cap),
        ),
        order(
            "keepalive_interval_min",
            "keepalive_interval_max",
            (policy.keepalive_interval_min, policy.keepalive_interval_max),
        ),
    ];
    for check in checks {
        check.report(problems, table, &set_here);
    }
    policy
}

/// Two durations where `high` must not be below `low`.
struct Order {
    low: &'static str,
    high: &'static str,
    values: (Duration, Duration),
}

impl Order {
    /// Reports a reversed pair at the key this table set (the high one if both), and says
    /// nothing when this table set neither (the level that did has reported it).
    fn report(&self, problems: &mut Problems, table: &Table<'_, '_>, set_here: &[(&str, Span)]) {
        let (low, high) = self.values;
        if high >= low {
            return;
        }
        let span_of = |key: &str| set_here.iter().find(|(k, _)| *k == key).map(|(_, s)| s);
        if let Some(span) = span_of(self.high) {
            let error = ConfigError::ShorterThan {
                field: table.field(self.high),
                value: format_duration(high),
                other: self.low,
                other_value: format_duration(low),
            };
            problems.report(span, error);
        } else if let Some(span) = span_of(self.low) {
            let error = ConfigError::LongerThan {
                field: table.field(self.low),
                value: format_duration(low),
                other: self.high,
                other_value: format_duration(high),
            };
            problems.report(span, error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_key_has_exactly_one_slot() {
        for key in POLICY_KEYS {
            let mut policy = Policy::default();
            let slots = usize::from(duration_slot(&mut policy, key).is_some())
                + usize::from(count_slot(&mut policy, key).is_some())
                + usize::from(key == "backoff_jitter" || key == "on_logout");
            assert_eq!(slots, 1, "{key}");
        }
    }
}
