//! `[probe]`: the optional end-to-end probe. Every `every`, each online session sends a probe
//! message through its outbox to `peer` (a configured session's id or a phone number) and
//! expects its delivery receipt within `probe_deadline` of writing it; a session whose probe
//! does not arrive is marked degraded and, with `reconnect_on_silence`, reconnected.

use std::time::Duration;

use super::error::ConfigError;
use super::read::{Problems, Table};

pub(super) const PROBE_KEYS: [&str; 4] =
    ["peer", "every", "probe_deadline", "reconnect_on_silence"];

/// Who the probes go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePeer {
    /// A configured session (its number once it is paired).
    Session(String),
    /// A phone number (digits, no '+').
    Number(String),
}

/// `[probe]`, when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    pub peer: ProbePeer,
    /// Time between one session's probes (default 10 min).
    pub every: Duration,
    /// How long after it was written a probe may take to be delivered (default 2 min).
    pub probe_deadline: Duration,
    /// Reconnect a session whose probe did not arrive (default false: only marked).
    pub reconnect_on_silence: bool,
}

impl ProbeConfig {
    pub const DEFAULT_EVERY: Duration = Duration::from_secs(600);
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
}

/// Reads `[probe]`; `sessions` are the configured ids (a peer that is not one must be a
/// phone number).
pub(super) fn read_probe(
    problems: &mut Problems,
    t: &Table<'_, '_>,
    sessions: &[&str],
) -> Option<ProbeConfig> {
    t.check_keys(problems, &PROBE_KEYS, |_| None);
    t.require(problems, "peer");
    let every = t
        .duration(problems, "every")
        .map_or(ProbeConfig::DEFAULT_EVERY, |(d, _)| d);
    let deadline = t.duration(problems, "probe_deadline");
    if let Some((d, span)) = &deadline
        && *d > every
    {
        problems.report(
            span,
            ConfigError::LongerThan {
                field: t.field("probe_deadline"),
                value: crate::config::format_duration(*d),
                other: "every in [probe]",
                other_value: crate::config::format_duration(every),
            },
        );
    }
    let reconnect_on_silence = t.bool(problems, "reconnect_on_silence").unwrap_or(false);
    let (text, span) = t.non_empty_string(problems, "peer")?;
    let text = text.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    let peer = if sessions.contains(&text) {
        ProbePeer::Session(text.to_string())
    } else if (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        ProbePeer::Number(digits.to_string())
    } else {
        problems.report(
            &span,
            ConfigError::BadProbePeer {
                field: t.field("peer"),
                found: text.to_string(),
            },
        );
        return None;
    };
    Some(ProbeConfig {
        peer,
        every,
        probe_deadline: deadline.map_or(ProbeConfig::DEFAULT_DEADLINE.min(every), |(d, _)| d),
        reconnect_on_silence,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use crate::config::{ProbeConfig, ProbePeer, parse};
    use std::time::Duration;

    const SESSIONS: &str = "[[session]]\nid = \"a\"\n[[session]]\nid = \"b\"\n";

    #[test]
    fn a_peer_is_a_session_or_a_number_and_defaults_fill_in() {
        let config = parse(&format!("{SESSIONS}[probe]\npeer = \"b\"\n"), "s.toml").unwrap();
        let probe = config.probe.unwrap();
        assert_eq!(probe.peer, ProbePeer::Session("b".into()));
        assert_eq!(probe.every, ProbeConfig::DEFAULT_EVERY);
        assert_eq!(probe.probe_deadline, ProbeConfig::DEFAULT_DEADLINE);
        assert!(!probe.reconnect_on_silence);
        let config = parse(
            &format!(
                "{SESSIONS}[probe]\npeer = \"+15550001111\"\nevery = \"30s\"\n\
                 probe_deadline = \"5s\"\nreconnect_on_silence = true\n"
            ),
            "s.toml",
        )
        .unwrap();
        let probe = config.probe.unwrap();
        assert_eq!(probe.peer, ProbePeer::Number("15550001111".into()));
        assert_eq!(
            (probe.every, probe.probe_deadline),
            (Duration::from_secs(30), Duration::from_secs(5))
        );
        assert!(probe.reconnect_on_silence);
    }

    #[test]
    fn bad_probes_name_the_field() {
        let err = parse(
            &format!(
                "{SESSIONS}[probe]\npeer = \"nobody\"\nevery = \"1m\"\nprobe_deadline = \"2m\"\n\
                 reconnect_on_silence = \"yes\"\n"
            ),
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("peer in [probe] must be a configured session id or a phone number"),
            "{err}"
        );
        assert!(err.contains("probe_deadline in [probe] (2m)"), "{err}");
        assert!(
            err.contains("reconnect_on_silence in [probe] must be true or false"),
            "{err}"
        );
        let err = parse(&format!("{SESSIONS}[probe]\nevery = \"1m\"\n"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("peer in [probe] is required"), "{err}");
    }
}
