//! The send limits of one session (`[messages]`): a token bucket of `burst` refilled at
//! `per_minute`, never more than `burst` sends in any second, a day cap while the pairing is
//! young (warm-up), and a random extra wait (jitter) after each send. Pure: instants come in
//! as arguments, so a paused clock drives it in tests.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::MessagesConfig;

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// One session's send budget.
#[derive(Debug)]
pub struct Pace {
    config: MessagesConfig,
    tokens: f64,
    refilled: Instant,
    /// Send times of the last 24 hours (at most as many as the largest cap needs).
    recent: VecDeque<Instant>,
    /// The last send, and the random extra wait drawn after it (jitter).
    last: Option<Instant>,
    extra: Duration,
}

impl Pace {
    pub fn new(config: MessagesConfig, now: Instant) -> Self {
        Pace {
            tokens: f64::from(config.burst),
            refilled: now,
            recent: VecDeque::new(),
            last: None,
            extra: Duration::ZERO,
            config,
        }
    }

    /// New limits (config reload): the sends already counted still count, tokens above the
    /// new burst are dropped.
    pub fn set_config(&mut self, config: MessagesConfig, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.min(f64::from(config.burst));
        let interval = 60.0 / f64::from(config.per_minute);
        self.extra = self
            .extra
            .min(Duration::from_secs_f64(interval * config.jitter));
        self.config = config;
    }

    fn rate(&self) -> f64 {
        f64::from(self.config.per_minute) / 60.0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate()).min(f64::from(self.config.burst));
        self.refilled = now;
    }

    /// The earliest instant the next send may go out (`now` or later); `age` is how old the
    /// pairing is, when known.
    pub fn ready_at(&mut self, now: Instant, age: Option<Duration>) -> Instant {
        self.refill(now);
        let mut at = now;
        if self.tokens < 1.0 {
            let wait = (1.0 - self.tokens) / self.rate();
            at = now + Duration::from_secs_f64(wait) + self.extra;
        } else if let Some(last) = self.last {
            at = at.max(last + self.extra);
        }
        let burst = self.config.burst as usize;
        if self.recent.len() >= burst {
            at = at.max(self.recent[self.recent.len() - burst] + SECOND);
        }
        if let Some(cap) = age.and_then(|a| self.config.day_cap(a)) {
            let cap = cap as usize;
            if self.recent.len() >= cap {
                at = at.max(self.recent[self.recent.len() - cap] + DAY);
            }
        }
        at
    }

    /// Counts a send at `now`; `draw` in [0, 1) picks the jitter before the next one.
    pub fn record(&mut self, now: Instant, draw: f64) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
        self.recent.push_back(now);
        let longest = self
            .config
            .warmup
            .iter()
            .map(|s| s.per_day as usize)
            .max()
            .unwrap_or(0)
            .max(self.config.burst as usize);
        while self.recent.len() > longest
            || self
                .recent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= DAY)
        {
            self.recent.pop_front();
        }
        let interval = 60.0 / f64::from(self.config.per_minute);
        let extra = interval * self.config.jitter * draw.clamp(0.0, 1.0);
        self.last = Some(now);
        self.extra = Duration::from_secs_f64(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WarmupStep;

    fn config(per_minute: u32, burst: u32) -> MessagesConfig {
        MessagesConfig {
            per_minute,
            burst,
            jitter: 0.0,
            ..MessagesConfig::default()
        }
    }

    /// Sends `n` as fast as the pace allows from `start`; answers the send times.
    fn drain(pace: &mut Pace, start: Instant, n: usize, age: Option<Duration>) -> Vec<Instant> {
        let mut now = start;
        let mut times = Vec::new();
        for i in 0..n {
            now = pace.ready_at(now, age);
            pace.record(now, (i % 7) as f64 / 7.0);
            times.push(now);
        }
        times
    }

    /// The figure on a paused clock: 100 queued at 20 a minute (burst 5, jitter 0.2)
    /// go out over about five minutes, never more than 5 in any second.
    #[tokio::test(start_paused = true)]
    async fn a_hundred_at_twenty_a_minute_take_about_five_minutes() {
        let start = Instant::now();
        let mut pace = Pace::new(
            MessagesConfig {
                per_minute: 20,
                burst: 5,
                jitter: 0.2,
                ..MessagesConfig::default()
            },
            start,
        );
        let mut times = Vec::new();
        for _ in 0..100 {
            let at = pace.ready_at(Instant::now(), None);
            tokio::time::sleep_until(at).await;
            pace.record(Instant::now(), rand::random::<f64>());
            times.push(Instant::now());
        }
        let took = times[99] - start;
        assert!(
            took >= Duration::from_secs(280) && took <= Duration::from_secs(345),
            "{took:?}"
        );
        for (i, t) in times.iter().enumerate() {
            let in_second = times[i..].iter().filter(|u| **u < *t + SECOND).count();
            assert!(
                in_second <= 5,
                "{in_second} sends within a second of send {i}"
            );
        }
    }

    #[test]
    fn a_fast_rate_still_keeps_the_burst_per_second() {
        let start = Instant::now();
        let mut pace = Pace::new(config(600, 3), start);
        let times = drain(&mut pace, start, 60, None);
        for (i, t) in times.iter().enumerate() {
            let in_second = times[i..].iter().filter(|u| **u < *t + SECOND).count();
            assert!(
                in_second <= 3,
                "{in_second} sends within a second of send {i}"
            );
        }
    }

    #[test]
    fn the_warmup_caps_a_day() {
        let start = Instant::now();
        let mut c = config(6000, 100);
        c.warmup = vec![WarmupStep {
            younger_than: DAY,
            per_day: 10,
        }];
        let mut pace = Pace::new(c, start);
        let times = drain(&mut pace, start, 11, Some(Duration::from_secs(60)));
        assert!(times[9] < start + Duration::from_secs(60));
        assert!(times[10] >= times[0] + DAY, "the eleventh waits a day");
        // An older pairing has no cap.
        let mut pace = Pace::new(config(6000, 100), start);
        let times = drain(&mut pace, start, 11, Some(2 * DAY));
        assert!(times[10] < start + Duration::from_secs(60));
    }
}
