//! `wasp bench connect --sessions N`: N paired sessions dial at once with the rate limit off
//! (a bucket of N tokens, refilled at N a second): the time until all are online, handshakes
//! and logins per second, and each session's connect time (its dial to online, from its
//! timeline) at p50 and p99.

use std::time::{Duration, Instant};

use serde_json::json;

use super::fleet::{Fleet, FleetOptions, online, quantile, until};
use crate::runner;
use crate::session::status::{StateName, Status};

/// The options of `wasp bench connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Sessions dialling at once.
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sessions: u64,
    /// Serve and dial `wss://`.
    #[arg(long)]
    pub tls: bool,
    /// Dials mid-handshake at once (the pool's `[limits] handshakes_in_flight`; its default
    /// when not given).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub handshakes_in_flight: Option<u32>,
    /// Print the report as one JSON line (the only output form).
    #[arg(long)]
    pub json: bool,
}

/// A session's dial-to-online time: from the last time it entered connecting (before it
/// went online) to going online.
fn connect_time(status: &Status, started: Instant) -> Duration {
    let online_at = status.since;
    let dialled = status
        .timeline
        .iter()
        .filter(|e| e.state == StateName::Connecting && e.at <= online_at)
        .map(|e| e.at)
        .next_back()
        .unwrap_or(started);
    online_at.saturating_duration_since(dialled)
}

pub async fn run(
    args: &ConnectArgs,
    exe: Option<std::path::PathBuf>,
) -> Result<serde_json::Value, String> {
    let n = args.sessions as usize;
    let fleet = Fleet::build(&FleetOptions {
        sessions: n,
        tls: args.tls,
        exe,
    })
    .await?;
    let handshakes_before = fleet.stats().await?["handshakes"].as_u64().unwrap_or(0);
    let limit = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    let me = std::process::id();
    let (_, cpu_before) = super::child::proc_usage(me).ok_or("cannot read /proc/self")?;
    let (_, sim_cpu_before) = super::child::proc_usage(fleet.sim_pid()).unwrap_or_default();
    let started = Instant::now();
    let mut config = fleet.config((limit, limit));
    if let Some(slots) = args.handshakes_in_flight {
        config.limits.handshakes_in_flight = slots;
    }
    let in_flight = config.limits.handshakes_in_flight;
    let pool = runner::start(&config, None)
        .await
        .map_err(|e| e.to_string())?;
    let board = pool.running.handle.board.clone();
    let budget = Duration::from_secs(120) + Duration::from_millis(20) * n as u32;
    let outcome = async {
        let all = until(&board, budget, "every session online", |b| online(b) == n).await?;
        let all_online_s = started.elapsed().as_secs_f64();
        // CPU seconds (USER_HZ ticks / 100) each side spent getting everyone online: on a
        // machine shared with the simulator, the wall-clock rate is both sides' sum.
        let (_, cpu_after) = super::child::proc_usage(me).ok_or("cannot read /proc/self")?;
        let (_, sim_cpu_after) = super::child::proc_usage(fleet.sim_pid()).unwrap_or_default();
        let client_cpu_s = cpu_after.saturating_sub(cpu_before) as f64 / 100.0;
        let sim_cpu_s = sim_cpu_after.saturating_sub(sim_cpu_before) as f64 / 100.0;
        let stats = fleet.stats().await?;
        let handshakes = stats["handshakes"].as_u64().unwrap_or(0) - handshakes_before;
        let mut times: Vec<f64> = all
            .iter()
            .map(|s| connect_time(s, started).as_secs_f64() * 1000.0)
            .collect();
        times.sort_by(f64::total_cmp);
        let mut from_start: Vec<f64> = all
            .iter()
            .map(|s| s.since.saturating_duration_since(started).as_secs_f64() * 1000.0)
            .collect();
        from_start.sort_by(f64::total_cmp);
        Ok::<_, String>(json!({
            "bench": "connect",
            "sessions": n,
            "tls": args.tls,
            "handshakes_in_flight": in_flight,
            "all_online_s": all_online_s,
            "handshakes": handshakes,
            "handshakes_logins_per_s": n as f64 / all_online_s.max(0.001),
            "client_cpu_s": client_cpu_s,
            "handshakes_logins_per_client_cpu_s": n as f64 / client_cpu_s.max(0.01),
            "sim_cpu_s": sim_cpu_s,
            "connect_p50_ms": quantile(&times, 0.50),
            "connect_p99_ms": quantile(&times, 0.99),
            "online_after_start_p50_ms": quantile(&from_start, 0.50),
            "online_after_start_p99_ms": quantile(&from_start, 0.99),
            "peak_logins_per_device": stats["max_concurrent_per_device"],
        }))
    }
    .await;
    runner::stop(pool).await;
    outcome
}
