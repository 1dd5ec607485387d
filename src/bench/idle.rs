//! `wasp bench idle --sessions N [--tls] [--hold S]`: N paired sessions of this process's pool
//! online against `wasp sim` (its own process), default keepalive. Client RSS per session is
//! (RSS with N online - RSS of this process before any session) / N; client CPU % is this
//! process's CPU time over the hold.

use std::time::{Duration, Instant};

use serde_json::json;

use super::child::{proc_status_kib, proc_usage};
use super::fleet::{Fleet, FleetOptions, online, until};
use crate::runner;

/// USER_HZ on Linux: /proc's CPU times are in these ticks.
const TICKS: f64 = 100.0;

/// The options of `wasp bench idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Sessions to hold online.
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sessions: u64,
    /// Serve and dial `wss://` (rustls, as against WhatsApp).
    #[arg(long)]
    pub tls: bool,
    /// How long to hold them idle, in seconds.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub hold: u64,
    /// Print the report as one JSON line (the only output form).
    #[arg(long)]
    pub json: bool,
}

/// Runs the measurement; `exe` is the `wasp` for the children (this one when `None`).
pub async fn run(
    args: &IdleArgs,
    exe: Option<std::path::PathBuf>,
) -> Result<serde_json::Value, String> {
    let n = args.sessions as usize;
    let fleet = Fleet::build(&FleetOptions {
        sessions: n,
        tls: args.tls,
        exe,
    })
    .await?;
    let me = std::process::id();
    let (rss_before, _) = proc_usage(me).ok_or("cannot read /proc/self")?;
    let split = || {
        let kib = |field| proc_status_kib(me, field).unwrap_or(0);
        (kib("RssAnon"), kib("RssFile"))
    };
    let split_before = split();
    let started = Instant::now();
    let pool = fleet.start((1000, 1000)).await?;
    let board = pool.running.handle.board.clone();
    let budget = Duration::from_secs(120) + Duration::from_millis(20) * n as u32;
    let outcome = async {
        until(&board, budget, "every session online", |b| online(b) == n).await?;
        let all_online_s = started.elapsed().as_secs_f64();
        let (rss_online, cpu_before) = proc_usage(me).ok_or("cannot read /proc/self")?;
        let split_online = split();
        let (sim_rss_online, _) = proc_usage(fleet.sim_pid()).unwrap_or_default();
        let hold_start = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
        let held = hold_start.elapsed().as_secs_f64();
        let (rss_end, cpu_after) = proc_usage(me).ok_or("cannot read /proc/self")?;
        let still_online = online(&board);
        let cpu_s = cpu_after.saturating_sub(cpu_before) as f64 / TICKS;
        let per = |rss: u64| rss.saturating_sub(rss_before) as f64 / n as f64;
        let per_delta = |from: u64, to: u64| to.saturating_sub(from) as f64 / n as f64;
        Ok::<_, String>(json!({
            "bench": "idle",
            "sessions": n,
            "tls": args.tls,
            "hold_s": held,
            "all_online_s": all_online_s,
            "online_after_hold": still_online,
            "client_rss_kib_before": rss_before,
            "client_rss_kib_online": rss_online,
            "client_rss_kib_end": rss_end,
            "client_rss_kib_per_session_online": per(rss_online),
            "client_rss_kib_per_session": per(rss_end),
            // The same RSS apart: anonymous memory (heap, stacks) and pages of mapped files
            // (the binary's code as it is first run, libraries): the second is a fixed cost
            // of the process, not of each session.
            "client_rss_anon_kib_before": split_before.0,
            "client_rss_anon_kib_online": split_online.0,
            "client_rss_file_kib_before": split_before.1,
            "client_rss_file_kib_online": split_online.1,
            "client_rss_anon_kib_per_session_online": per_delta(split_before.0, split_online.0),
            "client_cpu_s_hold": cpu_s,
            "client_cpu_percent_of_one_core": cpu_s / held.max(0.001) * 100.0,
            "sim_rss_kib_online": sim_rss_online,
            // Where part of each session's bytes go: its three long-lived tasks.
            "task_futures": crate::net::footprint::report(),
        }))
    }
    .await;
    runner::stop(pool).await;
    outcome
}
