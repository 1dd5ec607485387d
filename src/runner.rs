//! Running the pool for real: from a config to a started pool (with its HTTP endpoint),
//! the headless mode with signals and config reload, and the demo's virtual phone and chatter.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::http::{self, Token};
use crate::net::board::StatusBoard;
use crate::net::link::Endpoint;
use crate::net::pool::{self, Running};
use crate::net::version::{self, DISCOVERY_TIMEOUT};
use crate::store::FileStore;
use crate::wa::noise::TrustRoot;

/// Where sessions connect, from the `[server]` table.
pub fn endpoint(config: &Config) -> Endpoint {
    Endpoint {
        url: config.server.url.clone(),
        trust: config
            .server
            .trust_root
            .map(TrustRoot)
            .unwrap_or_else(TrustRoot::whatsapp),
        version: config.server.client_version.unwrap_or_default(),
        device: config.server.device_name.clone(),
        send_acks: true,
    }
}

/// A started pool and, when asked, its HTTP endpoint.
pub struct Started {
    pub running: Running,
    pub http: Option<http::Server>,
    pub cancel: CancellationToken,
}

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("could not write the HTTP token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The bearer token for the POST endpoints: from the config, or a fresh one written to
/// `<data_dir>/http-token` (mode 0600) so the operator's scripts can read it.
fn http_token(config: &Config) -> Result<Token, StartError> {
    if let Some(token) = config.http.as_ref().and_then(|h| h.bearer_token())
        && let Some(token) = Token::new(token.expose())
    {
        return Ok(token);
    }
    let token = Token::random();
    let path = config.storage.data_dir.join("http-token");
    write_private(&path, token.expose().as_bytes()).map_err(|source| StartError::TokenFile {
        path: path.clone(),
        source,
    })?;
    info!(path = %path.display(), "no HTTP token configured: wrote a new one");
    Ok(token)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Starts the pool on `config` and, when `http` (or `[http] listen`) is set, the endpoint.
pub async fn start(config: &Config, http_addr: Option<SocketAddr>) -> Result<Started, StartError> {
    let cancel = CancellationToken::new();
    let store = Arc::new(FileStore::new(&config.storage.data_dir));
    let mut endpoint = endpoint(config);
    let resolved = version::resolve(&config.server, version::SW_JS_URL, DISCOVERY_TIMEOUT).await;
    info!(version = %resolved.version, "using {}", resolved.describe());
    endpoint.version = resolved.version;
    let running = pool::start(config, endpoint, store, cancel.clone());
    let addr = http_addr.or(config.http.as_ref().map(|h| h.listen));
    let http = match addr {
        Some(addr) => {
            let configured = config
                .http
                .as_ref()
                .and_then(|h| h.bearer_token())
                .is_some();
            if !addr.ip().is_loopback() && !configured {
                cancel.cancel();
                return Err(http::HttpError::NoTokenOnPublicBind(addr).into());
            }
            let token = http_token(config)?;
            Some(http::serve(addr, Some(token), running.handle.clone(), cancel.clone()).await?)
        }
        None => None,
    };
    Ok(Started {
        running,
        http,
        cancel,
    })
}

/// Stops the pool: every socket closed within the shutdown budget.
pub async fn stop(started: Started) {
    started.running.handle.shutdown().await;
    let budget = pool::SHUTDOWN_BUDGET + Duration::from_millis(500);
    if tokio::time::timeout(budget, started.running.task)
        .await
        .is_err()
    {
        warn!("the pool did not stop within {budget:?}");
    }
    started.cancel.cancel();
}

/// `wasp headless`: the pool with JSON logs on stdout; SIGTERM/SIGINT stop it, SIGHUP reloads
/// the config (a bad file keeps the old config and logs why). Returns the exit code.
pub async fn headless(path: &Path, http_addr: Option<SocketAddr>) -> u8 {
    // Handlers first: a signal that arrives while the pool starts must not kill the process.
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("could not install signal handlers");
        return 1;
    };
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for line in errors.lines() {
                eprintln!("{line}");
            }
            return 2;
        }
    };
    let started = match start(&config, http_addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasp headless: {e}");
            return if matches!(e, StartError::Http(http::HttpError::NoTokenOnPublicBind(_))) {
                2
            } else {
                1
            };
        }
    };
    if let Some(server) = &started.http {
        info!(addr = %server.addr, "http endpoint ready");
    }
    info!(sessions = config.sessions.len(), "wasp headless running");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match config::load(path) {
                Ok(new) => {
                    info!(sessions = new.sessions.len(), "config reloaded");
                    let _ = started.running.reload.send(new).await;
                }
                Err(errors) => {
                    for line in errors.lines() {
                        warn!(problem = %line, "config reload refused; keeping the old config");
                    }
                }
            },
        }
    }
    info!("stopping: closing every session");
    stop(started).await;
    0
}

/// The demo's virtual phone: scans each QR the pool shows, a few seconds after it appears
/// (between `min` and `max`), as a person would.
pub async fn virtual_phone(
    board: Arc<StatusBoard>,
    sim: crate::sim::Handle,
    min: Duration,
    max: Duration,
    cancel: CancellationToken,
) {
    use rand::Rng;
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for status in board.snapshot() {
            let Some(qr) = status.qr() else {
                continue;
            };
            let text = qr.text.as_str().to_string();
            if !text.starts_with("https://") || !seen.insert(text.clone()) {
                continue;
            }
            let wait = if max > min {
                rand::thread_rng().gen_range(min..max)
            } else {
                min
            };
            let sim = sim.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Err(e) = sim.scan(&text, None).await {
                    tracing::debug!(error = %e, "virtual phone could not scan");
                }
            });
        }
    }
}

/// The demo's chatter: simulated friends (accounts made in the simulator) and the online demo
/// sessions text each other every `every` or so, and each session answers what it receives
/// now and then, so the console shows message traffic. Ends with `cancel`.
pub async fn demo_chatter(
    pool: crate::net::handle::PoolHandle,
    sim: crate::sim::Handle,
    every: Duration,
    cancel: CancellationToken,
) {
    use crate::net::messages::MessageEventKind;
    use rand::Rng;
    const FRIENDS: [&str; 3] = ["15550100001", "15550100002", "15550100003"];
    const LINES: [&str; 5] = [
        "hi, are you there?",
        "order #4411 is ready",
        "thanks!",
        "can you call me later?",
        "see you tomorrow",
    ];
    for friend in FRIENDS {
        if let Err(e) = sim.create_account(friend) {
            warn!(error = %e, "demo friend not created");
        }
    }
    let mut events = pool.message_events();
    loop {
        let wait = every.mul_f64(rand::thread_rng().gen_range(0.5..1.5));
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => {
                // Answer some received texts from the session that got them.
                if let Ok(event) = event
                    && let MessageEventKind::Received(m) = &event.kind
                    && !m.from_me
                    && rand::thread_rng().gen_bool(0.5)
                {
                    let to = m.chat.clone();
                    if let Err(e) = pool.send_text(&event.session, &to, "got it, thanks").await {
                        info!(error = %e, "demo reply not sent");
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {
                let online: Vec<_> = pool
                    .board
                    .snapshot()
                    .into_iter()
                    .filter(|s| s.state() == crate::session::status::StateName::Online)
                    .filter_map(|s| Some((s.id.clone(), s.account.phone.clone()?)))
                    .collect();
                if online.is_empty() {
                    continue;
                }
                let (pick, friend, line, from_friend) = {
                    let mut rng = rand::thread_rng();
                    (
                        rng.gen_range(0..online.len()),
                        FRIENDS[rng.gen_range(0..FRIENDS.len())],
                        LINES[rng.gen_range(0..LINES.len())],
                        rng.gen_bool(0.5),
                    )
                };
                let (session, phone) = &online[pick];
                if from_friend {
                    if let Err(e) = sim.send_text(friend, phone, line) {
                        info!(error = %e, "demo friend could not send");
                    }
                } else if let Err(e) = pool.send_text(session, friend, line).await {
                    info!(error = %e, "demo text not sent");
                }
            }
        }
    }
}
