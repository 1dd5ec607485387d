//! The one timer mechanism: the machine arms effect timers (`Effect::ScheduleTimer`, each with
//! a generation) and whoever runs the machine keeps them in a `TimerQueue` and feeds each back
//! as `Event::TimerFired` when due. The machine ignores a fired timer whose generation is no
//! longer armed, so the queue never needs cancelling. The driver and the test rigs share it.

use std::collections::BTreeMap;
use std::time::Instant;

use super::effect::Effect;
use super::event::{TimerId, TimerKind};

/// Scheduled timers, earliest first (ties in scheduling order).
#[derive(Debug, Default)]
pub struct TimerQueue {
    queue: BTreeMap<(Instant, u64), TimerId>,
    seq: u64,
}

impl TimerQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `timer` at `at`.
    pub fn schedule(&mut self, timer: TimerId, at: Instant) {
        self.seq += 1;
        self.queue.insert((at, self.seq), timer);
    }

    /// Schedules every `ScheduleTimer` among `effects`.
    pub fn schedule_all(&mut self, effects: &[Effect]) {
        for effect in effects {
            if let Effect::ScheduleTimer { timer, at } = effect {
                self.schedule(*timer, *at);
            }
        }
    }

    /// When the earliest timer is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerId> {
        if self.next_at()? > now {
            return None;
        }
        self.queue.pop_first().map(|(_, timer)| timer)
    }

    /// The newest scheduled timer of `kind` (highest generation) and when it is due.
    pub fn newest(&self, kind: TimerKind) -> Option<(Instant, TimerId)> {
        self.queue
            .iter()
            .filter(|(_, t)| t.kind == kind)
            .max_by_key(|(_, t)| t.generation)
            .map(|((at, _), t)| (*at, *t))
    }

    /// Every scheduled timer, earliest first (stale ones included).
    pub fn iter(&self) -> impl Iterator<Item = (Instant, TimerId)> + '_ {
        self.queue.iter().map(|((at, _), t)| (*at, *t))
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(kind: TimerKind, generation: u64) -> TimerId {
        TimerId { kind, generation }
    }

    #[test]
    fn pops_in_time_order_only_when_due() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.schedule(id(TimerKind::Ping, 2), t0 + Duration::from_secs(2));
        q.schedule(id(TimerKind::Dead, 1), t0 + Duration::from_secs(1));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.next_at(), Some(t0 + Duration::from_secs(1)));
        let late = t0 + Duration::from_secs(5);
        assert_eq!(q.pop_due(late), Some(id(TimerKind::Dead, 1)));
        assert_eq!(q.pop_due(late), Some(id(TimerKind::Ping, 2)));
        assert!(q.is_empty());
    }

    #[test]
    fn newest_is_the_highest_generation_of_a_kind() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.schedule(id(TimerKind::Retry, 5), t0 + Duration::from_secs(1));
        q.schedule(id(TimerKind::Retry, 9), t0);
        q.schedule(id(TimerKind::Ping, 10), t0);
        assert_eq!(
            q.newest(TimerKind::Retry),
            Some((t0, id(TimerKind::Retry, 9)))
        );
        assert_eq!(q.newest(TimerKind::Backup), None);
    }
}
