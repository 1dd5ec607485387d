//! The narrow handle through which the console and the HTTP endpoint steer the pool:
//! read statuses from the board, send operator commands to one session's driver.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::info;

use crate::config::MessagesConfig;
use crate::net::board::StatusBoard;
use crate::net::gate::Remote;
use crate::net::hooks::Hooks;
use crate::net::messages::{MAX_TEXT_BYTES, MessageEvent, MessageId, SendError, parse_recipient};
use crate::net::metrics::Metrics;
use crate::session::Command;
use crate::store::keys::KeyStore;
use crate::store::outbox::{Direction, Kept, NewMessage, OutboxEntry};

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
    /// The session's outbox has new messages.
    Wake {
        session: String,
    },
    /// A pairing code for this phone number, answered on `reply`.
    PairCode {
        session: String,
        phone: String,
        reply: crate::net::driver::CodeReply,
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
    /// The session cannot do it now (the message says why).
    #[error("{0}")]
    Refused(String),
    /// The session did not get there in time (the message says what).
    #[error("{0}")]
    TimedOut(String),
}

/// How long a pair request waits for the session to show a QR.
pub const QR_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Cloneable handle on a running pool.
#[derive(Clone)]
pub struct PoolHandle {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    requests: mpsc::Sender<PoolRequest>,
    remote: Option<Arc<dyn Remote>>,
    events: broadcast::Sender<MessageEvent>,
    outbox: Option<OutboxAccess>,
    hooks: Arc<Hooks>,
}

/// Where the sessions' outboxes live (keys.db) and how many messages each keeps.
#[derive(Clone, Debug)]
pub struct OutboxAccess {
    pub keys: Arc<KeyStore>,
    /// `[messages]` in force (a reload replaces it): `keep` applies to each enqueue.
    pub config: watch::Receiver<MessagesConfig>,
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
            outbox: None,
            hooks: Arc::new(Hooks::default()),
        }
    }

    /// The same handle with the sessions' outboxes (`send`, `message`, `messages`).
    pub fn with_outbox(mut self, outbox: OutboxAccess) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The same handle with the pool's webhook targets.
    pub fn with_hooks(mut self, hooks: Arc<Hooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// The pool's webhook targets (shared with its messengers).
    pub fn hooks(&self) -> &Arc<Hooks> {
        &self.hooks
    }

    /// The key database holding the outboxes (and the webhook queue), when this handle has it.
    pub fn keys(&self) -> Option<&Arc<KeyStore>> {
        self.outbox.as_ref().map(|o| &o.keys)
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

    /// Queues a text from `session` to `to` (digits or a JID) and returns its id once it is
    /// durable; the session sends it when online and its send limits allow.
    pub async fn send_text(
        &self,
        session: &str,
        to: &str,
        text: &str,
    ) -> Result<MessageId, SendError> {
        let entry = self.send(session, to, text, None).await?;
        Ok(MessageId(entry.id))
    }

    /// Queues a text from `session` to `to` (digits or a JID): checked, then committed to the
    /// session's outbox before this returns. The same `key` again answers the first message
    /// and queues nothing.
    pub async fn send(
        &self,
        session: &str,
        to: &str,
        text: &str,
        key: Option<String>,
    ) -> Result<OutboxEntry, SendError> {
        let status = self.paired(session)?;
        let peer = parse_recipient(to.trim()).ok_or_else(|| SendError::BadRecipient {
            session: session.to_string(),
            to: to.to_string(),
        })?;
        if text.trim().is_empty() {
            return Err(SendError::EmptyText);
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(SendError::TooLong {
                len: text.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        if key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.chars().count() > 128)
        {
            return Err(SendError::BadKey);
        }
        let own = status.account.phone.unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let msg = NewMessage {
            id: crate::wa::message::new_message_id(now.as_secs(), &own),
            to: peer.to_string(),
            text: text.to_string(),
            key,
        };
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let (entry, new) = self
            .outbox_call(session, move |keys, session, keep| {
                keys.outbox_enqueue(&session, &msg, now_ms, keep)
            })
            .await?;
        if new {
            let wake = PoolRequest::Wake {
                session: session.to_string(),
            };
            // A stopped pool reads the outbox at its next start.
            let _ = self.requests.send(wake).await;
        }
        Ok(entry)
    }

    /// One message `session` sent (or has queued).
    pub async fn message(&self, session: &str, id: &str) -> Result<Option<OutboxEntry>, SendError> {
        self.known(session)?;
        let id = id.to_string();
        self.outbox_call(session, move |keys, session, _| {
            keys.outbox_get(&session, &id)
        })
        .await
    }

    /// The newest `limit` messages of `session` in `direction`, newest first.
    pub async fn messages(
        &self,
        session: &str,
        direction: Direction,
        limit: u32,
    ) -> Result<Vec<Kept>, SendError> {
        self.known(session)?;
        self.outbox_call(session, move |keys, session, _| {
            keys.messages_recent(&session, direction, limit)
        })
        .await
    }

    fn known(&self, session: &str) -> Result<(), SendError> {
        if self.board.knows(session) {
            Ok(())
        } else {
            Err(SendError::UnknownSession {
                session: session.to_string(),
            })
        }
    }

    /// The status of `session` when it is paired.
    fn paired(&self, session: &str) -> Result<crate::session::status::Status, SendError> {
        self.known(session)?;
        match self.board.get(session) {
            Some(status) if status.account.paired => Ok(status),
            _ => Err(SendError::NotPaired {
                session: session.to_string(),
            }),
        }
    }

    /// Runs an outbox call on the blocking pool.
    async fn outbox_call<T: Send + 'static>(
        &self,
        session: &str,
        f: impl FnOnce(&KeyStore, String, u32) -> Result<T, crate::store::keys::KeysError>
        + Send
        + 'static,
    ) -> Result<T, SendError> {
        let stopped = || SendError::Stopped {
            session: session.to_string(),
        };
        let outbox = self.outbox.clone().ok_or_else(stopped)?;
        let name = session.to_string();
        let keep = outbox.config.borrow().keep;
        tokio::task::spawn_blocking(move || f(&outbox.keys, name, keep))
            .await
            .map_err(|_| stopped())?
            .map_err(|source| SendError::Outbox {
                session: session.to_string(),
                source: Box::new(source),
            })
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

    /// Waits (up to `within`) for the session to show a QR; refused when it is paired.
    pub async fn wait_for_qr(
        &self,
        session: &str,
        within: std::time::Duration,
    ) -> Result<crate::session::status::QrView, HandleError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.board.get(session) {
                if let Some(qr) = status.qr() {
                    return Ok(qr.clone());
                }
                if status.account.paired {
                    return Err(HandleError::Refused(format!(
                        "session {session} is already paired: wipe its credentials first"
                    )));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HandleError::TimedOut(format!(
                    "session {session} did not show a QR within {} s",
                    within.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Pairing by phone number: starts pairing, waits for the QR refs, then asks the session
    /// for a code for `phone`. Answers the code and when it stops working; the code goes to
    /// the caller only.
    pub async fn pair_code(
        &self,
        session: &str,
        phone: &str,
    ) -> Result<crate::net::driver::CodeShown, HandleError> {
        if let Some(remote) = &self.remote
            && !remote.is_local(session)
        {
            return Err(HandleError::Remote(format!(
                "session {session} runs on another node: ask that node for its pairing code"
            )));
        }
        self.act_here(session, Command::Pair).await?;
        self.wait_for_qr(session, QR_WAIT).await?;
        let (reply, answer) = oneshot::channel();
        let request = PoolRequest::PairCode {
            session: session.to_string(),
            phone: phone.to_string(),
            reply,
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| HandleError::Closed)?;
        match answer.await {
            Ok(result) => result.map_err(HandleError::Refused),
            Err(_) => Err(HandleError::Refused(format!(
                "session {session} is not running here"
            ))),
        }
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
