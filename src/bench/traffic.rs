//! The traffic of `wasp bench messages`: each session's texts out (through its outbox), its
//! peer's texts back (through the simulator's admin API), each keeping at most C in flight,
//! and the faults the simulator injects meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::child::admin_call;
use super::messages::{Lane, Options, Seen};
use crate::net::handle::PoolHandle;
use crate::store::outbox::{Direction, Kept, OutStatus};

/// How long a sender waits on the event stream before it looks at the database instead
/// (the events may have lagged).
const LOOK: Duration = Duration::from_secs(2);
/// How often a sender checks whether it may go on.
const TICK: Duration = Duration::from_millis(10);

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends `options.messages` texts from the lane's session to its peer, at most
/// `options.concurrency` not yet delivered; returns once all are delivered (or at
/// `deadline`) with their ids in order.
pub(super) async fn send_out(
    pool: PoolHandle,
    lane: Lane,
    options: Options,
    seen: Arc<Mutex<Seen>>,
    deadline: Instant,
) -> Result<Vec<String>, String> {
    let mut ids: Vec<String> = Vec::with_capacity(options.messages);
    let outstanding = |ids: &[String], seen: &Mutex<Seen>| {
        let seen = lock(seen);
        ids.iter()
            .filter(|id| !seen.delivered_at.contains_key(*id))
            .cloned()
            .collect::<Vec<_>>()
    };
    for i in 0..=options.messages {
        let limit = if i == options.messages {
            1 // the end: wait for every one
        } else {
            options.concurrency
        };
        let mut looked = Instant::now();
        loop {
            let waiting = outstanding(&ids, &seen);
            if waiting.len() < limit || Instant::now() > deadline {
                break;
            }
            if looked.elapsed() > LOOK {
                for id in waiting {
                    if let Ok(Some(e)) = pool.message(&lane.session, &id).await
                        && matches!(e.status, OutStatus::Delivered | OutStatus::Read)
                    {
                        lock(&seen)
                            .delivered_at
                            .entry(id)
                            .or_insert_with(Instant::now);
                    }
                }
                looked = Instant::now();
            }
            tokio::time::sleep(TICK).await;
        }
        if i == options.messages {
            break;
        }
        let text = format!("bench {} to {} #{i}", lane.session, lane.peer);
        let key = format!("{}-{i}", lane.session);
        let at = Instant::now();
        let entry = loop {
            match pool
                .send(&lane.session, &lane.peer, &text, Some(key.clone()))
                .await
            {
                Ok(entry) => break entry,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("{}: could not queue a text: {e}", lane.session));
                }
                // The same key again returns the first message: retrying never doubles.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        lock(&seen).sent_at.insert(entry.id.clone(), at);
        ids.push(entry.id);
    }
    Ok(ids)
}

/// The lane's peer sends `options.messages` texts to the session, at most
/// `options.concurrency` not yet received; returns once all are received (or at `deadline`).
pub(super) async fn send_back(
    admin: String,
    pool: PoolHandle,
    lane: Lane,
    options: Options,
    seen: Arc<Mutex<Seen>>,
    deadline: Instant,
) -> Result<Vec<String>, String> {
    let mut ids: Vec<String> = Vec::with_capacity(options.messages);
    for i in 0..=options.messages {
        let limit = if i == options.messages {
            1
        } else {
            options.concurrency
        };
        let mut looked = Instant::now();
        loop {
            let waiting = {
                let seen = lock(&seen);
                ids.iter()
                    .filter(|id| !seen.received.contains_key(*id))
                    .count()
            };
            if waiting < limit || Instant::now() > deadline {
                break;
            }
            if looked.elapsed() > LOOK {
                let limit = u32::try_from(options.messages + 100).unwrap_or(u32::MAX);
                if let Ok(kept) = pool.messages(&lane.session, Direction::In, limit).await {
                    let mut seen = lock(&seen);
                    for k in kept {
                        if let Kept::In(m) = k
                            && ids.contains(&m.id)
                        {
                            seen.received.entry(m.id).or_insert(1);
                        }
                    }
                }
                looked = Instant::now();
            }
            tokio::time::sleep(TICK).await;
        }
        if i == options.messages {
            break;
        }
        let body = json!({
            "from": lane.peer,
            "to": lane.phone,
            "text": format!("bench {} to {} #{i}", lane.peer, lane.session),
        });
        let answer = loop {
            match admin_call(&admin, "POST", "/admin/send", Some(&body)).await {
                Ok(answer) => break answer,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("{}: the simulator refused a text: {e}", lane.peer));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        ids.push(answer["id"].as_str().unwrap_or_default().to_string());
    }
    Ok(ids)
}

/// Until `stop`: every 0.5 to 1.5 s one random session's connection is dropped, restarted
/// (515) or stalled. Answers how many of each reached a live connection.
pub(super) async fn inject_faults(
    admin: String,
    lanes: Vec<Lane>,
    stop: CancellationToken,
) -> HashMap<String, u64> {
    const KINDS: [&str; 3] = ["drop", "restart", "stall"];
    let mut applied: HashMap<String, u64> = HashMap::new();
    let mut first = true;
    loop {
        let (wait, lane, kind) = {
            let mut rng = rand::thread_rng();
            // The first fault comes at once, so even a short run meets one.
            let wait = if first { 50 } else { rng.gen_range(500..1500) };
            first = false;
            (
                Duration::from_millis(wait),
                rng.gen_range(0..lanes.len().max(1)),
                KINDS[rng.gen_range(0..KINDS.len())],
            )
        };
        tokio::select! {
            _ = stop.cancelled() => return applied,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(lane) = lanes.get(lane) else {
            return applied;
        };
        let body = json!({ "device": lane.device, "kind": kind });
        if let Ok(answer) = admin_call(&admin, "POST", "/admin/fault", Some(&body)).await
            && answer["connections"].as_u64().unwrap_or(0) > 0
        {
            *applied.entry(kind.to_string()).or_insert(0) += 1;
        }
    }
}
