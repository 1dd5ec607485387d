//! The narrow handle through which the console and the HTTP endpoint steer the pool:
//! read statuses from the board, send operator commands to one session's driver.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::info;

use crate::net::board::StatusBoard;
use crate::net::gate::Remote;
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
    /// Clustered: this node now holds the session's lease; start its driver.
    Claim {
        session: String,
    },
    /// Clustered: stop the session's driver (socket closed) and answer on `done` once it
    /// has ended. `reason`: keep it on the board as `cooldown (<reason>)`; `None`: remove it.
    Release {
        session: String,
        reason: Option<String>,
        done: oneshot::Sender<()>,
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
    /// The command could not reach the node that owns the session (the message says why).
    #[error("{0}")]
    Remote(String),
}

/// Cloneable handle on a running pool.
#[derive(Clone)]
pub struct PoolHandle {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    requests: mpsc::Sender<PoolRequest>,
    remote: Option<Arc<dyn Remote>>,
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
            remote: None,
            events: broadcast::channel(1).0,
        }
    }

    /// The same handle, sending commands for sessions owned elsewhere through `remote`.
    pub fn with_remote(mut self, remote: Arc<dyn Remote>) -> Self {
        self.remote = Some(remote);
        self
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

    /// The cluster this node belongs to, when `[cluster]` is set.
    pub fn cluster(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.as_ref()
    }

    /// Sends an operator command to one session (waits if the request queue is full). When
    /// clustered and another node owns the session, the command travels to it and this
    /// returns once the owner has answered.
    pub async fn act(&self, session: &str, command: Command) -> Result<(), HandleError> {
        if let Some(remote) = &self.remote
            && !remote.is_local(session)
        {
            let node = remote.forward(session.to_string(), command).await?;
            info!(session, command = command.name(), node = %node, "sent to {node}");
            return Ok(());
        }
        self.act_here(session, command).await
    }

    /// Sends an operator command to this node's driver of the session, never elsewhere.
    pub async fn act_here(&self, session: &str, command: Command) -> Result<(), HandleError> {
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

    /// Clustered: starts the session's driver (this node holds its lease).
    pub async fn claim(&self, session: &str) -> Result<(), HandleError> {
        self.requests
            .send(PoolRequest::Claim {
                session: session.to_string(),
            })
            .await
            .map_err(|_| HandleError::Closed)
    }

    /// Clustered: stops the session's driver and returns once its socket is closed.
    pub async fn release(&self, session: &str, reason: Option<String>) {
        let (done, ended) = oneshot::channel();
        let sent = self
            .requests
            .send(PoolRequest::Release {
                session: session.to_string(),
                reason,
                done,
            })
            .await;
        if sent.is_ok() {
            let _ = ended.await;
        }
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
