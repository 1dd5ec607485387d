//! The narrow handle through which the console and the HTTP endpoint steer the pool:
//! read statuses from the board, send operator commands to one session's driver.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::net::board::StatusBoard;
use crate::net::messages::{MessageEvent, MessageId, SendError};
use crate::net::metrics::Metrics;
use crate::session::Command;

/// A request for the pool.
#[derive(Debug)]
pub enum PoolRequest {
    Act {
        session: String,
        command: Command,
    },
    SendText {
        session: String,
        to: String,
        text: String,
        reply: oneshot::Sender<Result<MessageId, SendError>>,
    },
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
    events: broadcast::Sender<MessageEvent>,
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
            events: broadcast::channel(1).0,
        }
    }

    /// The same handle reporting the pool's message events.
    pub fn with_events(mut self, events: broadcast::Sender<MessageEvent>) -> Self {
        self.events = events;
        self
    }

    /// Every session's message events from now on (received messages, status changes of
    /// sent ones). A listener that falls more than `EVENTS_CAPACITY` behind loses the
    /// oldest (`RecvError::Lagged`).
    pub fn message_events(&self) -> broadcast::Receiver<MessageEvent> {
        self.events.subscribe()
    }

    /// Sends a text from `session` to `to` (digits or a JID). Returns the message id once
    /// the encrypted stanza is written; its server ack and receipts follow as events.
    pub async fn send_text(
        &self,
        session: &str,
        to: &str,
        text: &str,
    ) -> Result<MessageId, SendError> {
        let stopped = || SendError::Stopped {
            session: session.to_string(),
        };
        if !self.board.knows(session) {
            return Err(SendError::UnknownSession {
                session: session.to_string(),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(PoolRequest::SendText {
                session: session.to_string(),
                to: to.to_string(),
                text: text.to_string(),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
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

    /// Asks the pool to close every session and stop.
    pub async fn shutdown(&self) {
        let _ = self.requests.send(PoolRequest::Shutdown).await;
    }
}
