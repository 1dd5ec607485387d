//! The console wired to a live pool: logs into the console's ring (and the daily file, never
//! the terminal), statuses from the board into the UI loop, operator requests back to the
//! pool. `wasp` (tui) runs it on a config; `wasp demo` on the embedded simulator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, SessionConfig};
use crate::net::board::StatusBoard;
use crate::net::handle::PoolHandle;
use crate::runner;
use crate::session::status::Status;
use crate::sim::{FaultPlan, Server, SimConfig};
use crate::ui::{self, LogRing, Request, UiOptions};

/// Lines the console's log pane keeps.
const LOG_LINES: usize = 10_000;

/// Logs go to the console's ring, the daily file and the live feed; nothing to the terminal.
fn install_logging(ring: &LogRing, data_dir: &Path) -> Option<crate::logging::LogGuard> {
    crate::logging::init_file_logging(data_dir, "info", ring.layer())
        .ok()
        .flatten()
}

/// Feeds the UI: the whole board once, then each coalesced batch of changes. The channel is
/// bounded; while it is full, changes keep coalescing on the board.
async fn forward_statuses(
    board: Arc<StatusBoard>,
    tx: mpsc::Sender<Vec<Status>>,
    cancel: CancellationToken,
) {
    board.take_dirty();
    if tx.send(board.snapshot()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = board.changed() => {}
        }
        let batch = board.take_dirty();
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return;
        }
    }
}

/// Sends the console's requests to the pool, in order.
async fn forward_requests(pool: PoolHandle, mut rx: mpsc::Receiver<Request>) {
    while let Some(req) = rx.recv().await {
        if let Err(e) = pool.act(&req.session, req.command).await {
            tracing::warn!(session = %req.session, error = %e, "operator command refused");
        }
    }
}

/// Runs the console on `config` until the operator quits; returns the exit code.
async fn console(
    config: &Config,
    http: Option<SocketAddr>,
    options: UiOptions,
    ring: LogRing,
    before_ui: impl FnOnce(&PoolHandle),
) -> u8 {
    let started = match runner::start(config, http).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasp: {e}");
            return 1;
        }
    };
    let pool = started.running.handle.clone();
    before_ui(&pool);
    let cancel = started.cancel.child_token();
    let (status_tx, status_rx) = mpsc::channel(64);
    let (request_tx, request_rx) = mpsc::channel(256);
    tokio::spawn(forward_statuses(
        pool.board.clone(),
        status_tx,
        cancel.clone(),
    ));
    tokio::spawn(forward_requests(pool.clone(), request_rx));
    ui::install_panic_hook();
    let result = match ui::TerminalGuard::enter(options.mouse) {
        Ok(mut guard) => {
            let r = ui::run(
                guard.terminal(),
                status_rx,
                request_tx,
                ring,
                options,
                cancel.clone(),
            )
            .await;
            drop(guard);
            r
        }
        Err(e) => Err(e),
    };
    cancel.cancel();
    runner::stop(started).await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("wasp: {e}");
            1
        }
    }
}

/// `wasp [tui]`: the console on a config file.
pub async fn tui(path: &Path, http: Option<SocketAddr>, options: UiOptions) -> u8 {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for line in errors.lines() {
                eprintln!("{line}");
            }
            return 2;
        }
    };
    let ring = LogRing::new(LOG_LINES);
    let _guard = install_logging(&ring, &config.storage.data_dir);
    console(&config, http, options, ring, |_| {}).await
}

/// `wasp demo`: the console on the embedded simulator with a virtual phone and, with
/// `faults`, scripted faults on random sessions every few seconds.
pub async fn demo(sessions: u32, faults: bool, options: UiOptions) -> u8 {
    let data_dir: PathBuf = std::env::temp_dir().join(format!("wasp-demo-{}", std::process::id()));
    let ring = LogRing::new(LOG_LINES);
    let _guard = install_logging(&ring, &data_dir);
    let plan = faults.then(|| FaultPlan::demo(rand::random(), Duration::from_secs(4)));
    let sim = match Server::start(SimConfig {
        fault_plan: plan,
        ..SimConfig::default()
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasp demo: the simulator could not start: {e}");
            return 1;
        }
    };
    let mut config = Config::default();
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = data_dir.clone();
    config.sessions = (1..=sessions)
        .map(|i| {
            let mut s = SessionConfig::new(format!("demo-{i:02}"), config.policy.clone());
            s.label = format!("Demo line {i}");
            s.autostart = true;
            s
        })
        .collect();
    let phone = CancellationToken::new();
    let (sim2, phone2) = (sim.clone(), phone.clone());
    let code = console(&config, None, options, ring, move |pool| {
        tokio::spawn(runner::virtual_phone(
            pool.board.clone(),
            sim2.clone(),
            Duration::from_secs(3),
            Duration::from_secs(8),
            phone2.clone(),
        ));
        tokio::spawn(runner::demo_chatter(
            pool.clone(),
            sim2,
            Duration::from_secs(3),
            phone2,
        ));
    })
    .await;
    phone.cancel();
    sim.shutdown();
    let _ = std::fs::remove_dir_all(&data_dir);
    code
}
