//! The same HTTP API on a local Unix socket (`<data_dir>/wasp.sock`, mode 0600): what a
//! console or headless pool offers `wasp attach` on the same machine when no TCP endpoint is
//! configured. Whoever can open the socket file can read; actions still need the token.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::auth::LiveAccess;
use super::{HttpError, routes};
use crate::net::handle::PoolHandle;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "wasp.sock";

/// A started socket endpoint; its file is removed when the serving task ends (unless another
/// pool has bound a new socket at that path meanwhile).
pub struct UnixServer {
    pub path: PathBuf,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `path` (0600) and serves until `cancel` fires. A socket file nobody answers on (left
/// by a killed process) is replaced; one that answers belongs to another pool: an error.
pub async fn serve_unix(
    path: &Path,
    access: LiveAccess,
    pool: PoolHandle,
    cancel: CancellationToken,
) -> Result<UnixServer, HttpError> {
    let bind_error = |source| HttpError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(HttpError::SocketInUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_error)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bind_error)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    let ours = std::fs::metadata(path).map_err(bind_error)?;
    let ours = (ours.dev(), ours.ino());
    let app = routes::router(pool, access);
    let owned = path.to_path_buf();
    let task = tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "local socket endpoint stopped");
        }
        // Only our own socket file: a pool started since may have bound a new one here.
        if std::fs::metadata(&owned).is_ok_and(|m| (m.dev(), m.ino()) == ours) {
            let _ = std::fs::remove_file(&owned);
        }
    });
    tracing::info!(path = %path.display(), "local socket endpoint listening");
    Ok(UnixServer {
        path: path.to_path_buf(),
        task,
    })
}
