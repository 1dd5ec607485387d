//! The member loop, once per round (a quarter of the lease TTL): renew every held lease (and
//! close sessions whose lease can no longer be trusted), heartbeat, read the node list, place
//! sessions (claim up to this node's share through the connect rate limit, shed the excess one
//! per round, honour operator moves), and write each held session's shared state, fenced.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use redis::Script;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Core;
use super::lease::{self, Held};
use crate::net::gate::{NodeBeat, SharedState};
use crate::net::handle::PoolHandle;
use crate::store::redis::keys;

/// Why sessions are closed while Redis cannot be reached (shown as `cooldown (<this>)`).
pub const REDIS_LOST: &str = "cluster: redis unreachable";

/// Fenced write of shared state: `KEYS[1]` lease, `KEYS[2]` state; `ARGV` token, JSON, TTL ms.
const WRITE_STATE: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if tonumber(string.match(cur, '^(%d+):')) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
";

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Scripts {
    acquire: Script,
    renew: Script,
    release: Script,
    state: Script,
}

pub(super) async fn run(core: Arc<Core>, pool: PoolHandle, cancel: CancellationToken) {
    let scripts = Arc::new(Scripts {
        acquire: Script::new(lease::ACQUIRE),
        renew: Script::new(lease::RENEW),
        release: Script::new(lease::RELEASE),
        state: Script::new(WRITE_STATE),
    });
    let round = lease::round(core.ttl);
    info!(node = %core.node, ttl = ?core.ttl, "cluster member started");
    // Placement waits half a TTL after joining (or after Redis came back), so every live
    // node has written its heartbeat and shares are computed on the whole fleet.
    let mut place_from: Option<Instant> = None;
    loop {
        let sent = Instant::now();
        renew(&core, &scripts, &pool, sent).await;
        if heartbeat(&core).await.is_ok() {
            let from = *place_from.get_or_insert(sent + core.ttl / 2);
            if sent >= from {
                place(&core, &scripts, &pool).await;
            }
            share_state(&core, &scripts, &pool).await;
        } else {
            place_from = None;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(round) => {}
        }
    }
    // The pool has stopped every driver by now (the runner cancels after the pool ends), so
    // our leases can go at once and other nodes take the sessions without waiting the TTL.
    let held: Vec<(String, Held)> = core.held().drain().collect();
    for (id, held) in held {
        core.fences.set(&id, None);
        let _: Result<i64, _> = core
            .script(&scripts.release, &[&keys::lease(&id)], &[held.value])
            .await;
    }
    let _: Result<i64, _> = core
        .call(redis::cmd("DEL").arg(keys::node(&core.node)))
        .await;
    info!(node = %core.node, "cluster member stopped; leases released");
}

fn ttl_ms(core: &Core) -> String {
    core.ttl.as_millis().to_string()
}

/// Renews every held lease. Lost ones stop at once; ones Redis did not answer for stop while
/// their trust window still has a round left, i.e. well before the lease can expire.
async fn renew(core: &Arc<Core>, scripts: &Arc<Scripts>, pool: &PoolHandle, sent: Instant) {
    let held: Vec<(String, Held)> = core
        .held()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let calls = held.iter().map(|(id, h)| {
        let key = keys::lease(id);
        let args = [h.value.clone(), ttl_ms(core)];
        async move { core.script::<i64>(&scripts.renew, &[&key], &args).await }
    });
    let answers = futures::future::join_all(calls).await;
    let round = lease::round(core.ttl);
    for ((id, h), answer) in held.into_iter().zip(answers) {
        match answer {
            Ok(1) => {
                if let Some(entry) = core.held().get_mut(&id)
                    && entry.token == h.token
                {
                    entry.valid_until = lease::trust_until(sent, core.ttl);
                }
            }
            Ok(_) => {
                warn!(session = %id, node = %core.node, "lease lost to another node: closing the session");
                drop_lease(core, &id);
                spawn_release(core, pool, &id, None);
            }
            Err(e) if Instant::now() + round >= h.valid_until => {
                warn!(session = %id, error = %e, "lease cannot be renewed: closing the session before it expires");
                drop_lease(core, &id);
                spawn_release(core, pool, &id, Some(REDIS_LOST.to_string()));
            }
            Err(e) => warn!(session = %id, error = %e, "lease renewal failed; retrying next round"),
        }
    }
}

fn drop_lease(core: &Core, id: &str) {
    core.held().remove(id);
    core.fences.set(id, None);
}

/// Stops the session's driver in the background; until it has ended (socket closed, session
/// lock free) placement does not claim the session here again.
fn spawn_release(core: &Arc<Core>, pool: &PoolHandle, id: &str, reason: Option<String>) {
    core.closing().insert(id.to_string());
    let (core, pool, id) = (core.clone(), pool.clone(), id.to_string());
    tokio::spawn(async move {
        pool.release(&id, reason).await;
        core.closing().remove(&id);
    });
}

/// Writes this node's heartbeat and reads every live node's.
async fn heartbeat(core: &Core) -> Result<(), String> {
    let held = core.held().values().filter(|h| !h.leaving).count();
    let me = NodeBeat {
        node: core.node.clone(),
        sessions: held,
        heartbeat_ms: unix_ms(SystemTime::now()),
    };
    let json = serde_json::to_string(&me).map_err(|e| e.to_string())?;
    core.call::<()>(
        redis::cmd("SET")
            .arg(keys::node(&core.node))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms(core)),
    )
    .await?;
    core.call::<()>(redis::cmd("SADD").arg(keys::NODES).arg(&core.node))
        .await?;
    let ids: Vec<String> = core.call(redis::cmd("SMEMBERS").arg(keys::NODES)).await?;
    let node_keys: Vec<String> = ids.iter().map(|n| keys::node(n)).collect();
    let beats: Vec<Option<String>> = core.call(redis::cmd("MGET").arg(&node_keys)).await?;
    let mut fleet = std::collections::BTreeMap::new();
    for beat in beats.into_iter().flatten() {
        if let Ok(info) = serde_json::from_str::<NodeBeat>(&beat) {
            fleet.insert(info.node.clone(), info);
        }
    }
    fleet.insert(me.node.clone(), me);
    *core.fleet.lock().unwrap_or_else(|p| p.into_inner()) = fleet;
    Ok(())
}

/// Claims free sessions up to this node's share (moves to this node and, with credentials in
/// files, sessions whose files are here first), sheds one above the share per round, and lets
/// go of sessions an operator moved elsewhere.
async fn place(core: &Arc<Core>, scripts: &Arc<Scripts>, pool: &PoolHandle) {
    let sessions = core.sessions();
    if sessions.is_empty() {
        return;
    }
    let fleet = core.fleet();
    let share = lease::share(sessions.len(), fleet.len());
    let move_keys: Vec<String> = sessions.iter().map(|s| keys::moving(s)).collect();
    let lease_keys: Vec<String> = sessions.iter().map(|s| keys::lease(s)).collect();
    let Ok(moves) = core
        .call::<Vec<Option<String>>>(redis::cmd("MGET").arg(&move_keys))
        .await
    else {
        return;
    };
    let Ok(leases) = core
        .call::<Vec<Option<String>>>(redis::cmd("MGET").arg(&lease_keys))
        .await
    else {
        return;
    };
    // With credentials in files, a paired session belongs to the node that has them: it is
    // never shed or moved, and only that node claims it.
    let pinned = core.files.is_some();
    let homes: Vec<Option<String>> = if pinned {
        let home_keys: Vec<String> = sessions.iter().map(|s| keys::home(s)).collect();
        let Ok(homes) = core.call(redis::cmd("MGET").arg(&home_keys)).await else {
            return;
        };
        homes
    } else {
        vec![None; sessions.len()]
    };
    let mine: Vec<String> = {
        let held = core.held();
        sessions
            .iter()
            .filter(|s| held.get(*s).is_some_and(|h| !h.leaving))
            .cloned()
            .collect()
    };
    // Moved away by an operator (to a live node), or above the share: let go.
    let mut leave: Vec<String> = Vec::new();
    for (id, target) in sessions.iter().zip(&moves) {
        if let Some(target) = target
            && target != &core.node
            && fleet.contains_key(target)
            && mine.contains(id)
        {
            leave.push(id.clone());
        }
    }
    if pinned {
        leave.clear();
    }
    let keep = mine.len() - leave.len();
    if leave.is_empty() && keep > share && !pinned {
        // One per round, so the others take them over through their rate limit.
        if let Some(id) = mine.last() {
            leave.push(id.clone());
        }
    }
    for id in leave {
        hand_over(core, scripts, pool, &id);
    }
    let room = share.saturating_sub(keep);
    let mut moved_here = Vec::new();
    let mut free = Vec::new();
    for (((id, target), owner), home) in sessions.iter().zip(&moves).zip(&leases).zip(&homes) {
        if owner.is_some() || core.held().contains_key(id) || core.closing().contains(id) {
            continue;
        }
        if pinned && (core.has_files(id) || home.as_deref() == Some(core.node.as_str())) {
            moved_here.push(id.clone());
            continue;
        }
        if home.is_some() {
            continue;
        }
        match target {
            Some(t) if t == &core.node => moved_here.push(id.clone()),
            Some(t) if fleet.contains_key(t) => {}
            _ => free.push(id.clone()),
        }
    }
    free.shuffle(&mut rand::thread_rng());
    let budget = lease::claims_per_round(core.connects_per_second, lease::round(core.ttl));
    let wanted = moved_here
        .iter()
        .map(|id| (id.clone(), true))
        .chain(free.into_iter().take(room).map(|id| (id, false)))
        .take(budget);
    for (id, moved) in wanted {
        let sent = Instant::now();
        let args = [core.node.clone(), ttl_ms(core)];
        let key = keys::lease(&id);
        match core
            .script::<i64>(&scripts.acquire, &[&key, keys::FENCE], &args)
            .await
        {
            Ok(token) if token > 0 => {
                let token = u64::try_from(token).unwrap_or_default();
                core.fences.set(&id, Some(token));
                core.held().insert(
                    id.clone(),
                    Held {
                        token,
                        value: lease::lease_value(token, &core.node),
                        valid_until: lease::trust_until(sent, core.ttl),
                        leaving: false,
                    },
                );
                if moved {
                    let _: Result<i64, _> =
                        core.call(redis::cmd("DEL").arg(keys::moving(&id))).await;
                }
                if pinned {
                    // The first node to run a session with credentials in files is its home:
                    // its files will be there, so no other node ever takes it.
                    let home = redis::cmd("SET")
                        .arg(keys::home(&id))
                        .arg(&core.node)
                        .arg("NX")
                        .clone();
                    let _: Result<Option<String>, _> = core.call(&home).await;
                }
                info!(session = %id, token, node = %core.node, "lease acquired");
                if pool.claim(&id).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(session = %id, error = %e, "lease could not be acquired");
                return;
            }
        }
    }
}

/// Stops the session here (socket closed), then deletes the lease so another node can take it.
/// The lease is renewed meanwhile but no longer trusted for dialling.
fn hand_over(core: &Arc<Core>, scripts: &Arc<Scripts>, pool: &PoolHandle, id: &str) {
    let value = {
        let mut held = core.held();
        let Some(h) = held.get_mut(id) else {
            return;
        };
        h.leaving = true;
        h.value.clone()
    };
    info!(session = %id, node = %core.node, "handing the session over");
    let (core, scripts, pool, id) = (core.clone(), scripts.clone(), pool.clone(), id.to_string());
    tokio::spawn(async move {
        pool.release(&id, None).await;
        drop_lease(&core, &id);
        let _: Result<i64, _> = core
            .script(&scripts.release, &[&keys::lease(&id)], &[value])
            .await;
    });
}

/// Writes every held session's state for the fleet, fenced by its token.
async fn share_state(core: &Arc<Core>, scripts: &Arc<Scripts>, pool: &PoolHandle) {
    let held: Vec<(String, u64)> = core
        .held()
        .iter()
        .filter(|(_, h)| !h.leaving)
        .map(|(id, h)| (id.clone(), h.token))
        .collect();
    let now = Instant::now();
    let wall = SystemTime::now();
    let keep = (core.ttl * 3).as_millis().to_string();
    let writes = held.into_iter().filter_map(|(id, token)| {
        let status = pool.board.get(&id)?;
        let wall_ms = |at: Instant| unix_ms(wall - now.saturating_duration_since(at));
        let connected_at_ms = status.online_since().map(wall_ms);
        let last_activity_ms = status.liveness.last_frame_at.map(wall_ms);
        let state = SharedState {
            id: id.clone(),
            owner: core.node.clone(),
            state: status.phase.name().as_str().to_string(),
            reason: status.reason.clone(),
            phone: status.account.phone.clone(),
            reconnect_attempts: status.attempt,
            conflicts_1h: status.conflicts_1h,
            disconnects_1h: status.disconnects_1h,
            connected_at_ms,
            last_activity_ms,
            written_ms: unix_ms(wall),
        };
        let json = serde_json::to_string(&state).ok()?;
        let keep = keep.clone();
        Some(async move {
            let lease = keys::lease(&id);
            let key = keys::state(&id);
            let _: Result<i64, _> = core
                .script(
                    &scripts.state,
                    &[&lease, &key],
                    &[token.to_string(), json, keep],
                )
                .await;
        })
    });
    futures::future::join_all(writes).await;
}

/// Reads the shared state of every configured session (for the fleet view and counts).
pub async fn fleet_states(core: &Core) -> Result<Vec<(String, Option<SharedState>)>, String> {
    let sessions = core.sessions();
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let state_keys: Vec<String> = sessions.iter().map(|s| keys::state(s)).collect();
    let raw: Vec<Option<String>> = core.call(redis::cmd("MGET").arg(&state_keys)).await?;
    Ok(sessions
        .into_iter()
        .zip(raw)
        .map(|(id, json)| (id, json.and_then(|j| serde_json::from_str(&j).ok())))
        .collect())
}

/// Asks the owner to let a session go so that `node` takes it (`wasp:move:<id>`).
pub async fn request_move(core: &Core, session: &str, node: &str) -> Result<(), String> {
    let keep = (core.ttl * 10).as_millis().to_string();
    core.call::<()>(
        redis::cmd("SET")
            .arg(keys::moving(session))
            .arg(node)
            .arg("PX")
            .arg(keep),
    )
    .await
}
