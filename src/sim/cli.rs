//! `wasp sim`: the simulator alone. Prints one JSON line once ready, runs until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{Server, SimConfig, Strictness};

/// How long `wasp sim` waits for its connections to close after a signal.
const STOP_BUDGET: Duration = Duration::from_secs(3);

/// The ready line.
#[derive(serde::Serialize)]
struct Ready<'a> {
    ws_url: &'a str,
    admin_url: Option<&'a str>,
    trust_root: String,
}

/// Runs the simulator until a signal; returns the process exit code (0 after a signal,
/// 1 when it could not start).
pub async fn run(
    listen: SocketAddr,
    admin: SocketAddr,
    state: Option<PathBuf>,
    strict: Strictness,
) -> u8 {
    // Handlers first: a signal sent as soon as the ready line is read must stop us cleanly.
    let signals = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("wasp sim: cannot listen for signals: {e}");
            return 1;
        }
    };
    let config = SimConfig {
        listen,
        admin: Some(admin),
        state_file: state,
        fault_plan: None,
        strict,
    };
    let handle = match Server::start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("wasp sim: {e}");
            return 1;
        }
    };
    let ready = Ready {
        ws_url: &handle.ws_url,
        admin_url: handle.admin_url.as_deref(),
        trust_root: handle.trust_root_base64(),
    };
    match serde_json::to_string(&ready) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("wasp sim: {e}");
            return 1;
        }
    }
    wait_for(signals).await;
    handle.shutdown();
    // Connections close at once; an admin request in flight gets a moment to finish.
    let _ = tokio::time::timeout(STOP_BUDGET, handle.stopped()).await;
    0
}

async fn wait_for((mut term, mut int): (Signal, Signal)) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
