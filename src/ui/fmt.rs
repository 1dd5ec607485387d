//! Short human figures for the console: ages, countdowns, rates. Pure functions of durations
//! (the caller passes `now`), so snapshots are stable.

use std::time::{Duration, Instant};

/// `12s`, `1m05s`, `2h03m`, `3d04h`: an age or a remaining time, truncated to whole seconds.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// Like `duration` but one unit coarser above a minute: `12s`, `13m`, `2h03m`, `3d04h`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    if (60..3600).contains(&s) {
        format!("{}m", s / 60)
    } else {
        duration(d)
    }
}

/// How long ago `at` was, seen from `now` (`0s` for an instant in the future).
pub fn age(at: Instant, now: Instant) -> String {
    duration(now.saturating_duration_since(at))
}

/// Time left until `at`, rounded up so a countdown reads `1s` until the moment, then `now`.
pub fn countdown(at: Instant, now: Instant) -> String {
    let left = at.saturating_duration_since(now);
    if left.is_zero() {
        return "now".to_string();
    }
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    duration(Duration::from_secs(secs))
}

/// Milliseconds with no decimals below 10 s (`142ms`), else as a duration.
pub fn millis(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{}ms", d.as_millis())
    } else {
        duration(d)
    }
}

/// A percentage with one decimal (`97.4%`); `100%` and `0%` stay short.
pub fn percent(p: f64) -> String {
    if p >= 99.95 {
        "100%".to_string()
    } else if p <= 0.0 {
        "0%".to_string()
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(Duration::from_secs(12)), "12s");
        assert_eq!(duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(
            duration(Duration::from_secs(2 * 3600 + 3 * 60 + 9)),
            "2h03m"
        );
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d04h"
        );
    }

    #[test]
    fn countdown_rounds_up_and_ends_at_now() {
        let now = Instant::now();
        assert_eq!(countdown(now + Duration::from_millis(200), now), "1s");
        assert_eq!(countdown(now + Duration::from_millis(59_500), now), "1m00s");
        assert_eq!(countdown(now, now), "now");
    }
}
