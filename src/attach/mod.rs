//! `wasp attach [TARGET]`: the console driving a pool that runs in another process (`wasp
//! headless`, or a console that detached) through its HTTP API, over TCP or the local socket.
//! Without a token the console is read-only and shows no QR.

pub mod bench;
pub mod client;
pub mod messages;
mod nodes;
pub mod remote;
pub mod sse;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::http::Token;
use crate::ui::{self, Exit, LogRing, UiOptions};
pub use client::{Client, Target};

/// Lines the attached console's log pane keeps.
const LOG_LINES: usize = 10_000;

/// Why attaching failed (or a request to the pool did).
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{0}")]
    BadTarget(String),
    #[error("nothing answers at {target}: {source}")]
    Unreachable {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the connection to {target} broke: {why}")]
    Broken { target: String, why: String },
    #[error("the pool refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the token file {path} cannot be read: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {0} is empty")]
    EmptyToken(PathBuf),
    #[error(
        "no local wasp found (no {sock} under the data directory of {config} nor of a demo): give a URL or a socket path"
    )]
    NothingLocal { sock: &'static str, config: PathBuf },
}

/// The local socket to attach to when no target is given: the one of `config`'s data
/// directory, else the newest demo's that answers.
pub fn find_local(config: &Path) -> Result<PathBuf, AttachError> {
    if let Ok(loaded) = crate::config::load(config) {
        let sock = crate::runner::socket_path(&loaded.storage.data_dir);
        if sock.exists() {
            return Ok(sock);
        }
    }
    let newest = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("wasp-demo-"))
        .map(|e| crate::runner::socket_path(&e.path()))
        .filter_map(|sock| {
            let modified = std::fs::metadata(&sock).and_then(|m| m.modified()).ok()?;
            Some((modified, sock))
        })
        // A socket left by a killed demo answers nobody.
        .filter(|(_, sock)| std::os::unix::net::UnixStream::connect(sock).is_ok())
        .max();
    newest
        .map(|(_, sock)| sock)
        .ok_or_else(|| AttachError::NothingLocal {
            sock: crate::http::SOCKET_NAME,
            config: config.to_path_buf(),
        })
}

/// The token: from `token_file` when given (it must be readable and not empty); else, for a
/// local socket, the pool's own `http-token` beside it when readable; else none.
pub fn find_token(
    target: &Target,
    token_file: Option<&Path>,
) -> Result<Option<Token>, AttachError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| AttachError::TokenFile {
            path: path.to_path_buf(),
            source,
        })
    };
    if let Some(path) = token_file {
        return Token::new(read(path)?)
            .map(Some)
            .ok_or_else(|| AttachError::EmptyToken(path.to_path_buf()));
    }
    if let Target::Unix(sock) = target
        && let Some(dir) = sock.parent()
        && let Ok(text) = read(&dir.join("http-token"))
    {
        return Ok(Token::new(text));
    }
    Ok(None)
}

/// Runs `wasp attach`; returns the exit code (2: bad target or token, 1: unreachable).
pub async fn run(
    target: Option<&str>,
    token_file: Option<&Path>,
    config: &Path,
    mut options: UiOptions,
) -> u8 {
    let target = match target.map_or_else(|| find_local(config).map(Target::Unix), Target::parse) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("wasp attach: {e}");
            return 2;
        }
    };
    let token = match find_token(&target, token_file) {
        Ok(token) => token,
        Err(e) => {
            eprintln!("wasp attach: {e}");
            return 2;
        }
    };
    let client = Arc::new(Client::new(target, token));
    // The first connection decides: a wrong token or nothing listening is said plainly.
    if let Err(e) = client.stream(remote::EVENTS_PATH).await {
        return match e {
            AttachError::Refused {
                status: 401,
                message,
            } => {
                let from = token_file.map_or_else(
                    || "the token beside its socket".to_string(),
                    |f| format!("the token in {}", f.display()),
                );
                eprintln!("wasp attach: {} refused {from}: {message}", client.target);
                2
            }
            e @ (AttachError::Unreachable { .. } | AttachError::Broken { .. }) => {
                eprintln!("wasp attach: {e}");
                1
            }
            e => {
                eprintln!("wasp attach: {}: {e}", client.target);
                1
            }
        };
    }
    options.read_only |= !client.has_token();
    let ring = LogRing::new(LOG_LINES);
    install_logging(&ring);
    let cancel = CancellationToken::new();
    let link = remote::link(client, ring.clone(), cancel.clone());
    ui::install_panic_hook();
    let result = match ui::TerminalGuard::enter(options.mouse) {
        Ok(mut guard) => {
            let r = ui::run(guard.terminal(), link, ring, options, cancel.clone()).await;
            match r {
                Ok(Exit::LostTerminal) => guard.abandon(),
                _ => drop(guard),
            }
            r
        }
        Err(e) => Err(e),
    };
    cancel.cancel();
    match result {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("wasp attach: {e}");
            1
        }
    }
}

/// The attached console's own lines (unreachable, refused) go to its log pane only.
fn install_logging(ring: &LogRing) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = crate::logging::env_filter("info")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(ring.layer())
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_file_must_be_readable_and_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Unix(dir.path().join("wasp.sock"));
        let missing = dir.path().join("missing");
        let error = find_token(&target, Some(&missing)).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        let error = find_token(&target, Some(&empty)).unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error}");
        // No file given: none beside the socket means read-only, one there is used.
        assert!(find_token(&target, None).unwrap().is_none());
        std::fs::write(dir.path().join("http-token"), "abc\n").unwrap();
        assert_eq!(find_token(&target, None).unwrap().unwrap().expose(), "abc");
        // A URL target never reads a file it was not given.
        let url = Target::parse("http://127.0.0.1:1").unwrap();
        assert!(find_token(&url, None).unwrap().is_none());
    }

    #[test]
    fn the_local_socket_of_the_config_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.path().join("sessions.toml");
        std::fs::write(
            &config,
            format!("[storage]\ndata_dir = {:?}\n", data.display().to_string()),
        )
        .unwrap();
        std::fs::write(data.join("wasp.sock"), "").unwrap();
        assert_eq!(find_local(&config).unwrap(), data.join("wasp.sock"));
    }
}
