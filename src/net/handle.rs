//! The narrow handle through which the console and the HTTP endpoint steer the pool:
//! read statuses from the board, send operator commands to one session's driver.

use std::sync::Arc;

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
}

impl PoolHandle {
    /// Builds a handle around the pool's request channel.
    pub fn new(
        board: Arc<StatusBoard>,
        metrics: Arc<Metrics>,
        requests: mpsc::Sender<PoolRequest>,
    ) -> Self {
        PoolHandle {
            board,
            metrics,
            requests,
        }
    }

    /// True once every started session's driver has published its status once.
    pub fn is_ready(&self) -> bool {
        self.board.is_ready()
    }

    /// Sends an operator command to one session (waits if the request queue is full).
    pub async fn act(&self, session: &str, command: Command) -> Result<(), HandleError> {
        if !self.board.knows(session) {
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

    /// Resolves once the pool has stopped (it takes no more requests).
    pub async fn stopped(&self) {
        self.requests.closed().await;
    }

    /// Asks the pool to close every session and stop.
    pub async fn shutdown(&self) {
        let _ = self.requests.send(PoolRequest::Shutdown).await;
    }
}
