//! The session's bounded record of transitions and its rolling counters.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::status::TimelineEntry;

/// How many transitions a session keeps.
pub const TIMELINE_LEN: usize = 64;
const HOUR: Duration = Duration::from_secs(3600);

/// A bounded ring of timeline entries, newest last.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    entries: VecDeque<TimelineEntry>,
}

impl Timeline {
    pub fn push(&mut self, entry: TimelineEntry) {
        if self.entries.len() == TIMELINE_LEN {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn to_vec(&self) -> Vec<TimelineEntry> {
        self.entries.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Instants of events in the last hour.
#[derive(Debug, Default, Clone)]
pub struct HourWindow {
    at: VecDeque<Instant>,
}

impl HourWindow {
    pub fn record(&mut self, now: Instant) {
        self.prune(now);
        self.at.push_back(now);
    }

    pub fn count(&self, now: Instant) -> u32 {
        let n = self
            .at
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < HOUR)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn prune(&mut self, now: Instant) {
        while self
            .at
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= HOUR)
        {
            self.at.pop_front();
        }
    }
}

/// Time spent online against time observed. Kept in every published status so a reader
/// computes the share at the time it reads ([`Uptime::percent`]), not at the last change.
#[derive(Debug, Clone, PartialEq)]
pub struct Uptime {
    observed_from: Instant,
    online_total: Duration,
    online_since: Option<Instant>,
}

impl Uptime {
    pub fn new(now: Instant) -> Self {
        Uptime {
            observed_from: now,
            online_total: Duration::ZERO,
            online_since: None,
        }
    }

    pub fn online(&mut self, now: Instant) {
        if self.online_since.is_none() {
            self.online_since = Some(now);
        }
    }

    pub fn offline(&mut self, now: Instant) {
        if let Some(since) = self.online_since.take() {
            self.online_total += now.saturating_duration_since(since);
        }
    }

    /// A stall detected now: online time ends at `last_alive`, the last sign of life (never
    /// before the current online stretch began), so the silence counts as down.
    pub fn stalled(&mut self, last_alive: Instant) {
        if let Some(since) = self.online_since.take() {
            self.online_total += last_alive.saturating_duration_since(since);
        }
    }

    /// Percentage of the observed time spent online, 0..=100.
    pub fn percent(&self, now: Instant) -> f64 {
        let observed = now.saturating_duration_since(self.observed_from);
        if observed.is_zero() {
            return if self.online_since.is_some() {
                100.0
            } else {
                0.0
            };
        }
        let current = self
            .online_since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        ((self.online_total + current).as_secs_f64() / observed.as_secs_f64() * 100.0).min(100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::status::StateName;

    #[test]
    fn ring_keeps_the_newest() {
        let now = Instant::now();
        let mut t = Timeline::default();
        for i in 0..100u16 {
            t.push(TimelineEntry {
                at: now,
                state: StateName::Online,
                cause: String::new(),
                code: Some(i),
                detail: String::new(),
            });
        }
        let v = t.to_vec();
        assert_eq!(v.len(), TIMELINE_LEN);
        assert_eq!(v.last().and_then(|e| e.code), Some(99));
        assert_eq!(v.first().and_then(|e| e.code), Some(36));
    }

    #[test]
    fn hour_window_forgets_old_events() {
        let t0 = Instant::now();
        let mut w = HourWindow::default();
        w.record(t0);
        w.record(t0 + Duration::from_secs(1800));
        assert_eq!(w.count(t0 + Duration::from_secs(1801)), 2);
        assert_eq!(w.count(t0 + Duration::from_secs(3601)), 1);
    }

    #[test]
    fn uptime_is_the_online_share() {
        let t0 = Instant::now();
        let mut u = Uptime::new(t0);
        u.online(t0 + Duration::from_secs(10));
        u.offline(t0 + Duration::from_secs(40));
        let pct = u.percent(t0 + Duration::from_secs(60));
        assert!((pct - 50.0).abs() < 1e-9, "{pct}");
    }
}
