//! The global connect rate limit: a token bucket shared by every dial in the process
//! (default 5 connects/s, burst 10), so an outage is followed by a spread of reconnects
//! rather than a storm; and the cap on handshakes running at once (`handshakes_in_flight`,
//! default 16), so that when the rate is high (a large burst, or the limit raised) dials
//! complete in turn instead of thousands sharing the CPU and all finishing late together,
//! or timing out together.
//!
//! Kept as a theoretical arrival time (GCRA): the bucket is full when `tat` is at or before
//! now, and each grant moves `tat` one interval on. A dial that had to wait is granted on
//! that grid, not at the instant its timer happened to fire, so timer lateness (tokio sleeps
//! in whole milliseconds) is not lost: a plain bucket capped at one token lost it on every
//! grant and ran a 200/s limit at about 165/s. A sliding one-second count of grants still
//! caps any second at `rate + burst - 1`, so catching up after a late timer never exceeds
//! the limit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    /// When the next grant is due on the rate's grid; a full bucket has it `burst - 1`
    /// intervals (or more) in the past.
    tat: Instant,
    /// When the grants of the last second were made (oldest first).
    recent: VecDeque<Instant>,
}

/// A cloneable handle on one token bucket.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
    granted: AtomicU64,
    waited: AtomicU64,
    /// Dials holding or waiting for the bucket's lock.
    queued: AtomicUsize,
    /// The most grants within any one second (a window closed at its end, open at its start).
    peak: AtomicU64,
    /// Slots for dials between their TCP connect and the end of their handshake.
    in_flight: Arc<Semaphore>,
    slots: usize,
}

/// A dial's place among the handshakes in flight; dropping it lets the next dial start.
#[derive(Debug)]
pub struct DialSlot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl RateLimiter {
    /// A limiter that grants `per_second` tokens a second, holding at most `burst`.
    /// Zero values are raised to 1 (config validation refuses them earlier).
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self::with_in_flight(per_second, burst, Semaphore::MAX_PERMITS as u32)
    }

    /// As `new`, with at most `in_flight` dials between their connect and the end of their
    /// handshake at any time (`acquire_dial`).
    pub fn with_in_flight(per_second: u32, burst: u32, in_flight: u32) -> Self {
        let in_flight = (in_flight.max(1) as usize).min(Semaphore::MAX_PERMITS);
        let per_second = f64::from(per_second.max(1));
        let burst = f64::from(burst.max(1));
        RateLimiter {
            inner: Arc::new(Inner {
                per_second,
                burst,
                bucket: Mutex::new(Bucket {
                    tat: Instant::now(),
                    recent: VecDeque::new(),
                }),
                granted: AtomicU64::new(0),
                waited: AtomicU64::new(0),
                queued: AtomicUsize::new(0),
                peak: AtomicU64::new(0),
                in_flight: Arc::new(Semaphore::new(in_flight)),
                slots: in_flight,
            }),
        }
    }

    /// Waits for a handshake slot, then for a token (so a dial waiting for a slot takes no
    /// token); returns the slot, to hold until the handshake ends, and whether it had to wait
    /// for the token. Cancel-safe like `acquire`.
    pub async fn acquire_dial(&self) -> (DialSlot, bool) {
        let slot = self.inner.in_flight.clone().acquire_owned().await.ok();
        let waited = self.acquire().await;
        (DialSlot(slot), waited)
    }

    /// Handshakes in flight now (slots taken).
    pub fn in_flight(&self) -> usize {
        self.inner.slots - self.inner.in_flight.available_permits()
    }

    /// Waits until a connect may start; returns true when it had to wait for a token.
    /// Cancel-safe: a cancelled wait takes no token.
    ///
    /// Waiters queue on the bucket's lock (tokio's mutex is first come, first served) and
    /// only the one at the head sleeps for the next token, holding the lock: a grant wakes
    /// one task, not every waiter. (Releasing the lock to sleep made every waiter wake at
    /// each token and race for it: with 2,000 sessions queued, a storm at 200/s granted only
    /// about 160 a second.)
    pub async fn acquire(&self) -> bool {
        let interval = Duration::from_secs_f64(1.0 / self.inner.per_second);
        // How far ahead of now `tat` may run and still grant: burst - 1 intervals.
        let tolerance = interval.mul_f64(self.inner.burst - 1.0);
        let most_in_a_second = (self.inner.per_second + self.inner.burst - 1.0) as usize;
        // A dial that found others ahead of it is granted on the grid they left; only one
        // that found the limiter idle may move `tat` up to now.
        let behind = self.inner.queued.fetch_add(1, Ordering::SeqCst) > 0;
        let _queued = Queued(&self.inner.queued);
        let mut waited = false;
        let mut bucket = self.inner.bucket.lock().await;
        loop {
            let now = Instant::now();
            while bucket
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                bucket.recent.pop_front();
            }
            // An idle limiter refills up to the burst, no further.
            if !waited && !behind && bucket.tat < now {
                bucket.tat = now;
            }
            let due = bucket.tat.checked_sub(tolerance).unwrap_or(now);
            let second_full = bucket.recent.len() >= most_in_a_second;
            if due <= now && !second_full {
                bucket.tat += interval;
                self.inner.granted.fetch_add(1, Ordering::Relaxed);
                bucket.recent.push_back(now);
                let in_second = bucket.recent.len() as u64;
                self.inner.peak.fetch_max(in_second, Ordering::Relaxed);
                return waited;
            }
            let mut until = due;
            if second_full && let Some(oldest) = bucket.recent.front() {
                until = until.max(*oldest + Duration::from_secs(1));
            }
            if !waited {
                self.inner.waited.fetch_add(1, Ordering::Relaxed);
                waited = true;
            }
            tokio::time::sleep_until(until).await;
        }
    }

    /// Connects granted so far.
    pub fn granted(&self) -> u64 {
        self.inner.granted.load(Ordering::Relaxed)
    }

    /// The most connects granted within any one second so far.
    pub fn peak_per_second(&self) -> u64 {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// Times a connect had to wait for a token (the `connects rate-limited` metric).
    pub fn waited(&self) -> u64 {
        self.inner.waited.load(Ordering::Relaxed)
    }
}

/// Counts one dial at the limiter for as long as it holds or waits for the lock.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let limiter = RateLimiter::new(5, 10);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(!limiter.acquire().await);
        }
        // The burst is free: no virtual time passed.
        assert_eq!(Instant::now(), start);
        for _ in 0..5 {
            assert!(limiter.acquire().await);
        }
        // Five more at 5/s need one virtual second (paused clock: exact, not timed).
        let elapsed = Instant::now() - start;
        assert!(elapsed >= Duration::from_millis(999), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(1001), "{elapsed:?}");
        assert_eq!(limiter.granted(), 15);
        assert_eq!(limiter.waited(), 5);
        // The burst of 10 and the first of the steady five fell within one second.
        assert_eq!(limiter.peak_per_second(), 14);
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_burst_of_one_no_second_holds_more_than_the_rate() {
        let limiter = RateLimiter::new(5, 1);
        for _ in 0..23 {
            limiter.acquire().await;
        }
        assert_eq!(limiter.peak_per_second(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_takes_no_token_and_the_queue_moves_on() {
        let limiter = RateLimiter::new(10, 1);
        assert!(!limiter.acquire().await);
        // The next token is 100 ms away: this wait is given up after 50 ms.
        let given_up = tokio::time::timeout(Duration::from_millis(50), limiter.acquire()).await;
        assert!(given_up.is_err());
        let start = Instant::now();
        assert!(limiter.acquire().await);
        // It got the token the cancelled wait did not take, when it fell due.
        let elapsed = Instant::now() - start;
        assert!(elapsed <= Duration::from_millis(51), "{elapsed:?}");
        assert_eq!(limiter.granted(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_dials_than_the_slots_run_at_once_and_a_waiting_one_takes_no_token() {
        let limiter = RateLimiter::with_in_flight(1000, 1000, 3);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(limiter.acquire_dial().await.0);
        }
        assert_eq!(limiter.in_flight(), 3);
        // A fourth waits for a slot, and meanwhile takes no token.
        let fourth = tokio::time::timeout(Duration::from_secs(5), limiter.acquire_dial()).await;
        assert!(fourth.is_err());
        assert_eq!(limiter.granted(), 3);
        // One handshake ends: the next dial gets its slot and its token.
        held.pop();
        let (slot, waited) = limiter.acquire_dial().await;
        assert!(!waited);
        assert_eq!((limiter.in_flight(), limiter.granted()), (3, 4));
        drop((slot, held));
        assert_eq!(limiter.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn queued_waiters_are_served_in_order_at_the_rate() {
        let limiter = RateLimiter::new(100, 1);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (limiter, order) = (limiter.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await;
                order.lock().unwrap_or_else(|p| p.into_inner()).push(i);
            }));
            // Each queues before the next is spawned.
            tokio::task::yield_now().await;
        }
        for task in tasks {
            assert!(task.await.is_ok());
        }
        let order = order.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
        assert_eq!(limiter.granted(), 50);
        assert!(limiter.peak_per_second() <= 100);
    }
}
