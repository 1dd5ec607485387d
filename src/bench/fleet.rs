//! The pool benchmarks' fleet: `wasp sim` as a child process (optionally `--tls`), and N
//! sessions paired against it by a second child, `wasp bench prepare`, whose pool pairs every
//! session through the simulator's admin API (the phone scanning each QR), waits for their
//! pre-keys, stops, and leaves the credentials on disk. The measuring process then starts its
//! own pool on that data directory: nothing of the pairing is in its memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::StreamExt;
use serde_json::json;

use super::child::{Sim, admin_call, executable, proc_usage, start_sim_with};
use crate::config::{Config, SessionConfig};
use crate::net::board::StatusBoard;
use crate::runner;
use crate::session::policy::Policy;
use crate::session::status::{StateName, Status};

/// How long pairing may take per session before the fleet is given up (plus a minute).
const PAIR_BUDGET_PER_SESSION: Duration = Duration::from_millis(250);

/// Sessions one `wasp bench prepare` pairs; a larger fleet is paired by several, one after
/// another. 10,000 pairing at once in one child fell behind on their acks (the strict
/// simulator then ended their streams over and over); a wave of 2,000 took about a minute
/// (10,000 in five waves, about five minutes, on the 2-core machine).
const PAIR_WAVE: usize = 2000;

/// What fleet to build.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub sessions: usize,
    /// Serve and dial `wss://` (the simulator's CA in `[server] ca_file`).
    pub tls: bool,
    /// The `wasp` executable for the children (this one when `None`).
    pub exe: Option<PathBuf>,
}

/// A simulator child with N paired sessions on disk; both go away when dropped.
pub struct Fleet {
    pub(super) sim: Sim,
    pub(super) dir: PathBuf,
    pub(super) ids: Vec<String>,
    ca_certs: Vec<Vec<u8>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `n` fleet ids from the `first`th on: `b00000`, `b00001`, ...
fn ids_from(first: usize, n: usize) -> Vec<String> {
    (first..first + n).map(|i| format!("b{i:05}")).collect()
}

impl Fleet {
    /// Starts the simulator and has `wasp bench prepare` pair every session, at most
    /// `PAIR_WAVE` at a time.
    pub async fn build(options: &FleetOptions) -> Result<Fleet, String> {
        Self::build_in_waves(options, PAIR_WAVE).await
    }

    /// `build`, pairing at most `wave` sessions at a time (each wave a `wasp bench prepare`).
    pub async fn build_in_waves(options: &FleetOptions, wave: usize) -> Result<Fleet, String> {
        let dir = std::env::temp_dir().join(format!(
            "wasp-bench-fleet-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot make the directory {}: {e}", dir.display()))?;
        let ca = options.tls.then(|| dir.join("sim-ca.pem"));
        let sim = start_sim_with(options.exe.as_deref(), ca.as_deref())?;
        let ca_certs = match &sim.ca_file {
            Some(file) => std::fs::read(file)
                .map_err(|e| e.to_string())
                .and_then(|pem| crate::net::tls::ca_certificates(&pem).map_err(|e| e.to_string()))
                .map_err(|e| format!("the simulator's CA {}: {e}", file.display()))?,
            None => Vec::new(),
        };
        let fleet = Fleet {
            sim,
            dir,
            ids: ids_from(0, options.sessions),
            ca_certs,
        };
        let wave = wave.max(1);
        for first in (0..options.sessions).step_by(wave) {
            let count = wave.min(options.sessions - first);
            fleet.prepare(options.exe.as_deref(), first, count).await?;
        }
        Ok(fleet)
    }

    /// Runs `wasp bench prepare` for the `count` sessions from the `first`th on.
    async fn prepare(&self, exe: Option<&Path>, first: usize, count: usize) -> Result<(), String> {
        let mut command = Command::new(executable(exe)?);
        command
            .args(["bench", "prepare", "--first"])
            .arg(first.to_string())
            .arg("--sessions")
            .arg(count.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--ws-url")
            .arg(&self.sim.target.ws_url)
            .arg("--admin")
            .arg(&self.sim.admin)
            .arg("--trust-root")
            .arg(base64::engine::general_purpose::STANDARD.encode(self.sim.target.trust.0));
        if let Some(ca) = &self.sim.ca_file {
            command.arg("--ca-file").arg(ca);
        }
        // Its report line is not ours to print; its errors go to our stderr.
        command.stdout(std::process::Stdio::null());
        let status = tokio::task::spawn_blocking(move || command.status())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot start wasp bench prepare: {e}"))?;
        if !status.success() {
            return Err(format!("wasp bench prepare failed ({status})"));
        }
        Ok(())
    }

    /// The pool on this fleet, started with connect limits `limits` (rate, burst).
    pub async fn start(&self, limits: (u32, u32)) -> Result<crate::runner::Started, String> {
        crate::runner::start(&self.config(limits), None)
            .await
            .map_err(|e| e.to_string())
    }

    /// The pool's config: every session autostarts with the default policy; `limits` is
    /// (connects per second, burst).
    pub fn config(&self, limits: (u32, u32)) -> Config {
        let mut config = pool_config(
            &self.sim.target.ws_url,
            self.sim.target.trust.0,
            &self.dir,
            &self.ids,
        );
        config.server.ca_certs = self.ca_certs.clone();
        config.server.ca_file = self.sim.ca_file.clone();
        (
            config.limits.connects_per_second,
            config.limits.connect_burst,
        ) = limits;
        config
    }

    /// The simulator's process id.
    pub fn sim_pid(&self) -> u32 {
        self.sim.child.id()
    }

    /// The simulator's statistics (`/admin/stats`).
    pub async fn stats(&self) -> Result<serde_json::Value, String> {
        admin_call(&self.sim.admin, "GET", "/admin/stats", None).await
    }

    /// Drops every live connection at once (the simulator's `*` fault).
    pub async fn drop_all(&self) -> Result<u64, String> {
        let body = json!({ "device": "*", "kind": "drop" });
        let answer = admin_call(&self.sim.admin, "POST", "/admin/fault", Some(&body)).await?;
        Ok(answer["connections"].as_u64().unwrap_or(0))
    }
}

fn pool_config(url: &str, trust: [u8; 32], dir: &Path, ids: &[String]) -> Config {
    let mut config = Config::default();
    config.server.url = url.to_string();
    config.server.trust_root = Some(trust);
    config.storage.data_dir = dir.join("data");
    config.limits.max_sessions = config.limits.max_sessions.max(ids.len() as u32);
    config.sessions = ids
        .iter()
        .map(|id| {
            let mut s = SessionConfig::new(id.clone(), Policy::default());
            s.autostart = true;
            s
        })
        .collect();
    config
}

/// The options of the hidden `wasp bench prepare` (run by `Fleet::build`).
#[derive(Debug, Clone, clap::Args)]
pub struct PrepareArgs {
    /// The fleet index of the first session this run pairs.
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    #[arg(long)]
    pub sessions: usize,
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub ws_url: String,
    #[arg(long)]
    pub admin: String,
    #[arg(long)]
    pub trust_root: String,
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// `wasp bench prepare`: pairs every session of the fleet and stops with them on disk.
pub(super) async fn prepare(args: &PrepareArgs) -> Result<serde_json::Value, String> {
    let trust: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(&args.trust_root)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("--trust-root is not a base64 32-byte key")?;
    let ids = ids_from(args.first, args.sessions);
    let mut config = pool_config(&args.ws_url, trust, &args.dir, &ids);
    if let Some(file) = &args.ca_file {
        let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        config.server.ca_certs = crate::net::tls::ca_certificates(&pem)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    (
        config.limits.connects_per_second,
        config.limits.connect_burst,
    ) = (1000, 1000);
    let started = Instant::now();
    let running = runner::start(&config, None)
        .await
        .map_err(|e| e.to_string())?;
    let board = running.running.handle.board.clone();
    let metrics = running.running.handle.metrics.clone();
    let budget = Duration::from_secs(60) + PAIR_BUDGET_PER_SESSION * args.sessions as u32;
    let outcome = async {
        scan_all(&running.running.handle, &args.admin, args.sessions, budget).await?;
        let keys = u64::from(crate::wa::prekey::INITIAL_BATCH) * args.sessions as u64;
        let deadline = Instant::now() + budget;
        while online(&board) < args.sessions || metrics.prekeys_uploaded.get() < keys {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {} sessions came online with their pre-keys",
                    online(&board),
                    args.sessions
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
    .await;
    runner::stop(running).await;
    outcome?;
    Ok(json!({
        "bench": "prepare",
        "sessions": args.sessions,
        "seconds": started.elapsed().as_secs_f64(),
        "rss_kib": proc_usage(std::process::id()).map(|u| u.0),
    }))
}

/// The phone scans every QR the pool shows, 16 at a time, until every session is paired. A
/// session whose QR codes all expired before the phone got to it (thousands pairing at once)
/// is stopped by the pool; it is started again, to show new ones.
async fn scan_all(
    handle: &crate::net::handle::PoolHandle,
    admin: &str,
    n: usize,
    budget: Duration,
) -> Result<(), String> {
    let board: &StatusBoard = &handle.board;
    let deadline = Instant::now() + budget;
    let mut scanned = std::collections::HashSet::new();
    while scanned.len() < n {
        if Instant::now() > deadline {
            return Err(format!("only {} of {n} sessions paired", scanned.len()));
        }
        // Looked at in place: copying every status each pass starved this process at 10,000
        // sessions (its acks fell behind and the strict simulator ended their streams).
        let todo: Vec<(String, String)> = board.pick(|s| {
            if scanned.contains(&s.id) {
                return None;
            }
            s.qr()
                .map(|qr| (s.id.clone(), qr.text.as_str().to_string()))
        });
        let done: Vec<Option<String>> = futures::stream::iter(todo)
            .map(|(id, qr)| async move {
                let body = json!({ "qr": qr });
                admin_call(admin, "POST", "/admin/scan", Some(&body))
                    .await
                    .ok()
                    .map(|_| id)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        scanned.extend(done.into_iter().flatten());
        let timed_out = crate::session::reason::StopReason::PairingTimedOut.to_string();
        let expired: Vec<String> = board.pick(|s| {
            (!scanned.contains(&s.id) && s.state() == StateName::Stopped && s.reason == timed_out)
                .then(|| s.id.clone())
        });
        for id in expired {
            handle
                .act(&id, crate::session::command::Command::Pair)
                .await
                .map_err(|e| format!("cannot pair {id} again: {e}"))?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Sessions online (and paired), counted in place on the board.
pub(super) fn online(board: &StatusBoard) -> usize {
    board.count(|s| s.state() == StateName::Online && s.account.paired)
}

/// Waits (following the board's changes) until `done` holds for the snapshot or `within` passed.
pub(super) async fn until(
    board: &StatusBoard,
    within: Duration,
    what: &str,
    mut done: impl FnMut(&StatusBoard) -> bool,
) -> Result<Vec<Status>, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut changes = board.watch();
    loop {
        changes.borrow_and_update();
        // Asked in place; the statuses are copied once, when it holds.
        if done(board) {
            return Ok(board.snapshot());
        }
        // A change, or a look every 100 ms whatever happens.
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
        // Let a burst of publishes land before the next look.
        tokio::time::sleep(Duration::from_millis(10)).await;
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{what} did not happen within {within:?}"));
        }
    }
}

/// The q-quantile of sorted values (0 when empty).
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
