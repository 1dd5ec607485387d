//! `wasp bench soak --sessions N --duration D --fault-rate F --seed S [--json]`: wasp's real
//! pool against the in-process simulator under its seeded random fault plan of recoverable
//! kinds (drop, end, stall, 515, 503), F faults per session per hour on average.
//!
//! Everything is measured from the simulator's side, sampled every 100 ms: a device is up
//! while it is logged in on a connection that still answers (a stalled one does not).
//! Reported: uptime, disconnections per hour, reconnect p50/p99 (down to up again) and
//! relogin p50/p99 (the link gone to up again, without the stall before it), stall
//! detection p99 (stall until the simulator sees the connection gone, and from the first ping
//! the stalled connection left unanswered until then: at most `keepalive_deadline` plus the
//! time to close), per-device peak of
//! simultaneous logins, conflicts (the plan sends none, so every one is caused by wasp),
//! credentials lost (devices not logged in again once the plan stops), RSS drift and the
//! tokio task count before and after. Sim and pool share this process, so RSS is both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SessionConfig};
use crate::net::pool;
use crate::session::policy::Policy;
use crate::session::status::StateName;
use crate::sim::stats::Stats;
use crate::sim::{Fault, FaultPlan, Handle, Server, SimConfig};
use crate::store::FileStore;

/// What a soak run does.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub sessions: usize,
    pub duration: Duration,
    /// Faults per session per hour, on average.
    pub fault_rate: f64,
    pub seed: u64,
    pub policy: Policy,
}

/// The figures of one soak run.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub sessions: usize,
    pub duration_s: f64,
    pub fault_rate_per_session_hour: f64,
    pub seed: u64,
    pub faults_applied: u64,
    pub faults_by_kind: std::collections::BTreeMap<String, u64>,
    pub uptime_pct: f64,
    pub disconnections: u64,
    pub disconnections_per_hour: f64,
    pub reconnect_p50_ms: u64,
    pub reconnect_p99_ms: u64,
    /// From the link gone (dropped, ended, or closed by wasp after a stall) to logged in
    /// again: the reconnect itself, without the stall before it was detected.
    pub relogin_p50_ms: u64,
    pub relogin_p99_ms: u64,
    pub stalls_seen: usize,
    pub stall_detect_p99_ms: u64,
    /// From the first unanswered ping of a stalled connection until it is gone.
    pub stall_detect_after_ping_p99_ms: u64,
    pub peak_logins_per_device: u32,
    pub conflicts: u64,
    pub credentials_lost: usize,
    pub rss_kib_start: u64,
    pub rss_kib_end: u64,
    pub rss_drift_pct: f64,
    pub tasks_start: usize,
    pub tasks_end: usize,
}

impl SoakReport {
    /// One line per figure, for people.
    pub fn text(&self) -> String {
        format!(
            "soak: {} sessions, {:.0} s, {} faults/session/hour, seed {}\n\
             faults applied       {} {:?}\n\
             uptime               {:.2} %\n\
             disconnections       {} ({:.0}/hour)\n\
             reconnect p50 / p99  {} ms / {} ms (down to up, stalls included)\n\
             relogin p50 / p99    {} ms / {} ms (link gone to up)\n\
             stall detection p99  {} ms ({} stalls), {} ms after the missed ping\n\
             peak logins/device   {}\n\
             conflicts (by wasp)  {}\n\
             credentials lost     {}\n\
             RSS                  {} KiB -> {} KiB ({:+.1} %)\n\
             tokio tasks          {} -> {}",
            self.sessions,
            self.duration_s,
            self.fault_rate_per_session_hour,
            self.seed,
            self.faults_applied,
            self.faults_by_kind,
            self.uptime_pct,
            self.disconnections,
            self.disconnections_per_hour,
            self.reconnect_p50_ms,
            self.reconnect_p99_ms,
            self.relogin_p50_ms,
            self.relogin_p99_ms,
            self.stall_detect_p99_ms,
            self.stalls_seen,
            self.stall_detect_after_ping_p99_ms,
            self.peak_logins_per_device,
            self.conflicts,
            self.credentials_lost,
            self.rss_kib_start,
            self.rss_kib_end,
            self.rss_drift_pct,
            self.tasks_start,
            self.tasks_end,
        )
    }
}

/// The options of `wasp bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How many sessions.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sessions: u64,
    /// How long the fault plan runs: 90, 90s, 10m or 1h.
    #[arg(long, value_name = "D", default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Faults per session per hour, on average.
    #[arg(long, value_name = "F", default_value_t = 6.0, value_parser = parse_rate)]
    pub fault_rate: f64,
    /// The fault plan's seed.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `wasp bench soak`; returns the exit code.
pub(super) async fn run(args: &SoakArgs) -> u8 {
    let options = SoakOptions {
        sessions: args.sessions as usize,
        duration: args.duration,
        fault_rate: args.fault_rate,
        seed: args.seed,
        policy: Policy::default(),
    };
    let json = args.json;
    match soak(&options).await {
        Ok(report) if json => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            0
        }
        Ok(report) => {
            println!("{}", report.text());
            0
        }
        Err(e) => {
            eprintln!("wasp bench soak: {e}");
            1
        }
    }
}

/// `90`, `90s`, `10m` or `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    duration(text).ok_or_else(|| format!("{text:?} is not a duration like 90, 90s, 10m or 1h"))
}

/// A fault rate: a finite number, zero or more.
fn parse_rate(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| {
            format!("{text:?} is not a rate of zero or more faults per session per hour")
        })
}

fn duration(text: &str) -> Option<Duration> {
    let (number, unit) = match text.char_indices().last()? {
        (i, 's') => (&text[..i], 1),
        (i, 'm') => (&text[..i], 60),
        (i, 'h') => (&text[..i], 3600),
        _ => (text, 1),
    };
    number
        .parse::<u64>()
        .ok()
        .map(|n| Duration::from_secs(n * unit))
}

/// The recoverable kinds of the plan.
fn plan(options: &SoakOptions) -> FaultPlan {
    let faults_per_second = options.fault_rate * options.sessions as f64 / 3600.0;
    let every = if faults_per_second > 0.0 {
        Duration::from_secs_f64((1.0 / faults_per_second).min(86_400.0))
    } else {
        Duration::from_secs(86_400)
    };
    FaultPlan {
        every,
        kinds: vec![
            Fault::Drop,
            Fault::End,
            Fault::Stall,
            Fault::Restart,
            Fault::StreamError(503),
        ],
        seed: options.seed,
    }
}

/// Runs one soak: pairs every session, runs the plan for the duration, stops it and waits
/// for every device to come back.
pub async fn soak(options: &SoakOptions) -> Result<SoakReport, String> {
    let sim = Server::start(SimConfig::default())
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let dir = std::env::temp_dir().join(format!("wasp-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot make the data directory {}: {e}", dir.display()))?;
    let config = pool_config(&sim, &dir, options);
    let store = Arc::new(FileStore::new(&config.storage.data_dir));
    let cancel = CancellationToken::new();
    let running = pool::start(
        &config,
        crate::runner::endpoint(&config),
        store,
        cancel.clone(),
    );
    let result = measure(&sim, &running, options).await;
    running.handle.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(30), running.task).await;
    cancel.cancel();
    sim.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn pool_config(sim: &Handle, dir: &std::path::Path, options: &SoakOptions) -> Config {
    let mut config = Config::default();
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = dir.to_path_buf();
    config.policy = options.policy.clone();
    config.limits.connects_per_second = 50;
    config.limits.connect_burst = 50;
    config.sessions = (0..options.sessions)
        .map(|i| {
            let mut s = SessionConfig::new(format!("soak{i:04}"), options.policy.clone());
            s.autostart = true;
            s
        })
        .collect();
    config
}

/// Devices logged in on a connection that answers.
fn up_devices(stats: &Stats) -> impl Iterator<Item = (&String, bool)> {
    stats
        .devices
        .iter()
        .map(|(jid, d)| (jid, d.concurrent > d.stalled))
}

async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not happen within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn measure(
    sim: &Handle,
    running: &pool::Running,
    options: &SoakOptions,
) -> Result<SoakReport, String> {
    let n = options.sessions;
    let board = running.handle.board.clone();
    let phone = CancellationToken::new();
    tokio::spawn(crate::runner::virtual_phone(
        board.clone(),
        sim.clone(),
        Duration::from_millis(10),
        Duration::from_millis(50),
        phone.clone(),
    ));
    let ready = Duration::from_secs(60) + Duration::from_millis(500) * n as u32;
    let all_up = || {
        let stats = sim.stats();
        stats.devices.len() == n && up_devices(&stats).all(|(_, up)| up)
    };
    let paired = until("pairing every session", ready, all_up).await;
    phone.cancel();
    paired?;
    // The baseline is the settled fleet: each new device uploads its first pre-keys after it
    // logs in, and the simulator (in this process) keeps them; measured before they land, that
    // growth was counted as drift.
    let keys = u64::from(crate::wa::prekey::INITIAL_BATCH) * n as u64;
    let metrics = running.handle.metrics.clone();
    until("the first pre-keys uploaded", ready, || {
        metrics.prekeys_uploaded.get() >= keys
    })
    .await?;
    let devices: Vec<String> = sim.devices();
    let rss_start = rss_kib();
    let tasks_start = alive_tasks();
    let logins_start = sim.stats().logins;
    let faults_before = sim.stats().faults;
    sim.start_plan(plan(options));
    let started = Instant::now();
    let mut down_since: HashMap<String, Instant> = HashMap::new();
    let mut stalled_since: HashMap<String, Instant> = HashMap::new();
    let mut reconnects = Vec::new();
    // From the link gone (not merely stalled) to logged in again.
    let mut gone_since: HashMap<String, Instant> = HashMap::new();
    let mut relogins = Vec::new();
    let mut stall_detect = Vec::new();
    // Each device's unanswered pings at the last sample, and when a stalled one first missed.
    let mut pinged: HashMap<String, (u64, Option<Instant>)> = HashMap::new();
    let mut after_ping = Vec::new();
    let (mut up_samples, mut samples) = (0u64, 0u64);
    let mut disconnections = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < options.duration {
        tick.tick().await;
        let stats = sim.stats();
        let now = Instant::now();
        for jid in &devices {
            let d = stats.devices.get(jid);
            let up = d.is_some_and(|d| d.concurrent > d.stalled);
            samples += 1;
            if up {
                up_samples += 1;
                if let Some(since) = down_since.remove(jid) {
                    reconnects.push(now - since);
                }
            } else if !down_since.contains_key(jid) {
                down_since.insert(jid.clone(), now);
                disconnections += 1;
            }
            let stalled = d.is_some_and(|d| d.stalled > 0);
            if up {
                if let Some(since) = gone_since.remove(jid) {
                    relogins.push(now - since);
                }
            } else if !stalled {
                gone_since.entry(jid.clone()).or_insert(now);
            }
            let unanswered = d.map_or(0, |d| d.pings_unanswered);
            let seen = pinged.entry(jid.clone()).or_insert((unanswered, None));
            let missed_now = unanswered > seen.0;
            seen.0 = unanswered;
            if stalled {
                stalled_since.entry(jid.clone()).or_insert(now);
                if missed_now && seen.1.is_none() {
                    seen.1 = Some(now);
                }
            } else {
                if let Some(since) = stalled_since.remove(jid) {
                    stall_detect.push(now - since);
                }
                if let Some(first) = seen.1.take() {
                    after_ping.push(now - first);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    sim.stop_plan();
    // Each login in the window ended a disconnection (some too short to be sampled), and
    // the devices down at the end had one more each.
    let disconnections =
        (sim.stats().logins - logins_start + down_since.len() as u64).max(disconnections);
    let mut faults_by_kind = sim.stats().faults;
    for (kind, count) in &mut faults_by_kind {
        *count -= faults_before.get(kind).copied().unwrap_or(0);
    }
    let faults_applied = faults_by_kind.values().sum::<u64>();
    // Every device not logged out by a fault logs in again: those that do not are lost.
    let _ = until("every device back", Duration::from_secs(180), all_up).await;
    let stats = sim.stats();
    let back = up_devices(&stats).filter(|(_, up)| *up).count();
    let online = board
        .snapshot()
        .iter()
        .filter(|s| s.state() == StateName::Online)
        .count();
    let credentials_lost = n - back.min(online).min(n);
    // Tasks of connections that ended wind down; give them a moment.
    let _ = until("tasks back to their count", Duration::from_secs(10), || {
        alive_tasks() <= tasks_start
    })
    .await;
    let rss_end = rss_kib();
    let tasks_end = alive_tasks();
    let hours = elapsed.as_secs_f64() / 3600.0;
    reconnects.sort();
    relogins.sort();
    stall_detect.sort();
    after_ping.sort();
    Ok(SoakReport {
        sessions: n,
        duration_s: elapsed.as_secs_f64(),
        fault_rate_per_session_hour: options.fault_rate,
        seed: options.seed,
        faults_applied,
        faults_by_kind,
        uptime_pct: up_samples as f64 * 100.0 / samples.max(1) as f64,
        disconnections,
        disconnections_per_hour: disconnections as f64 / hours.max(1e-9),
        reconnect_p50_ms: percentile_ms(&reconnects, 50),
        reconnect_p99_ms: percentile_ms(&reconnects, 99),
        relogin_p50_ms: percentile_ms(&relogins, 50),
        relogin_p99_ms: percentile_ms(&relogins, 99),
        stalls_seen: stall_detect.len(),
        stall_detect_p99_ms: percentile_ms(&stall_detect, 99),
        stall_detect_after_ping_p99_ms: percentile_ms(&after_ping, 99),
        peak_logins_per_device: stats.max_concurrent_per_device,
        conflicts: stats.devices.values().map(|d| d.conflicts_sent).sum(),
        credentials_lost,
        rss_kib_start: rss_start,
        rss_kib_end: rss_end,
        rss_drift_pct: (rss_end as f64 - rss_start as f64) * 100.0 / rss_start.max(1) as f64,
        tasks_start,
        tasks_end,
    })
}

fn percentile_ms(sorted: &[Duration], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i].as_millis() as u64
}

/// This process's resident set in KiB (0 when /proc cannot be read).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentiles() {
        assert_eq!(duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(duration("x"), None);
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let values = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile_ms(&values, 50), 50);
        assert_eq!(percentile_ms(&values, 99), 99);
        assert_eq!(percentile_ms(&[], 99), 0);
    }

    #[test]
    fn the_plan_matches_the_rate() {
        let options = SoakOptions {
            sessions: 300,
            duration: Duration::from_secs(600),
            fault_rate: 6.0,
            seed: 1,
            policy: Policy::default(),
        };
        let plan = plan(&options);
        assert_eq!(plan.every, Duration::from_secs(2));
        assert_eq!(plan.kinds.len(), 5);
    }
}
