//! `[messages]`: the outbox's send limits (rate, burst, jitter, the warm-up of newly paired
//! numbers), how long a queued message may wait, and how many messages are kept.

use std::time::Duration;

use toml::de::DeValue;

use super::duration::parse_duration;
use super::error::ConfigError;
use super::read::{Problems, Table, describe};

pub(super) const MESSAGES_KEYS: [&str; 6] = [
    "per_minute",
    "burst",
    "jitter",
    "warmup",
    "expire_after",
    "keep",
];

/// One warm-up step: while the pairing is younger than `younger_than`, at most `per_day`
/// messages go out in any 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmupStep {
    pub younger_than: Duration,
    pub per_day: u32,
}

/// `[messages]`, the same for every session (each session has its own budget).
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesConfig {
    /// Sends per minute when the queue is long (`per_minute`).
    pub per_minute: u32,
    /// Sends allowed back to back, and at most this many in any second (`burst`).
    pub burst: u32,
    /// Each wait grows by up to this fraction of the send interval (`jitter`, 0 to <1).
    pub jitter: f64,
    /// Day caps for young pairings, shortest age first (`warmup = ["1d:100", "7d:500"]`).
    pub warmup: Vec<WarmupStep>,
    /// A message still queued after this long fails as expired (`expire_after`).
    pub expire_after: Duration,
    /// Messages kept per session and direction (`keep`).
    pub keep: u32,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            per_minute: 20,
            burst: 5,
            jitter: 0.2,
            warmup: Vec::new(),
            expire_after: Duration::from_secs(24 * 3600),
            keep: 1000,
        }
    }
}

impl MessagesConfig {
    /// The day cap for a pairing `age` old, if a warm-up step applies.
    pub fn day_cap(&self, age: Duration) -> Option<u32> {
        self.warmup
            .iter()
            .find(|s| age < s.younger_than)
            .map(|s| s.per_day)
    }
}

/// One `"AGE:COUNT"` step, or why it is not one.
pub fn parse_warmup_step(text: &str) -> Result<WarmupStep, String> {
    let Some((age, count)) = text.split_once(':') else {
        return Err(format!(
            "\"{text}\" must be an age and a day cap such as \"7d:500\""
        ));
    };
    let younger_than = parse_duration(age.trim()).map_err(|e| format!("its age {e}"))?;
    let per_day = count
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("its day cap \"{count}\" must be a whole number above 0"))?;
    if younger_than.is_zero() {
        return Err(format!("its age in \"{text}\" must be longer than zero"));
    }
    Ok(WarmupStep {
        younger_than,
        per_day,
    })
}

pub(super) fn read_messages(problems: &mut Problems, t: &Table<'_, '_>) -> MessagesConfig {
    t.check_keys(problems, &MESSAGES_KEYS, |_| None);
    let mut messages = MessagesConfig::default();
    if let Some((n, _)) = t.count(problems, "per_minute", 1) {
        messages.per_minute = n;
    }
    if let Some((n, _)) = t.count(problems, "burst", 1) {
        messages.burst = n;
    }
    if let Some((f, _)) = t.fraction(problems, "jitter") {
        messages.jitter = f;
    }
    if let Some((d, _)) = t.duration(problems, "expire_after") {
        messages.expire_after = d;
    }
    if let Some((n, _)) = t.count(problems, "keep", 1) {
        messages.keep = n;
    }
    if let Some(value) = t.get("warmup") {
        let DeValue::Array(items) = value.get_ref() else {
            problems.report(
                &value.span(),
                ConfigError::WrongType {
                    field: t.field("warmup"),
                    expected: "an array of strings such as [\"1d:100\", \"7d:500\"]",
                    found: describe(value.get_ref()),
                },
            );
            return messages;
        };
        for item in items.iter() {
            let step = match item.get_ref().as_str() {
                Some(text) => parse_warmup_step(text),
                None => Err(format!("{} is not a string", describe(item.get_ref()))),
            };
            match step {
                Ok(step) => messages.warmup.push(step),
                Err(reason) => problems.report(
                    &item.span(),
                    ConfigError::BadWarmup {
                        field: t.field("warmup"),
                        reason,
                    },
                ),
            }
        }
        messages.warmup.sort_by_key(|s| s.younger_than);
    }
    messages
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn warmup_steps_read_and_the_youngest_applies() {
        let config = super::super::parse(
            "[messages]\nper_minute = 30\nburst = 2\nwarmup = [\"7d:500\", \"1d:100\"]\n",
            "s.toml",
        )
        .unwrap();
        let m = config.messages;
        assert_eq!((m.per_minute, m.burst, m.keep), (30, 2, 1000));
        let hour = Duration::from_secs(3600);
        assert_eq!(m.day_cap(hour), Some(100));
        assert_eq!(m.day_cap(48 * hour), Some(500));
        assert_eq!(m.day_cap(8 * 24 * hour), None);
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = super::super::parse(
            "[messages]\nper_minute = 0\nwarmup = [\"1d\", \"xd:5\", 3]\njitter = 2\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("per_minute in [messages] must be at least 1"),
            "{err}"
        );
        assert!(
            err.contains("warmup in [messages]") && err.contains("\"1d\""),
            "{err}"
        );
        assert!(err.contains("integer 3 is not a string"), "{err}");
        assert!(err.contains("jitter in [messages]"), "{err}");
        assert_eq!(
            parse_warmup_step("1d:0").unwrap_err(),
            "its day cap \"0\" must be a whole number above 0"
        );
    }
}
