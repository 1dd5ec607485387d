//! `wasp bench attach`: the event path of an attached console against the in-process one.
//! A board of N sample sessions; each round changes every session once; measured is the time
//! from the first publish of a round until the console's end of the link holds the whole round,
//! and how many batches carried it (each batch is at most one frame: the loop draws churn at
//! most every 50 ms and drains every waiting batch first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{Client, Target};
use super::remote;
use crate::http::Token;
use crate::net::board::StatusBoard;
use crate::net::handle::PoolHandle;
use crate::net::metrics::Metrics;
use crate::ui::bench::Stats;
use crate::ui::{LogRing, PoolLink, PoolUpdate, sample_fleet};

/// How long one round may take before the measurement gives up.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// Measures both links; JSON out.
pub async fn event_path(sessions: usize, rounds: usize) -> Result<serde_json::Value, String> {
    let local = measure(sessions, rounds, false).await?;
    let remote = measure(sessions, rounds, true).await?;
    Ok(serde_json::json!({
        "sessions": sessions,
        "rounds": rounds,
        "in_process": local,
        "attached_http": remote,
    }))
}

async fn measure(
    sessions: usize,
    rounds: usize,
    over_http: bool,
) -> Result<serde_json::Value, String> {
    let board = Arc::new(StatusBoard::new());
    let mut fleet = sample_fleet(sessions, Instant::now());
    for status in &fleet {
        board.publish(status.clone());
    }
    // The request channel stays open: a closed one means a stopped pool (streams end).
    let (requests, _kept) = mpsc::channel(16);
    let pool = PoolHandle::new(board.clone(), Arc::new(Metrics::new()), requests);
    let cancel = CancellationToken::new();
    let mut link: PoolLink = if over_http {
        let token = Token::random();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let server = crate::http::serve(
            addr,
            crate::http::Access {
                token: Some(token.clone()),
                read_token: None,
            },
            crate::http::Limits::default(),
            pool.clone(),
            cancel.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let client = Client::new(
            Target::parse(&format!("http://{}", server.addr)).map_err(|e| e.to_string())?,
            Some(token),
        );
        remote::link(Arc::new(client), LogRing::new(100), cancel.clone())
    } else {
        crate::console::local_link(&pool, cancel.clone())
    };
    // The first whole fleet.
    seen_round(&mut link, sessions, None).await?;
    let mut latencies = Vec::with_capacity(rounds);
    let mut batches = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        // Far above any sample attempt, so every publish is a change.
        let attempt = 1_000_000 + u32::try_from(round).unwrap_or(0);
        let started = Instant::now();
        for status in &mut fleet {
            status.attempt = attempt;
            board.publish(status.clone());
        }
        batches.push(seen_round(&mut link, sessions, Some(attempt)).await?);
        latencies.push(started.elapsed());
    }
    cancel.cancel();
    let stats = Stats::of(latencies);
    let mean_batches = batches.iter().sum::<usize>() as f64 / batches.len().max(1) as f64;
    Ok(serde_json::json!({
        "round_visible": stats.json(),
        "batches_per_round": mean_batches,
    }))
}

/// Reads updates until all `sessions` show `attempt` (or any fleet, when `None`); returns how
/// many updates that took.
async fn seen_round(
    link: &mut PoolLink,
    sessions: usize,
    attempt: Option<u32>,
) -> Result<usize, String> {
    let mut done = std::collections::HashSet::new();
    let mut updates = 0;
    let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
    while done.len() < sessions {
        let update = tokio::time::timeout_at(deadline, link.updates.recv())
            .await
            .map_err(|_| format!("a round was not seen within {ROUND_LIMIT:?} ({} of {sessions}, {updates} updates, {attempt:?})", done.len()))?
            .ok_or("the link closed")?;
        updates += 1;
        match update {
            PoolUpdate::Changed(batch) | PoolUpdate::Fleet(batch) => {
                for s in batch {
                    if attempt.is_none_or(|a| s.attempt == a) {
                        done.insert(s.id);
                    }
                }
            }
            PoolUpdate::Unreachable { why, .. } => return Err(why),
            PoolUpdate::Refused(_)
            | PoolUpdate::Answered(_)
            | PoolUpdate::Nodes(_)
            | PoolUpdate::PairCode { .. }
            | PoolUpdate::Messages(_) => {}
        }
    }
    Ok(updates)
}
