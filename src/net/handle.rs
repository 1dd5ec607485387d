//! The narrow handle through which the console and the HTTP endpoint steer the pool:
//! read statuses from the board, send operator commands to one session's driver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::net::board::StatusBoard;
use crate::net::metrics::Metrics;
use crate::session::Command;

/// A request for the pool.
#[derive(Debug)]
pub enum PoolRequest {
    Act { session: String, command: Command },
    Shutdown,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandleError {
    #[error("no session named {0}")]
    UnknownSession(String),
    #[error("the pool is shutting down")]
    Closed,
}

/// Cloneable handle on a running pool.
#[derive(Clone)]
pub struct PoolHandle {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    requests: mpsc::Sender<PoolRequest>,
    ready: Arc<AtomicBool>,
}

impl PoolHandle {
    /// Builds a handle around the pool's request channel.
    pub fn new(
        board: Arc<StatusBoard>,
        metrics: Arc<Metrics>,
        requests: mpsc::Sender<PoolRequest>,
        ready: Arc<AtomicBool>,
    ) -> Self {
        PoolHandle {
            board,
            metrics,
            requests,
            ready,
        }
    }

    /// True once the pool has started every configured session's driver.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sends an operator command to one session (waits if the request queue is full).
    pub async fn act(&self, session: &str, command: Command) -> Result<(), HandleError> {
        if self.board.get(session).is_none() {
            return Err(HandleError::UnknownSession(session.to_string()));
        }
        self.requests
            .send(PoolRequest::Act {
                session: session.to_string(),
                command,
            })
            .await
            .map_err(|_| HandleError::Closed)
    }

    /// Asks the pool to close every session and stop.
    pub async fn shutdown(&self) {
        let _ = self.requests.send(PoolRequest::Shutdown).await;
    }
}
