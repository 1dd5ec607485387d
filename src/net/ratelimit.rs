//! The global connect rate limit: a token bucket shared by every dial in the process
//! (default 5 connects/s, burst 10), so an outage is followed by a spread of reconnects
//! rather than a storm.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
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
    /// The most grants within any one second (a window closed at its end, open at its start).
    peak: AtomicU64,
}

impl RateLimiter {
    /// A limiter that grants `per_second` tokens a second, holding at most `burst`.
    /// Zero values are raised to 1 (config validation refuses them earlier).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        let burst = f64::from(burst.max(1));
        RateLimiter {
            inner: Arc::new(Inner {
                per_second,
                burst,
                bucket: Mutex::new(Bucket {
                    tokens: burst,
                    last: Instant::now(),
                    recent: VecDeque::new(),
                }),
                granted: AtomicU64::new(0),
                waited: AtomicU64::new(0),
                peak: AtomicU64::new(0),
            }),
        }
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
        let mut waited = false;
        let mut bucket = self.inner.bucket.lock().await;
        loop {
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.inner.per_second).min(self.inner.burst);
            bucket.last = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                self.inner.granted.fetch_add(1, Ordering::Relaxed);
                while bucket
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
                {
                    bucket.recent.pop_front();
                }
                bucket.recent.push_back(now);
                let in_second = bucket.recent.len() as u64;
                self.inner.peak.fetch_max(in_second, Ordering::Relaxed);
                return waited;
            }
            let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / self.inner.per_second);
            if !waited {
                self.inner.waited.fetch_add(1, Ordering::Relaxed);
                waited = true;
            }
            tokio::time::sleep(wait).await;
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
