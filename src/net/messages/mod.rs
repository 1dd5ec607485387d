//! Messages end to end for one session: a task beside the driver that owns the session's
//! Signal work, so sends and decrypts run one at a time and in arrival order. The driver
//! hands it the socket's querier at login and every `<message>`, `<receipt>` and message
//! `<ack>`; the pool handle reaches it through the driver (`send_text`) and hears from it on
//! the [`MessageEvent`] broadcast.
//!
//! `send.rs`: devices (usync, cached in keys.db), bundles, encrypt, the stanza and the
//! server ack; `recv.rs`: decrypt, receipts, retry receipts both ways; `sent.rs`: the sent
//! messages kept for retries and status changes; `queue.rs`: the outbox pump (keys.db's
//! queued messages, sent in order within `pace.rs`'s send limits).

mod fanout;
mod pace;
mod probe;
mod queue;
mod recv;
mod send;
mod sent;
mod tally;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug};

use crate::config::MessagesConfig;
use crate::net::chan;
use crate::net::conn::{ConnError, Querier};
use crate::net::hooks::Hooks;
use crate::net::metrics::Metrics;
use crate::session::status::OutboxView;
use crate::store::keys::{KeyStore, KeysError};
use crate::store::outbox::OutboxEntry;
use crate::store::signal_keys::KeySignalStore;
use crate::store::tally::MessengerStart;
use crate::wa::creds::Credentials;
use crate::wa::node::Node;
use crate::wa::signal::SignalError;

pub use pace::Pace;
pub use probe::{PROBE_PREFIX, ProbeSetup, is_probe_text};
pub use queue::start_read;
pub use send::parse_recipient;
pub use sent::KEPT as SENT_KEPT;

/// The longest text accepted (bytes of UTF-8).
pub const MAX_TEXT_BYTES: usize = 65_536;

/// How many events the broadcast holds for a slow listener; past that the listener loses
/// the oldest (tokio's `Lagged`), the session never waits for it.
pub const EVENTS_CAPACITY: usize = 4096;

/// How many stanzas wait for the messenger; when full, a `<message>` is left unacked (the
/// server delivers it again at the next login) and counted.
const INBOX: usize = 1024;

/// A message id as WhatsApp writes it (`3EB0…`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(pub String);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a message we sent has got to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    /// Written to the socket, no server ack yet.
    Pending,
    /// The server acked it.
    Sent,
    Delivered,
    Read,
    Played,
    /// The server refused it (`error` code of its ack) or it could not be sent.
    Failed(String),
}

impl MessageStatus {
    fn rank(&self) -> u8 {
        match self {
            MessageStatus::Pending => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Played => 4,
            MessageStatus::Failed(_) => 5,
        }
    }
}

/// A message a session received and decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub id: String,
    /// The chat: the peer's bare JID (for our own devices' copies, the chat they wrote to).
    pub chat: String,
    /// The sending device's JID.
    pub sender: String,
    /// True when one of our own devices sent it (a device-sent copy).
    pub from_me: bool,
    /// Text of a conversation or extended-text message.
    pub text: Option<String>,
    /// The `Message` field name for anything else (`imageMessage`, `protocolMessage`, …).
    pub kind: String,
    /// Length of the decoded `Message` bytes.
    pub bytes: usize,
    /// The stanza's `t` (unix seconds).
    pub timestamp: u64,
}

/// What happened to a message, with the session it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageEvent {
    pub session: String,
    pub kind: MessageEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageEventKind {
    Received(ReceivedMessage),
    /// A message we sent changed status.
    Status {
        id: String,
        chat: String,
        status: MessageStatus,
    },
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no session named {session}")]
    UnknownSession { session: String },
    #[error("session {session} is not logged in")]
    NotOnline { session: String },
    #[error("session {session}: {to:?} is not a phone number or JID")]
    BadRecipient { session: String, to: String },
    #[error("session {session}: the server query for {what} failed: {source}")]
    Query {
        session: String,
        what: &'static str,
        #[source]
        source: ConnError,
    },
    #[error("session {session}: {to} has no devices")]
    NoDevices { session: String, to: String },
    #[error("session {session}: {source}")]
    Signal {
        session: String,
        #[source]
        source: Box<SignalError>,
    },
    #[error("session {session}: {source}")]
    Keys {
        session: String,
        #[source]
        source: Box<KeysError>,
    },
    #[error("session {session}: the server's answer to {what} is malformed: {reason}")]
    Answer {
        session: String,
        what: &'static str,
        reason: String,
    },
    #[error("session {session} stopped before the message was sent")]
    Stopped { session: String },
    #[error("session {session} is not paired: pair it before sending")]
    NotPaired { session: String },
    #[error("the text is empty")]
    EmptyText,
    #[error("the text is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("the key must be 1 to 128 characters")]
    BadKey,
    #[error("session {session}: the outbox failed: {source}")]
    Outbox {
        session: String,
        #[source]
        source: Box<KeysError>,
    },
}

/// What the driver tells the messenger.
pub enum MessengerMsg {
    /// Logged in on a new socket with these credentials.
    Online(Querier, Arc<Credentials>),
    /// The socket closed.
    Offline,
    /// A `<message>`, `<ack class="message">` or `devices`/`encrypt`
    /// notification.
    Node(Box<Node>),
    /// A `<receipt>`; acked (when `ack`) once the status it carries is stored.
    Receipt { node: Box<Node>, ack: bool },
    /// The session logged out: the queued messages fail.
    LoggedOut,
}

/// The driver's end of the messenger.
#[derive(Clone)]
pub struct MessengerHandle {
    tx: chan::Sender<MessengerMsg>,
    metrics: Arc<Metrics>,
    /// Rung when the outbox has new rows (a permit is kept, so no ring is lost).
    wake: Arc<Notify>,
}

impl MessengerHandle {
    /// Passes `msg` on; a full queue drops it (a `<message>` left unacked comes again) and
    /// counts it.
    pub fn pass(&self, msg: MessengerMsg) {
        if self.tx.try_send(msg).is_err() {
            self.metrics.messages_dropped.inc();
        }
    }

    /// Tells the messenger that its outbox has new messages.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The outbox side of a messenger (`queue.rs`).
struct Outbox {
    config: MessagesConfig,
    /// Queued rows read so far, in queue order.
    queue: VecDeque<OutboxEntry>,
    /// The highest sequence number read.
    last_seq: i64,
    /// New rows may wait in keys.db.
    dirty: bool,
    /// The outbox may hold a message of ours (`false` only when the start found none and
    /// none has been read from it since): a receipt for an id we do not know looks it up.
    has_outgoing: bool,
    /// Ids written on the current socket and not yet acked.
    in_flight: HashSet<String>,
    /// When each message was written (for the delivery latency).
    written: HashMap<String, std::time::Instant>,
    pace: Pace,
    /// Sent, delivered and received over the last hour (shown in the status).
    tally: tally::Tally,
    /// The last time stamped on a status change (unix ms).
    last_stamp: u64,
    /// No send before this, after a failure that may pass.
    retry_at: Option<tokio::time::Instant>,
    /// The pairing's time (unix seconds), for the warm-up.
    paired_at: Option<u64>,
    view: watch::Sender<OutboxView>,
}

/// True for the stanzas the messenger handles instead of the plain ack path.
pub fn wants(node: &Node) -> bool {
    match node.tag.as_str() {
        "message" => true,
        "ack" => node.get_attr("class") == Some("message"),
        "notification" => match node.get_attr("type") {
            Some("devices") => true,
            Some("encrypt") => node.get_child("identity").is_some(),
            _ => false,
        },
        _ => false,
    }
}

/// One session's messenger state.
struct Messenger {
    session: String,
    keys: Arc<KeyStore>,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<MessageEvent>,
    /// Where webhook events go: queued with the row they report.
    hooks: Arc<Hooks>,
    timeout: Duration,
    link: Option<(Querier, KeySignalStore, Arc<Credentials>)>,
    sent: sent::SentLog,
    /// Retry receipts we sent per incoming message id.
    retry_counts: HashMap<String, u32>,
    outbox: Outbox,
    probe: probe::Probe,
}

/// What a messenger needs besides its session's name.
pub struct MessengerSetup {
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub events: broadcast::Sender<MessageEvent>,
    pub hooks: Arc<Hooks>,
    pub timeout: Duration,
    /// `[messages]`, replaced in place by a config reload.
    pub config: watch::Receiver<MessagesConfig>,
    /// `[probe]`, when configured.
    pub probe: Option<ProbeSetup>,
    /// What the messenger starts from, read with the session's store ([`start_read`]).
    pub start: Result<MessengerStart, KeysError>,
}

/// Starts the messenger of `session` in `tasks`; it ends when `cancel` fires. The receiver
/// follows its outbox (queued count, next send time).
pub fn spawn(
    session: &str,
    setup: MessengerSetup,
    (tasks, cancel): (&tokio_util::task::TaskTracker, CancellationToken),
) -> (MessengerHandle, watch::Receiver<OutboxView>) {
    let (tx, mut rx) = crate::net::chan::channel(INBOX);
    let (view, view_rx) = watch::channel(OutboxView::default());
    let wake = Arc::new(Notify::new());
    let metrics = setup.metrics.clone();
    let mut reloads = setup.config;
    let config = reloads.borrow_and_update().clone();
    let start = setup.start;
    let mut messenger = Messenger {
        session: session.to_owned(),
        keys: setup.keys,
        metrics: setup.metrics,
        events: setup.events,
        hooks: setup.hooks,
        timeout: setup.timeout,
        link: None,
        sent: sent::SentLog::default(),
        retry_counts: HashMap::new(),
        probe: probe::Probe::new(setup.probe, tokio::time::Instant::now()),
        outbox: Outbox {
            pace: Pace::new(config.clone(), tokio::time::Instant::now()),
            config,
            queue: VecDeque::new(),
            last_seq: 0,
            dirty: true,
            has_outgoing: true,
            in_flight: HashSet::new(),
            written: HashMap::new(),
            tally: tally::Tally::default(),
            last_stamp: 0,
            retry_at: None,
            paired_at: None,
            view,
        },
    };
    // Seeded before the task is built: the task would otherwise keep room for what it
    // starts from for as long as it lives.
    messenger.seed(start);
    let span = tracing::info_span!("messages", session = %session);
    let woken = wake.clone();
    let task = async move {
        // The handlers are boxed while they run, so the idle future stays small.
        if !messenger.outbox.queue.is_empty() {
            // What the first pump did when it read the queue: expire what waited too long.
            Box::pin(messenger.pump()).await;
        }
        messenger.publish_view();
        loop {
            let next = messenger.next_pump(tokio::time::Instant::now());
            let probe_at = messenger.probe.next_wake();
            // One timer for the three deadlines (the next send, the probe, a minute leaving
            // the hour's tally): the idle future holds one sleep, not three.
            let decay = messenger.tally_expiry();
            let wake = [next, probe_at].into_iter().flatten().fold(decay, Ord::min);
            tokio::select! {
                _ = cancel.cancelled() => break,
                msg = rx.recv() => match msg {
                    None => break,
                    Some(msg) => Box::pin(messenger.handle(msg)).await,
                },
                _ = woken.notified() => messenger.outbox.dirty = true,
                Ok(()) = reloads.changed() => {
                    let config = reloads.borrow_and_update().clone();
                    messenger.reconfigure(config);
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = tokio::time::Instant::now();
                    if next.is_some_and(|at| at <= now) {
                        Box::pin(messenger.pump()).await;
                    }
                    if probe_at.is_some_and(|at| at <= now) {
                        Box::pin(messenger.probe_tick()).await;
                    }
                    // Else a minute left the hour's window: publish_view below recounts.
                }
            }
            messenger.publish_view();
        }
        debug!("messenger ended");
    }
    .instrument(span);
    tasks.spawn(crate::net::footprint::noted(
        crate::net::footprint::Task::Messenger,
        task,
    ));
    (MessengerHandle { tx, metrics, wake }, view_rx)
}

impl Messenger {
    async fn handle(&mut self, msg: MessengerMsg) {
        match msg {
            MessengerMsg::Online(querier, creds) => {
                let store = KeySignalStore::new(self.keys.clone(), &self.session, &creds);
                self.outbox.paired_at = creds
                    .account
                    .as_ref()
                    .and_then(|a| crate::wa::proto::adv::signed_at(&a.signed_identity));
                self.link = Some((querier, store, creds));
                // Whatever was written on the last socket and not acked goes out again.
                self.offline();
                self.probe_online();
            }
            MessengerMsg::Offline => {
                self.link = None;
                self.offline();
                self.probe_offline();
            }
            MessengerMsg::LoggedOut => self.fail_all("session logged out").await,
            MessengerMsg::Receipt { node, ack } => self.on_receipt(&node, ack).await,
            MessengerMsg::Node(node) => match node.tag.as_str() {
                "message" => self.on_message(&node).await,
                "ack" => self.on_server_ack(&node).await,
                "notification" if node.get_attr("type") == Some("devices") => {
                    self.on_devices_notification(&node).await
                }
                "notification" => self.on_identity_change(&node).await,
                _ => {}
            },
        }
    }

    /// Sends `node` on the current socket; false when there is none or it is closing.
    async fn send_node(&self, node: Node) -> bool {
        match &self.link {
            Some((querier, ..)) => querier.send(node).await.is_ok(),
            None => false,
        }
    }

    /// Runs a Signal/key-database step on the blocking pool with the session's store.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut KeySignalStore) -> T + Send + 'static,
    ) -> Option<T> {
        let (_, store, _) = self.link.as_ref()?;
        let mut store = store.clone();
        tokio::task::spawn_blocking(move || f(&mut store))
            .await
            .ok()
    }
}
