//! The console wired to a live pool: logs into the console's ring (and the daily file, never
//! the terminal), statuses from the board into the UI loop, operator requests back to the
//! pool. `wasp` (tui) runs it on a config; `wasp demo` on the embedded simulator. When the
//! terminal hangs up (or the operator detaches with `D`) the pool keeps running headless, on
//! its local socket (and HTTP endpoint), until SIGTERM or SIGINT; `wasp attach` comes back.

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
use crate::ui::{self, Exit, LogRing, NodeLine, Order, PoolLink, PoolUpdate, Request, UiOptions};

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
    tx: mpsc::Sender<PoolUpdate>,
    cancel: CancellationToken,
    cluster: Option<Arc<dyn crate::net::gate::Remote>>,
) {
    // Clustered: the sessions this node runs carry its name in the owner column.
    let owned = |mut batch: Vec<Status>| {
        if let Some(cluster) = &cluster {
            for status in &mut batch {
                if cluster.is_local(&status.id) {
                    status.owner = Some(cluster.node().to_string());
                }
            }
        }
        batch
    };
    board.take_dirty();
    if tx
        .send(PoolUpdate::Fleet(owned(board.snapshot())))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = board.changed() => {}
        }
        let batch = board.take_dirty();
        if !batch.is_empty() && tx.send(PoolUpdate::Changed(owned(batch))).await.is_err() {
            return;
        }
    }
}

/// Clustered: every second, the sessions other nodes run (read from Redis), as rows whose
/// reason names the owner, so the table shows the whole fleet. Commands on them are forwarded.
async fn forward_fleet(
    cluster: Arc<dyn crate::net::gate::Remote>,
    tx: mpsc::Sender<PoolUpdate>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Ok(fleet) = cluster.fleet().await else {
            continue;
        };
        let (now, wall) = (std::time::Instant::now(), std::time::SystemTime::now());
        if tx
            .send(PoolUpdate::Nodes(node_lines(&fleet, wall)))
            .await
            .is_err()
        {
            return;
        }
        let batch: Vec<Status> = fleet
            .sessions
            .iter()
            .filter_map(|(_, shared)| shared.as_ref())
            .filter(|shared| shared.owner != fleet.node)
            .map(|shared| crate::cluster::view::remote_status(shared, now, wall))
            .collect();
        if !batch.is_empty() && tx.send(PoolUpdate::Changed(batch)).await.is_err() {
            return;
        }
    }
}

/// The live nodes for the console's header, heartbeat ages as of `wall`.
pub fn node_lines(
    fleet: &crate::net::gate::FleetView,
    wall: std::time::SystemTime,
) -> Vec<NodeLine> {
    let wall_ms = wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut lines: Vec<NodeLine> = fleet
        .nodes
        .iter()
        .map(|beat| NodeLine {
            node: beat.node.clone(),
            sessions: beat.sessions,
            heartbeat_age: Duration::from_millis(wall_ms.saturating_sub(beat.heartbeat_ms)),
            this: beat.node == fleet.node,
        })
        .collect();
    lines.sort_by(|a, b| a.node.cmp(&b.node));
    lines
}

/// Sends the console's requests to the pool, in order. A move's answer (or any refusal)
/// comes back to the console as one sentence. A message is queued through the same call the
/// HTTP API makes, after its stagger, beside the other requests.
async fn forward_requests(
    pool: PoolHandle,
    mut rx: mpsc::Receiver<Request>,
    tx: mpsc::Sender<PoolUpdate>,
    cancel: CancellationToken,
) {
    while let Some(req) = rx.recv().await {
        if let Order::PairCode { phone } = &req.order {
            // Waits for the QR refs and the server: beside the other requests.
            let (pool, tx, session, phone) =
                (pool.clone(), tx.clone(), req.session.clone(), phone.clone());
            tokio::spawn(async move {
                let update = match pool.pair_code(&session, &phone).await {
                    Ok(shown) => PoolUpdate::PairCode {
                        session,
                        code: shown.code,
                        expires_at: shown.expires_at,
                    },
                    Err(e) => PoolUpdate::Refused(format!("pair {session} by code: {e}")),
                };
                let _ = tx.send(update).await;
            });
            continue;
        }
        let answer = match &req.order {
            Order::Send { to, text, after } => {
                let (pool, tx, cancel) = (pool.clone(), tx.clone(), cancel.clone());
                let (session, to, text, after) = (req.session, to.clone(), text.clone(), *after);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(after) => {}
                    }
                    for update in send_message(&pool, &session, &to, &text).await {
                        if tx.send(update).await.is_err() {
                            return;
                        }
                    }
                });
                continue;
            }
            Order::Recent => {
                let lines = crate::message_feed::kept_lines(&pool, &req.session).await;
                if tx.send(PoolUpdate::Messages(lines)).await.is_err() {
                    return;
                }
                continue;
            }
            Order::Run(command) => pool
                .act(&req.session, *command)
                .await
                .map(|()| None)
                .map_err(|e| format!("{} {}: {e}", command.name(), req.session)),
            Order::Move { node } => match pool.cluster() {
                Some(cluster) => cluster
                    .move_to(req.session.clone(), node.clone())
                    .await
                    .map(|()| Some(format!("{}: move to {node} accepted", req.session)))
                    .map_err(|e| format!("move {} to {node}: {e}", req.session)),
                None => Err("moving needs [cluster]: this wasp runs alone".to_string()),
            },
            Order::PairCode { .. } => continue,
        };
        let update = match answer {
            Ok(None) => continue,
            Ok(Some(text)) => PoolUpdate::Answered(text),
            Err(text) => {
                tracing::warn!(session = %req.session, error = %text, "operator request refused");
                PoolUpdate::Refused(text)
            }
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}

/// Queues one message as `POST /sessions/{id}/messages` does: the line for the pane and the
/// answer, or the refusal in one sentence.
async fn send_message(pool: &PoolHandle, session: &str, to: &str, text: &str) -> Vec<PoolUpdate> {
    match pool.send(session, to, text, None).await {
        Ok(entry) => vec![
            PoolUpdate::Messages(vec![crate::message_feed::queued_line(session, &entry)]),
            PoolUpdate::Answered(format!(
                "{session}: message {} to {to} {}",
                entry.id,
                entry.status.as_str()
            )),
        ],
        Err(e) => {
            tracing::warn!(session, error = %e, "message from the console refused");
            vec![PoolUpdate::Refused(e.to_string())]
        }
    }
}

/// The in-process pool as the console sees it; the forwarders end with `cancel`.
pub fn local_link(pool: &PoolHandle, cancel: CancellationToken) -> PoolLink {
    let (update_tx, updates) = mpsc::channel(64);
    let (requests, request_rx) = mpsc::channel(256);
    tokio::spawn(forward_statuses(
        pool.board.clone(),
        update_tx.clone(),
        cancel.clone(),
        pool.cluster().cloned(),
    ));
    if let Some(cluster) = pool.cluster() {
        tokio::spawn(forward_fleet(
            cluster.clone(),
            update_tx.clone(),
            cancel.clone(),
        ));
    }
    tokio::spawn(crate::message_feed::forward_messages(
        pool.clone(),
        update_tx.clone(),
        cancel.clone(),
    ));
    tokio::spawn(forward_requests(
        pool.clone(),
        request_rx,
        update_tx,
        cancel,
    ));
    PoolLink { updates, requests }
}

/// Says where to attach (in the log file; on the terminal too when it is still there).
fn attach_hint(started: &runner::Started) -> String {
    let mut how = Vec::new();
    if let Some(socket) = &started.socket {
        how.push(format!("wasp attach {}", socket.path.display()));
    }
    if let Some(http) = &started.http {
        how.push(format!(
            "wasp attach http://{} --token-file FILE",
            http.addr
        ));
    }
    if how.is_empty() {
        "no endpoint to attach to (the local socket could not be served)".to_string()
    } else {
        how.join(" or ")
    }
}

/// After the console is gone: the pool runs on until SIGTERM or SIGINT (SIGHUP is ignored).
async fn run_detached(started: &runner::Started) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("could not install signal handlers: stopping the detached pool");
        return;
    };
    tracing::info!(
        pid = std::process::id(),
        "detached: the pool keeps running headless; attach with {}; SIGTERM stops it",
        attach_hint(started)
    );
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => tracing::info!("SIGHUP ignored: the pool runs detached"),
            _ = started.cancel.cancelled() => break,
        }
    }
    tracing::info!("stopping the detached pool: closing every session");
}

/// Runs the console on `config` until the operator quits; returns the exit code. A detached
/// console returns when the detached pool is stopped.
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
            return if e.is_config() { 2 } else { 1 };
        }
    };
    let pool = started.running.handle.clone();
    before_ui(&pool);
    let cancel = started.cancel.child_token();
    let link = local_link(&pool, cancel.clone());
    ui::install_panic_hook();
    let result = match ui::TerminalGuard::enter(options.mouse) {
        Ok(mut guard) => {
            let r = ui::run(guard.terminal(), link, ring, options, cancel.clone()).await;
            match r {
                // The terminal hung up: writing to it now could only fail or block.
                Ok(Exit::LostTerminal) => guard.abandon(),
                _ => drop(guard),
            }
            r
        }
        Err(e) => Err(e),
    };
    cancel.cancel();
    let code = match result {
        Ok(Exit::Quit) => 0,
        Ok(Exit::Detach) => {
            println!(
                "wasp: detached; the pool keeps running (pid {}). Attach with {}. \
                 Closing this terminal is safe; Ctrl-C or SIGTERM stops the pool.",
                std::process::id(),
                attach_hint(&started)
            );
            // The terminal stays; once it is closed, crossterm's reader must not spin on it.
            ui::quiet_stdin();
            run_detached(&started).await;
            0
        }
        Ok(Exit::LostTerminal) => {
            run_detached(&started).await;
            0
        }
        Err(e) => {
            eprintln!("wasp: {e}");
            1
        }
    };
    runner::stop(started).await;
    code
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
/// `faults`, scripted faults on random sessions every few seconds. With `sim_admin`, the
/// simulator's admin API on a free loopback port, its URL in `<data_dir>/sim-admin-url`.
pub async fn demo(sessions: u32, faults: bool, sim_admin: bool, options: UiOptions) -> u8 {
    let data_dir: PathBuf = std::env::temp_dir().join(format!("wasp-demo-{}", std::process::id()));
    let ring = LogRing::new(LOG_LINES);
    let _guard = install_logging(&ring, &data_dir);
    let plan = faults.then(|| FaultPlan::demo(rand::random(), Duration::from_secs(4)));
    let sim = match Server::start(SimConfig {
        admin: sim_admin.then(|| SocketAddr::from(([127, 0, 0, 1], 0))),
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
    if let Some(url) = &sim.admin_url {
        let written = std::fs::create_dir_all(&data_dir)
            .and_then(|()| std::fs::write(data_dir.join("sim-admin-url"), url));
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write the simulator's admin URL");
        }
    }
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
        tokio::spawn(runner::code_phone(
            pool.clone(),
            sim2.clone(),
            3,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::gate::{FleetView, NodeBeat};

    #[test]
    fn node_lines_are_sorted_with_heartbeat_ages_and_this_node_marked() {
        let wall = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let beat = |node: &str, sessions, heartbeat_ms| NodeBeat {
            node: node.to_string(),
            sessions,
            heartbeat_ms,
        };
        let fleet = FleetView {
            node: "node-a".to_string(),
            nodes: vec![beat("node-b", 3, 996_000), beat("node-a", 5, 1_000_500)],
            sessions: Vec::new(),
        };
        let lines = node_lines(&fleet, wall);
        let names: Vec<&str> = lines.iter().map(|l| l.node.as_str()).collect();
        assert_eq!(names, ["node-a", "node-b"]);
        assert!(lines[0].this && !lines[1].this);
        // A heartbeat written after `wall` (clock skew) is zero seconds old.
        assert_eq!(lines[0].heartbeat_age, Duration::ZERO);
        assert_eq!(lines[1].heartbeat_age, Duration::from_secs(4));
        assert_eq!(lines[1].sessions, 3);
    }
}
