//! Running the pool for real: from a config to a started pool (with its HTTP endpoint),
//! the headless mode with signals and config reload, and the virtual phone of the demo.

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
use crate::store::FileStore;
use crate::wa::noise::TrustRoot;
use crate::wa::payload::ClientVersion;

/// Where sessions connect, from the `[server]` table.
pub fn endpoint(config: &Config) -> Endpoint {
    Endpoint {
        url: config.server.url.clone(),
        trust: config
            .server
            .trust_root
            .map(TrustRoot)
            .unwrap_or_else(TrustRoot::whatsapp),
        version: ClientVersion::default(),
    }
}

/// A started pool and, when asked, its HTTP endpoint; the local socket when it could be served.
pub struct Started {
    pub running: Running,
    pub http: Option<http::Server>,
    pub socket: Option<http::UnixServer>,
    pub cancel: CancellationToken,
}

/// The local socket of a data directory (`<data_dir>/wasp.sock`).
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(http::SOCKET_NAME)
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

/// The bearer token for the POST endpoints: from the config, else the one of an earlier run in
/// `<data_dir>/http-token` (kept while only its owner can read it, so a restart does not lock
/// out an attached console or the operator's scripts), else a fresh one written there (0600).
fn http_token(config: &Config) -> Result<Token, StartError> {
    if let Some(token) = config.http.as_ref().and_then(|h| h.bearer_token())
        && let Some(token) = Token::new(token.expose())
    {
        return Ok(token);
    }
    let path = config.storage.data_dir.join("http-token");
    if let Some(token) = private_token(&path) {
        return Ok(token);
    }
    let token = Token::random();
    write_private(&path, token.expose().as_bytes()).map_err(|source| StartError::TokenFile {
        path: path.clone(),
        source,
    })?;
    info!(path = %path.display(), "no HTTP token configured: wrote a new one");
    Ok(token)
}

/// The token in `path` when the file is its owner's alone (mode without group/other bits).
fn private_token(path: &Path) -> Option<Token> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    Token::new(std::fs::read_to_string(path).ok()?)
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
    // `mode` applies only to a new file: an existing one is made private before writing.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Starts the pool on `config`, the local socket `<data_dir>/wasp.sock` (a socket that cannot
/// be served is logged and skipped) and, when `http` (or `[http] listen`) is set, the endpoint.
/// Both share one token: the configured one, or a fresh one in `<data_dir>/http-token`.
pub async fn start(config: &Config, http_addr: Option<SocketAddr>) -> Result<Started, StartError> {
    let cancel = CancellationToken::new();
    let store = Arc::new(FileStore::new(&config.storage.data_dir));
    let running = pool::start(config, endpoint(config), store, cancel.clone());
    let addr = http_addr.or(config.http.as_ref().map(|h| h.listen));
    // One token for both endpoints (a second fresh one would overwrite the first's file).
    let mut shared = None;
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
            let server = http::serve(
                addr,
                Some(token.clone()),
                running.handle.clone(),
                cancel.clone(),
            )
            .await?;
            shared = Some(token);
            Some(server)
        }
        None => None,
    };
    let socket = serve_socket(config, shared, &running, &cancel).await;
    Ok(Started {
        running,
        http,
        socket,
        cancel,
    })
}

/// The local socket for `wasp attach` on this machine; `None` (logged) when it cannot be served.
async fn serve_socket(
    config: &Config,
    token: Option<Token>,
    running: &Running,
    cancel: &CancellationToken,
) -> Option<http::UnixServer> {
    let path = socket_path(&config.storage.data_dir);
    let token = match token {
        Some(token) => Ok(token),
        None => http_token(config),
    };
    let served = match token {
        Ok(token) => http::serve_unix(&path, Some(token), running.handle.clone(), cancel.clone())
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match served {
        Ok(server) => Some(server),
        Err(e) => {
            warn!(error = %e, "no local socket: `wasp attach` needs the HTTP endpoint");
            None
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_token_of_an_earlier_run_is_kept_while_it_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_path_buf();
        let first = http_token(&config).unwrap();
        let path = dir.path().join("http-token");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(http_token(&config).unwrap().expose(), first.expose());
        // Readable by others: not trusted, replaced.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_ne!(http_token(&config).unwrap().expose(), first.expose());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the new token is private again");
    }
}
