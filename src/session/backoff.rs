//! Reconnect delays: exponential from `backoff_base`, capped at `backoff_cap`, with jitter
//! from a seeded RNG so tests are repeatable and a fleet does not reconnect in lockstep.

use std::time::Duration;

use rand::{Error, Rng, RngCore};

/// The jitter source of one session: SplitMix64, eight bytes of state. Jitter needs spread,
/// not secrecy, and a session kept `StdRng`'s 320-byte block buffer for it.
#[derive(Debug, Clone)]
pub struct JitterRng(u64);

impl JitterRng {
    /// A source seeded with `seed` (the same seed gives the same delays).
    pub fn seed_from_u64(seed: u64) -> Self {
        JitterRng(seed)
    }
}

impl RngCore for JitterRng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

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
    pub fn delay(&self, attempt: u32, rng: &mut JitterRng) -> Duration {
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

    #[test]
    fn doubles_to_the_cap_within_jitter_and_repeats_for_a_seed() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            jitter: 0.2,
        };
        let expected = [1u64, 2, 4, 8, 16, 32, 60, 60, 60];
        let mut rng = JitterRng::seed_from_u64(7);
        let first: Vec<Duration> = (1..=9).map(|a| policy.delay(a, &mut rng)).collect();
        for (d, e) in first.iter().zip(expected) {
            let e = e as f64;
            assert!(
                d.as_secs_f64() >= e * 0.8 - 1e-9 && d.as_secs_f64() <= e * 1.2 + 1e-9,
                "{d:?} vs {e}"
            );
        }
        let mut rng = JitterRng::seed_from_u64(7);
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
        let mut rng = JitterRng::seed_from_u64(1);
        assert_eq!(policy.delay(1, &mut rng), Duration::from_millis(500));
        assert_eq!(policy.delay(3, &mut rng), Duration::from_secs(2));
        assert_eq!(policy.delay(40, &mut rng), Duration::from_secs(3));
    }
}
