//! One session's message counts over the last hour, in one-minute buckets (sent = acked by
//! the server, delivered, received), seeded from keys.db when the messenger starts and fed
//! as statuses change. Fixed memory: at most 60 buckets.

use std::collections::VecDeque;

use crate::store::tally::Counted;

/// The window the counts cover, in minutes.
const WINDOW_MINUTES: u64 = 60;
const MINUTE_MS: u64 = 60_000;

/// Counts per unix minute, oldest first.
#[derive(Debug, Default)]
pub struct Tally {
    minutes: VecDeque<(u64, [u32; 3])>,
}

impl Tally {
    /// Adds `n` of `what` at unix time `at_ms`.
    pub fn add(&mut self, what: Counted, at_ms: u64, n: u32) {
        let minute = at_ms / MINUTE_MS;
        let i = self.minutes.partition_point(|(m, _)| *m < minute);
        match self.minutes.get_mut(i) {
            Some((m, counts)) if *m == minute => {
                counts[what.index()] = counts[what.index()].saturating_add(n);
            }
            _ => {
                let mut counts = [0; 3];
                counts[what.index()] = n;
                self.minutes.insert(i, (minute, counts));
            }
        }
    }

    /// The counts of the last hour as of `now_ms` (sent, delivered, received); older buckets
    /// are dropped.
    pub fn totals(&mut self, now_ms: u64) -> [u32; 3] {
        let first = (now_ms / MINUTE_MS).saturating_sub(WINDOW_MINUTES - 1);
        while self.minutes.front().is_some_and(|(m, _)| *m < first) {
            self.minutes.pop_front();
        }
        let mut sum = [0u32; 3];
        for (_, counts) in &self.minutes {
            for (s, c) in sum.iter_mut().zip(counts) {
                *s = s.saturating_add(*c);
            }
        }
        sum
    }

    /// When the oldest bucket leaves the window (unix ms), if there is one.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.minutes
            .front()
            .map(|(m, _)| (m + WINDOW_MINUTES) * MINUTE_MS)
    }

    /// Where the window starts for a tally made at `now_ms` (what to read back from keys.db).
    pub fn window_start_ms(now_ms: u64) -> u64 {
        (now_ms / MINUTE_MS).saturating_sub(WINDOW_MINUTES - 1) * MINUTE_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_the_last_hour_and_age_out_by_the_minute() {
        let mut tally = Tally::default();
        let t0 = 1_000 * MINUTE_MS;
        tally.add(Counted::Sent, t0, 1);
        tally.add(Counted::Sent, t0 + 30_000, 1);
        tally.add(Counted::Delivered, t0 + 90_000, 1);
        // Out of order (a seed from keys.db after a live count) lands in its minute.
        tally.add(Counted::Received, t0 - MINUTE_MS, 3);
        assert_eq!(tally.totals(t0 + 120_000), [2, 1, 3]);
        assert_eq!(tally.next_expiry_ms(), Some(t0 + 59 * MINUTE_MS));
        // 59 minutes later the minute before t0 has left the window, t0's has not.
        assert_eq!(tally.totals(t0 + 59 * MINUTE_MS), [2, 1, 0]);
        assert_eq!(tally.totals(t0 + 60 * MINUTE_MS), [0, 1, 0]);
        assert_eq!(tally.totals(t0 + 61 * MINUTE_MS), [0, 0, 0]);
        assert_eq!(tally.next_expiry_ms(), None);
        assert_eq!(Tally::window_start_ms(t0 + 5), t0 - 59 * MINUTE_MS);
    }
}
