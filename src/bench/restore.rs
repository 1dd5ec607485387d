//! `wasp bench restore --sessions N`: N paired sessions on disk; the time from starting the
//! pool until every one is loaded (its credentials read: the board shows it paired) and
//! queued (past stopped: dialling, or waiting for a rate-limit token), at the default
//! connect limits.

use std::time::{Duration, Instant};

use serde_json::json;

use super::fleet::{Fleet, FleetOptions, until};
use crate::config::Limits;
use crate::runner;
use crate::session::status::StateName;

/// The options of `wasp bench restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// Sessions on disk.
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sessions: u64,
    /// Print the report as one JSON line (the only output form).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    args: &RestoreArgs,
    exe: Option<std::path::PathBuf>,
) -> Result<serde_json::Value, String> {
    let n = args.sessions as usize;
    let fleet = Fleet::build(&FleetOptions {
        sessions: n,
        tls: false,
        exe,
    })
    .await?;
    let defaults = Limits::default();
    let config = fleet.config((defaults.connects_per_second, defaults.connect_burst));
    let started = Instant::now();
    let pool = runner::start(&config, None)
        .await
        .map_err(|e| e.to_string())?;
    let start_returned_s = started.elapsed().as_secs_f64();
    let board = pool.running.handle.board.clone();
    let budget = Duration::from_secs(60) + Duration::from_millis(20) * n as u32;
    let outcome = async {
        let loaded = |b: &crate::net::board::StatusBoard| {
            b.count(|s| s.account.paired && s.state() != StateName::Stopped) == n
        };
        let all = until(&board, budget, "every session loaded and queued", loaded).await?;
        let seconds = started.elapsed().as_secs_f64();
        let online = all
            .iter()
            .filter(|s| s.state() == StateName::Online)
            .count();
        Ok::<_, String>(json!({
            "bench": "restore",
            "sessions": n,
            "loaded_and_queued_s": seconds,
            "start_returned_s": start_returned_s,
            "online_at_that_time": online,
            "connects_per_second": defaults.connects_per_second,
            "connect_burst": defaults.connect_burst,
        }))
    }
    .await;
    runner::stop(pool).await;
    outcome
}
