//! `wasp bench messages [--sessions N] [--messages M] [--concurrency C] [--faults] [--json]`:
//! the seeds' "message success rate" done properly. `wasp sim` runs as its own process; an
//! in-process pool (`runner::start`, as `wasp headless` runs it) holds N sessions, paired
//! through the simulator's admin API. Each session sends M texts to its own simulated account
//! (`/admin/account`), at most C not yet delivered at a time, and that account sends M back
//! (`/admin/send`), at most C not yet received at a time. With `--faults` the simulator
//! drops, restarts (515) and stalls random sessions until every message is through.
//!
//! The counts come from what is durable at the end, not from the event stream: the
//! recipients' decrypted lists (`/admin/messages`), the outbox statuses and the sessions'
//! received messages. Lost = sent but never shown to the recipient; duplicated = shown twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::child::{Sim, admin_call, start_sim};
use super::traffic::{inject_faults, send_back, send_out};
use crate::config::{Config, SessionConfig};
use crate::net::handle::PoolHandle;
use crate::net::messages::{MessageEventKind, MessageStatus};
use crate::runner;
use crate::session::policy::Policy;
use crate::session::status::StateName;
use crate::store::outbox::{Direction, Kept, OutStatus};

/// The send limits the bench runs under (the defaults, 20/min and burst 5, would make
/// 100 messages take 5 minutes per session).
pub const BENCH_PER_MINUTE: u32 = 60_000;
pub const BENCH_BURST: u32 = 1_000;

/// How long the whole exchange may take before the rest counts as lost.
const SETTLE: Duration = Duration::from_secs(300);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub sessions: usize,
    pub messages: usize,
    pub concurrency: usize,
    pub faults: bool,
    /// The `wasp` executable to run `sim` with (this one when `None`).
    pub sim_exe: Option<PathBuf>,
}

/// What a run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub sessions: usize,
    pub messages: usize,
    pub concurrency: usize,
    pub faults: bool,
    pub per_minute: u32,
    pub burst: u32,
    /// Texts sessions queued, and how many the recipients' phones decrypted (once or more).
    pub sent: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// Texts the simulated accounts sent, and how many the sessions received.
    pub sent_back: usize,
    pub received: usize,
    pub lost_back: usize,
    pub duplicated_back: usize,
    /// Sent messages whose outbox status reached delivered (or read).
    pub delivered_status: usize,
    pub delivery_rate_percent: f64,
    pub send_to_delivered_p50_ms: f64,
    pub send_to_delivered_p99_ms: f64,
    pub messages_per_second: f64,
    pub seconds: f64,
    /// Faults applied, by kind.
    pub faults_applied: HashMap<String, u64>,
    /// A resend with an id the phone already had, dropped by it (never shown twice).
    pub resends_dropped_by_phone: u64,
}

impl Report {
    /// Everything arrived exactly once, both ways.
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.lost_back == 0 && self.duplicated_back == 0
    }

    fn text(&self) -> String {
        let faults: Vec<String> = self
            .faults_applied
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!(
            "wasp bench messages: {} sessions x {} texts each way, {} at a time, faults {}\n\
             send limits raised for the bench: [messages] per_minute = {}, burst = {} (defaults 20 and 5)\n\
             sent {}: delivered {} ({:.1} %), lost {}, duplicated {}\n\
             sent back {}: received {}, lost {}, duplicated {}\n\
             send -> delivered p50 {:.0} ms, p99 {:.0} ms; {:.1} messages/s over {:.1} s\n\
             faults applied: {}; resends the phones dropped as already seen: {}",
            self.sessions,
            self.messages,
            self.concurrency,
            if self.faults { "on" } else { "off" },
            self.per_minute,
            self.burst,
            self.sent,
            self.delivered,
            self.delivery_rate_percent,
            self.lost,
            self.duplicated,
            self.sent_back,
            self.received,
            self.lost_back,
            self.duplicated_back,
            self.send_to_delivered_p50_ms,
            self.send_to_delivered_p99_ms,
            self.messages_per_second,
            self.seconds,
            if faults.is_empty() {
                "none".to_string()
            } else {
                faults.join(", ")
            },
            self.resends_dropped_by_phone,
        )
    }
}

/// The options of `wasp bench messages`.
#[derive(Debug, Clone, clap::Args)]
pub struct MessagesArgs {
    /// How many sessions (each with its own simulated peer).
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=200))]
    pub sessions: u64,
    /// Texts each way per session.
    #[arg(long, value_name = "M", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub messages: u64,
    /// Texts not yet delivered (or received) at a time, per session and direction.
    #[arg(long, value_name = "C", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub concurrency: u64,
    /// Drop, restart (515) and stall random sessions meanwhile.
    #[arg(long)]
    pub faults: bool,
    /// Print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// `wasp bench messages`: prints the report; exit 0 when nothing was lost or doubled.
pub(super) async fn main(args: &MessagesArgs) -> u8 {
    let options = Options {
        sessions: args.sessions as usize,
        messages: args.messages as usize,
        concurrency: args.concurrency as usize,
        faults: args.faults,
        sim_exe: None,
    };
    let as_json = args.json;
    match run(&options).await {
        Ok(report) => {
            if as_json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                println!("{}", report.text());
            }
            if report.ok() { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("wasp bench messages: {e}");
            1
        }
    }
}

/// The bench's sessions: quick to notice a dead socket (stalls) and never giving up.
fn policy() -> Policy {
    Policy {
        keepalive_interval_min: Duration::from_secs(2),
        keepalive_interval_max: Duration::from_secs(3),
        keepalive_deadline: Duration::from_secs(2),
        dead_after: Duration::from_secs(6),
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(1),
        max_attempts_network: 10_000,
        max_attempts_server: 10_000,
        ..Policy::default()
    }
}

/// One session of the bench and its simulated peer.
#[derive(Debug, Clone)]
pub(super) struct Lane {
    pub(super) session: String,
    /// The session's own phone (paired by the bench as this number).
    pub(super) phone: String,
    /// The session's device JID, for faults.
    pub(super) device: String,
    pub(super) peer: String,
}

/// What the event stream (or, when it lagged, a look at the database) showed so far.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) sent_at: HashMap<String, Instant>,
    pub(super) delivered_at: HashMap<String, Instant>,
    /// Received ids and how often each was reported.
    pub(super) received: HashMap<String, u32>,
}

/// Runs the bench; the pool, the simulator and the data directory are gone when it returns.
pub async fn run(options: &Options) -> Result<Report, String> {
    let sim = start_sim(options.sim_exe.as_deref())?;
    let dir = std::env::temp_dir().join(format!(
        "wasp-bench-messages-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = run_in(options, &sim, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(options: &Options, sim: &Sim, dir: &std::path::Path) -> Result<Report, String> {
    let mut config = Config::default();
    config.server.url = sim.target.ws_url.clone();
    config.server.trust_root = Some(sim.target.trust.0);
    config.storage.data_dir = dir.to_path_buf();
    config.messages.per_minute = BENCH_PER_MINUTE;
    config.messages.burst = BENCH_BURST;
    config.messages.keep = u32::try_from(options.messages + 100).unwrap_or(u32::MAX);
    config.policy = policy();
    config.sessions = (0..options.sessions)
        .map(|i| {
            let mut s = SessionConfig::new(format!("bench-{i}"), policy());
            s.autostart = true;
            s
        })
        .collect();
    let started = runner::start(&config, None)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = exchange(options, sim, &started.running.handle).await;
    runner::stop(started).await;
    outcome
}

/// Pairs every session (the phone scanning each QR through the admin API) and waits until
/// each is online with its pre-keys uploaded.
async fn pair_all(sim: &Sim, pool: &PoolHandle, n: usize) -> Result<Vec<Lane>, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    while lanes.len() < n {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} sessions paired in 120 s",
                lanes.len()
            ));
        }
        for status in pool.board.snapshot() {
            let Some(qr) = status.qr() else { continue };
            if lanes.contains_key(&status.id) {
                continue;
            }
            let i: usize = status.id.trim_start_matches("bench-").parse().unwrap_or(0);
            let phone = format!("1555700{i:04}");
            let body = json!({ "qr": qr.text.as_str(), "phone": phone });
            if let Ok(answer) = admin_call(&sim.admin, "POST", "/admin/scan", Some(&body)).await {
                let device = answer["device"].as_str().unwrap_or_default().to_string();
                let peer = format!("1555800{i:04}");
                let lane = Lane {
                    session: status.id.clone(),
                    phone,
                    device,
                    peer,
                };
                lanes.insert(status.id.clone(), lane);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let online = |pool: &PoolHandle| {
        pool.board
            .snapshot()
            .iter()
            .filter(|s| s.state() == StateName::Online && s.account.paired)
            .count()
    };
    let keys = u64::from(crate::wa::prekey::INITIAL_BATCH) * n as u64;
    while online(pool) < n || pool.metrics.prekeys_uploaded.get() < keys {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} sessions came online with their pre-keys in 120 s",
                online(pool)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for lane in lanes.values() {
        let body = json!({ "phone": lane.peer });
        admin_call(&sim.admin, "POST", "/admin/account", Some(&body)).await?;
    }
    let mut lanes: Vec<Lane> = lanes.into_values().collect();
    lanes.sort_by(|a, b| a.session.cmp(&b.session));
    Ok(lanes)
}

async fn exchange(options: &Options, sim: &Sim, pool: &PoolHandle) -> Result<Report, String> {
    let lanes = pair_all(sim, pool, options.sessions).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = CancellationToken::new();
    let listener = tokio::spawn(listen(pool.clone(), seen.clone(), stop.clone()));
    let faults = options.faults.then(|| {
        tokio::spawn(inject_faults(
            sim.admin.clone(),
            lanes.clone(),
            stop.clone(),
        ))
    });
    let started = Instant::now();
    let deadline = started + SETTLE;
    let mut work = Vec::new();
    for lane in &lanes {
        work.push(tokio::spawn(send_out(
            pool.clone(),
            lane.clone(),
            options.clone(),
            seen.clone(),
            deadline,
        )));
        work.push(tokio::spawn(send_back(
            sim.admin.clone(),
            pool.clone(),
            lane.clone(),
            options.clone(),
            seen.clone(),
            deadline,
        )));
    }
    let mut ids: HashMap<(String, bool), Vec<String>> = HashMap::new();
    for (i, task) in work.into_iter().enumerate() {
        let lane = &lanes[i / 2];
        let sent = task.await.map_err(|e| e.to_string())??;
        ids.insert((lane.session.clone(), i % 2 == 0), sent);
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = listener.await;
    let applied = match faults {
        Some(task) => task.await.unwrap_or_default(),
        None => HashMap::new(),
    };
    count(options, sim, pool, &lanes, &ids, &seen, seconds, applied).await
}

/// Follows the pool's message events: send -> delivered latencies and received ids.
async fn listen(pool: PoolHandle, seen: Arc<Mutex<Seen>>, stop: CancellationToken) {
    let mut events = pool.message_events();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = events.recv() => e,
        };
        let Ok(event) = event else {
            // Lagged: the durable counts at the end do not depend on the events.
            continue;
        };
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        match event.kind {
            MessageEventKind::Status { id, status, .. } => {
                let done = matches!(
                    status,
                    MessageStatus::Delivered | MessageStatus::Read | MessageStatus::Played
                );
                if done {
                    seen.delivered_at.entry(id).or_insert_with(Instant::now);
                }
            }
            MessageEventKind::Received(m) if !m.from_me => {
                *seen.received.entry(m.id).or_insert(0) += 1;
            }
            MessageEventKind::Received(_) => {}
        }
    }
}

/// The durable counts at the end, and the latencies the events showed.
#[allow(clippy::too_many_arguments)] // one call site, every part named
async fn count(
    options: &Options,
    sim: &Sim,
    pool: &PoolHandle,
    lanes: &[Lane],
    ids: &HashMap<(String, bool), Vec<String>>,
    seen: &Mutex<Seen>,
    seconds: f64,
    faults_applied: HashMap<String, u64>,
) -> Result<Report, String> {
    let mut r = Report {
        sessions: options.sessions,
        messages: options.messages,
        concurrency: options.concurrency,
        faults: options.faults,
        per_minute: BENCH_PER_MINUTE,
        burst: BENCH_BURST,
        seconds,
        faults_applied,
        ..Report::default()
    };
    for lane in lanes {
        let out = ids
            .get(&(lane.session.clone(), true))
            .cloned()
            .unwrap_or_default();
        let path = format!("/admin/messages?phone={}", lane.peer);
        let shown = admin_call(&sim.admin, "GET", &path, None).await?;
        let mut times: HashMap<&str, usize> = HashMap::new();
        for m in shown["messages"].as_array().into_iter().flatten() {
            *times
                .entry(m["id"].as_str().unwrap_or_default())
                .or_insert(0) += 1;
        }
        r.sent += out.len();
        for id in &out {
            match times.get(id.as_str()).copied().unwrap_or(0) {
                0 => r.lost += 1,
                n => {
                    r.delivered += 1;
                    r.duplicated += n - 1;
                }
            }
            if let Ok(Some(entry)) = pool.message(&lane.session, id).await
                && matches!(entry.status, OutStatus::Delivered | OutStatus::Read)
            {
                r.delivered_status += 1;
            }
        }
        let back = ids
            .get(&(lane.session.clone(), false))
            .cloned()
            .unwrap_or_default();
        let limit = u32::try_from(options.messages + 100).unwrap_or(u32::MAX);
        let kept = pool
            .messages(&lane.session, Direction::In, limit)
            .await
            .map_err(|e| e.to_string())?;
        let mut inbox: HashMap<String, usize> = HashMap::new();
        for k in kept {
            if let Kept::In(m) = k {
                *inbox.entry(m.id).or_insert(0) += 1;
            }
        }
        let reported = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .received
            .clone();
        r.sent_back += back.len();
        for id in &back {
            let stored = inbox.get(id).copied().unwrap_or(0);
            let events = reported.get(id).copied().unwrap_or(0) as usize;
            match stored.max(events) {
                0 => r.lost_back += 1,
                n => {
                    r.received += 1;
                    r.duplicated_back += n - 1;
                }
            }
        }
    }
    let stats = admin_call(&sim.admin, "GET", "/admin/stats", None).await?;
    r.resends_dropped_by_phone = stats["phone_duplicates"].as_u64().unwrap_or(0);
    let mut latencies: Vec<f64> = {
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.delivered_at
            .iter()
            .filter_map(|(id, done)| {
                let sent = seen.sent_at.get(id)?;
                Some(done.saturating_duration_since(*sent).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i.min(latencies.len() - 1)]
    };
    r.send_to_delivered_p50_ms = pick(0.50);
    r.send_to_delivered_p99_ms = pick(0.99);
    r.delivery_rate_percent = if r.sent == 0 {
        0.0
    } else {
        r.delivered as f64 * 100.0 / r.sent as f64
    };
    r.messages_per_second = (r.sent + r.sent_back) as f64 / seconds.max(0.001);
    Ok(r)
}
