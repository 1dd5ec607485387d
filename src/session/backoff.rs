//! Reconnect delays: exponential from `backoff_base`, capped at `backoff_cap`, with jitter
//! from a seeded RNG so tests are repeatable and a fleet does not reconnect in lockstep.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

/// The delay policy of one session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Each delay is multiplied by a factor drawn from [1 - jitter, 1 + jitter].
    pub jitter: f64,
}

impl BackoffPolicy {
    /// The delay before attempt `attempt` (1-based): base * 2^(attempt-1), capped, jittered.
    pub fn delay(&self, attempt: u32, rng: &mut StdRng) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let jitter = self.jitter.clamp(0.0, 0.99);
        let factor = if jitter > 0.0 {
            rng.gen_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        raw.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn doubles_to_the_cap_within_jitter_and_repeats_for_a_seed() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            jitter: 0.2,
        };
        let expected = [1u64, 2, 4, 8, 16, 32, 60, 60, 60];
        let mut rng = StdRng::seed_from_u64(7);
        let first: Vec<Duration> = (1..=9).map(|a| policy.delay(a, &mut rng)).collect();
        for (d, e) in first.iter().zip(expected) {
            let e = e as f64;
            assert!(
                d.as_secs_f64() >= e * 0.8 - 1e-9 && d.as_secs_f64() <= e * 1.2 + 1e-9,
                "{d:?} vs {e}"
            );
        }
        let mut rng = StdRng::seed_from_u64(7);
        let again: Vec<Duration> = (1..=9).map(|a| policy.delay(a, &mut rng)).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn no_jitter_is_exact() {
        let policy = BackoffPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(3),
            jitter: 0.0,
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(policy.delay(1, &mut rng), Duration::from_millis(500));
        assert_eq!(policy.delay(3, &mut rng), Duration::from_secs(2));
        assert_eq!(policy.delay(40, &mut rng), Duration::from_secs(3));
    }
}
