//! `wasp sim`: the simulator alone. Prints one JSON line once ready, runs until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::tls::SimTls;
use super::{Server, SimConfig, Strictness};

/// How long `wasp sim` waits for its connections to close after a signal.
const STOP_BUDGET: Duration = Duration::from_secs(3);

/// The ready line.
#[derive(serde::Serialize)]
struct Ready<'a> {
    ws_url: &'a str,
    admin_url: Option<&'a str>,
    trust_root: String,
    /// With `--tls`: the CA's PEM file a client names in `[server] ca_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
}

/// Runs the simulator until a signal; returns the process exit code (0 after a signal,
/// 1 when it could not start). With `tls_ca` it serves `wss://` with a certificate made at
/// start and writes its CA's PEM to that file.
pub async fn run(
    listen: SocketAddr,
    admin: SocketAddr,
    state: Option<PathBuf>,
    strict: Strictness,
    tls_ca: Option<PathBuf>,
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
    let tls = match tls_ca.as_deref().map(make_tls).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("wasp sim: {e}");
            return 1;
        }
    };
    let config = SimConfig {
        listen,
        admin: Some(admin),
        state_file: state,
        fault_plan: None,
        strict,
        tls,
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
        ca_file: tls_ca.as_ref().map(|p| p.display().to_string()),
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

/// A fresh CA and server certificate; the CA's PEM goes to `ca_file`.
fn make_tls(ca_file: &Path) -> Result<SimTls, String> {
    let tls = SimTls::generate().map_err(|e| e.to_string())?;
    std::fs::write(ca_file, &tls.ca_pem)
        .map_err(|e| format!("cannot write the CA file {}: {e}", ca_file.display()))?;
    Ok(tls)
}

/// Where `--tls` writes the CA when `--ca-file` is not given: the temporary directory,
/// named after this process.
pub fn default_ca_file() -> PathBuf {
    std::env::temp_dir().join(format!("wasp-sim-ca-{}.pem", std::process::id()))
}

async fn wait_for((mut term, mut int): (Signal, Signal)) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
