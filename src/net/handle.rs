//! The narrow handle through which the console and the HTTP endpoint steer the pool:
//! read statuses from the board, send operator actions to one session's driver.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::net::board::StatusBoard;
use crate::net::metrics::Metrics;

/// What an operator can ask of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start connecting (from `stopped`).
    Connect,
    /// Close any socket and dial again now (skips backoff, conflict and failed waits).
    Reconnect,
    /// Close the socket and stay `stopped`.
    Disconnect,
    /// Clear a cooldown or backoff and connect.
    ResetCooldown,
    /// Remove the key material (after one last backup when `backup`).
    Wipe { backup: bool },
    /// Start pairing (show a QR) when the session has no credentials.
    Pair,
}

impl Action {
    /// The lower-case name used in logs, the timeline and HTTP paths.
    pub fn name(self) -> &'static str {
        match self {
            Action::Connect => "connect",
            Action::Reconnect => "reconnect",
            Action::Disconnect => "disconnect",
            Action::ResetCooldown => "reset-cooldown",
            Action::Wipe { .. } => "wipe",
            Action::Pair => "pair",
        }
    }
}

/// A request for the pool.
#[derive(Debug)]
pub enum PoolRequest {
    Act { session: String, action: Action },
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

    /// Sends an operator action to one session (waits if the request queue is full).
    pub async fn act(&self, session: &str, action: Action) -> Result<(), HandleError> {
        if self.board.get(session).is_none() {
            return Err(HandleError::UnknownSession(session.to_string()));
        }
        self.requests
            .send(PoolRequest::Act {
                session: session.to_string(),
                action,
            })
            .await
            .map_err(|_| HandleError::Closed)
    }

    /// Asks the pool to close every session and stop.
    pub async fn shutdown(&self) {
        let _ = self.requests.send(PoolRequest::Shutdown).await;
    }
}
