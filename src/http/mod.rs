//! The HTTP endpoint beside the pool (headless or next to the console): health, readiness,
//! per-session diagnostics, operator actions behind a bearer token, Prometheus metrics and a
//! server-sent event stream of status changes and log lines.

mod auth;
mod events;
mod fleet;
mod json;
mod listen;
mod messages;
mod pair;
mod routes;
mod state;
mod unix;
mod webhook;
mod wipe;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::net::handle::PoolHandle;

pub use auth::{Access, LiveAccess, Token};
pub use json::Clock;
pub use listen::Limits;
pub use unix::{SOCKET_NAME, UnixServer, serve_unix};

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to listen on {0} without a token: set [http] token or token_env, or bind to 127.0.0.1"
    )]
    NoTokenOnPublicBind(SocketAddr),
    #[error("could not serve the local socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another wasp already answers on the local socket {0}")]
    SocketInUse(PathBuf),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A started endpoint.
pub struct Server {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The tokens it checks; `replace` applies new ones to the next request.
    pub access: LiveAccess,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `addr` and serves until `cancel` fires, within `limits`. A non-loopback address
/// needs a token.
pub async fn serve(
    addr: SocketAddr,
    access: impl Into<LiveAccess>,
    limits: Limits,
    pool: PoolHandle,
    cancel: CancellationToken,
) -> Result<Server, HttpError> {
    let access = access.into();
    if !addr.ip().is_loopback() && access.current().token.is_none() {
        return Err(HttpError::NoTokenOnPublicBind(addr));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let app = routes::router(pool, access.clone());
    let live = access.clone();
    let task = tokio::spawn(listen::accept_loop(listener, app, access, limits, cancel));
    tracing::info!(%addr, "http endpoint listening");
    Ok(Server {
        addr,
        access: live,
        task,
    })
}
