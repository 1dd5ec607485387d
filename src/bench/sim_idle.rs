//! `wasp bench sim-idle [--connections N] [--hold-secs S]`: starts `wasp sim` as its own
//! process, pairs N devices through its admin API (the virtual phone), logs every one of them
//! in over real sockets, holds them idle for S seconds, and reports the simulator process's
//! RSS and CPU time from /proc.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::child::{Sim, pair_one, proc_usage, start_sim};
use crate::sim::load;

/// The options of `wasp bench sim-idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimIdleArgs {
    /// How many devices to pair and hold online.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub connections: u64,
    /// How long to hold them idle, in seconds.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub hold_secs: u64,
}

pub(super) async fn run(args: &SimIdleArgs) -> Result<serde_json::Value, String> {
    let sim = start_sim(None)?;
    measure(&sim, args.connections as usize, args.hold_secs).await
}

async fn measure(sim: &Sim, n: usize, hold: u64) -> Result<serde_json::Value, String> {
    let pid = sim.child.id();
    let (rss_start, _) = proc_usage(pid).unwrap_or_default();
    let started = Instant::now();
    // Pair every device, 64 at a time.
    let mut creds = Vec::with_capacity(n);
    let mut pending = FuturesUnordered::new();
    let mut launched = 0;
    while creds.len() < n {
        while launched < n && pending.len() < 64 {
            pending.push(pair_one(sim));
            launched += 1;
        }
        match pending.next().await {
            Some(result) => creds.push(result?),
            None => break,
        }
    }
    let paired_in = started.elapsed();
    // Log every device in and keep the connections open.
    let mut conns = Vec::with_capacity(n);
    let login_start = Instant::now();
    let mut logins = FuturesUnordered::new();
    let mut iter = creds.iter();
    loop {
        while logins.len() < 256 {
            let Some(c) = iter.next() else { break };
            logins.push(async move {
                let socket = load::login(&sim.target, c)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(socket.spawn(CancellationToken::new(), 16))
            });
        }
        match logins.next().await {
            Some(r) => conns.push(r?),
            None => break,
        }
    }
    let logged_in = login_start.elapsed();
    let (rss_loaded, cpu_before) = proc_usage(pid).ok_or("cannot read /proc of the simulator")?;
    let idle_start = Instant::now();
    // Idle, with one ping per connection spread over the window (a keepalive's worth).
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let mut pings = 0usize;
    for (conn, _) in &conns {
        if conn.ping(Duration::from_secs(30)).await.is_ok() {
            pings += 1;
        }
    }
    let idle = idle_start.elapsed();
    let (rss_end, cpu_after) = proc_usage(pid).ok_or("cannot read /proc of the simulator")?;
    let ticks = 100.0; // USER_HZ on Linux
    let cpu_s = (cpu_after - cpu_before) as f64 / ticks;
    drop(conns);
    Ok(json!({
        "bench": "sim-idle",
        "connections": n,
        "pings_answered": pings,
        "pair_seconds": paired_in.as_secs_f64(),
        "login_seconds": logged_in.as_secs_f64(),
        "sim_rss_kib_start": rss_start,
        "sim_rss_kib_loaded": rss_loaded,
        "sim_rss_kib_end": rss_end,
        "sim_rss_kib_per_connection": (rss_end.saturating_sub(rss_start)) as f64 / n.max(1) as f64,
        "idle_seconds": idle.as_secs_f64(),
        "sim_cpu_seconds_idle": cpu_s,
        "sim_cpu_percent_idle": cpu_s / idle.as_secs_f64() * 100.0,
    }))
}
