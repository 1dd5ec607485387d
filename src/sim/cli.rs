//! `wasp sim`: the simulator alone. Prints one JSON line once ready, runs until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Server, SimConfig};

/// How long `wasp sim` waits for its connections to close after a signal.
const STOP_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs the simulator until a signal; returns the process exit code.
pub async fn run(listen: SocketAddr, admin: SocketAddr, state: Option<PathBuf>) -> u8 {
    let config = SimConfig {
        listen,
        admin: Some(admin),
        state_file: state,
        fault_plan: None,
    };
    let handle = match Server::start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("wasp sim: {e}");
            return 1;
        }
    };
    #[derive(serde::Serialize)]
    struct Ready<'a> {
        ws_url: &'a str,
        admin_url: Option<&'a str>,
        trust_root: String,
    }
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
    wait_for_signal().await;
    handle.shutdown();
    // Connections close at once; an admin request in flight gets a moment to finish.
    let _ = tokio::time::timeout(STOP_BUDGET, handle.stopped()).await;
    0
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until the process is killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
