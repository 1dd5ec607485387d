//! `wasp bench storm --sessions N --rate R`: N sessions online under a connect limit of R a
//! second (burst 1, so no second can start with a stored-up burst), then the simulator drops
//! every connection at once. Measured: the time until all are online again (against N/R),
//! the most dials the pool started within any second (its limiter's own count, at each
//! grant), the most handshakes the simulator completed between two of its samples at most a
//! second apart (sampled every 50 ms; a busy simulator can complete a backlog together), and
//! the most simultaneous logins of one device (1 when no session ever doubled).

use std::time::{Duration, Instant};

use serde_json::json;

use super::fleet::{Fleet, FleetOptions, online, until};
use crate::runner;

/// How often the simulator's counters are read during the storm.
const SAMPLE: Duration = Duration::from_millis(50);

/// The options of `wasp bench storm`.
#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    /// Sessions to drop at once.
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sessions: u64,
    /// The pool's connect limit, dials per second.
    #[arg(long, value_name = "R", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// Serve and dial `wss://`.
    #[arg(long)]
    pub tls: bool,
    /// Print the report as one JSON line (the only output form).
    #[arg(long)]
    pub json: bool,
}

/// The most of a growing counter within any window of `window` (samples: time, count, in order): the
/// increase between two samples at most `window` apart.
pub fn most_within(samples: &[(Duration, u64)], window: Duration) -> u64 {
    let mut most = 0;
    let mut first = 0;
    for &(at, count) in samples {
        while at.saturating_sub(samples[first].0) > window {
            first += 1;
        }
        // What came after the window's first sample, up to this one.
        most = most.max(count.saturating_sub(samples[first].1));
    }
    most
}

pub async fn run(
    args: &StormArgs,
    exe: Option<std::path::PathBuf>,
) -> Result<serde_json::Value, String> {
    let n = args.sessions as usize;
    let fleet = Fleet::build(&FleetOptions {
        sessions: n,
        tls: args.tls,
        exe,
    })
    .await?;
    let pool = fleet.start((args.rate, 1)).await?;
    let board = pool.running.handle.board.clone();
    let metrics = pool.running.handle.metrics.clone();
    let expected = Duration::from_secs_f64(n as f64 / f64::from(args.rate));
    let budget = Duration::from_secs(120) + expected * 3;
    let outcome = async {
        until(&board, budget, "every session online", |b| online(b) == n).await?;
        // The simulator's side must agree before the drop.
        let deadline = Instant::now() + budget;
        while fleet.stats().await?["logged_in"].as_u64().unwrap_or(0) < n as u64 {
            if Instant::now() > deadline {
                return Err("the simulator never saw every session logged in".to_string());
            }
            tokio::time::sleep(SAMPLE).await;
        }
        let before = fleet.stats().await?["handshakes"].as_u64().unwrap_or(0);
        let started = Instant::now();
        let dropped = fleet.drop_all().await?;
        let mut samples = vec![(Duration::ZERO, before)];
        let all_online_s = loop {
            let stats = fleet.stats().await?;
            let at = started.elapsed();
            samples.push((at, stats["handshakes"].as_u64().unwrap_or(0)));
            let back = stats["logged_in"].as_u64().unwrap_or(0) >= n as u64;
            if back && online(&board) == n && at > SAMPLE * 4 {
                break at.as_secs_f64();
            }
            if started.elapsed() > budget {
                return Err("the sessions did not all come back after the drop".to_string());
            }
            tokio::time::sleep(SAMPLE).await;
        };
        let stats = fleet.stats().await?;
        let redials = stats["handshakes"].as_u64().unwrap_or(0) - before;
        Ok::<_, String>(json!({
            "bench": "storm",
            "sessions": n,
            "rate": args.rate,
            "burst": 1,
            "tls": args.tls,
            "dropped": dropped,
            "redials": redials,
            "all_online_s": all_online_s,
            "n_over_r_s": expected.as_secs_f64(),
            "target_s": expected.as_secs_f64() + 3.0,
            "most_dials_in_any_second": metrics.connects_peak_per_second.get(),
            "sim_most_handshakes_within_a_second": most_within(&samples, Duration::from_secs(1)),
            "peak_logins_per_device": stats["max_concurrent_per_device"],
            "sample_ms": SAMPLE.as_millis() as u64,
        }))
    }
    .await;
    runner::stop(pool).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_in_a_window_counts_what_came_after_its_first_sample() {
        let s = |ms: u64, n: u64| (Duration::from_millis(ms), n);
        let samples = [s(0, 0), s(500, 3), s(1000, 5), s(1500, 6), s(2000, 12)];
        // Windows of 1 s: (0,1000] gives 5, (500,1500] 3, (1000,2000] 7.
        assert_eq!(most_within(&samples, Duration::from_secs(1)), 7);
        assert_eq!(most_within(&samples[..1], Duration::from_secs(1)), 0);
    }
}
