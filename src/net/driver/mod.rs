//! One task per session: it owns the session's state machine, its credentials and its one
//! socket, executes the machine's effects and feeds what happens back as events. Nothing
//! else touches the socket, so two sockets for one session cannot happen by accident: the
//! machine decides when to dial, and the driver holds at most one link at a time.
//!
//! Store calls run on the blocking pool (`VaultHandle`); every task the driver spawns (dial,
//! ping, the after-login queries) is tracked and awaited before the driver ends.

mod effects;
mod node;
mod pair_code;

pub use pair_code::{CodeReply, CodeShown};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

use crate::net::board::StatusBoard;
use crate::net::chan;
use crate::net::conn::{Conn, ConnEvent};
use crate::net::inbound;
use crate::net::link::{Endpoint, LinkEvent};
use crate::net::messages::{self, MessageEvent, MessengerHandle, MessengerMsg, MessengerSetup};
use crate::net::metrics::Metrics;
use crate::net::prekeys::PreKeys;
use crate::net::ratelimit::RateLimiter;
use crate::net::vault::{Stored, VaultError, VaultHandle};
use crate::session::policy::Policy;
use crate::session::status::{Phase, Status};
use crate::session::{Command, ConnId, Effect, Event, Session, TimerQueue};
use crate::store::CredentialStore;
use crate::store::keys::{KeyStore, KeysError};
use crate::store::tally::MessengerStart;
use crate::wa::creds::Credentials;
use crate::wa::payload::ClientVersion;
use crate::wa::stanza::Cause;

/// How long shutdown waits for the driver's own tasks (dial, ping, queries) once cancelled.
const TASKS_BUDGET: Duration = Duration::from_millis(500);

/// At most this many waiting socket events are handled after another before the driver
/// publishes and looks at its other inputs again.
const READY_FRAMES: usize = 32;

/// How long a driver waits before asking an unreachable store again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Everything a driver shares with the rest of the pool.
#[derive(Clone)]
pub struct Shared {
    pub endpoint: Endpoint,
    pub limiter: RateLimiter,
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn CredentialStore>,
    /// The key database (`<data_dir>/keys.db`): one-time pre-keys, Signal records.
    pub keys: Arc<KeyStore>,
    /// Clustered: asked before every dial (the lease); `None` dials freely.
    pub gate: Option<Arc<dyn crate::net::gate::DialGate>>,
    /// Every session's message events (received, status changes).
    pub events: broadcast::Sender<MessageEvent>,
    /// `[messages]`: the outbox's send limits and retention (a reload replaces it).
    pub messages: watch::Receiver<crate::config::MessagesConfig>,
    /// `[probe]`, when configured.
    pub probe: Option<crate::config::ProbeConfig>,
    /// Where webhook events go (queued by the messenger with their rows).
    pub hooks: Arc<crate::net::hooks::Hooks>,
}

/// How one session is set up.
pub struct SessionSpec {
    pub id: String,
    pub label: String,
    pub phone: Option<String>,
    pub policy: Policy,
    /// Connect at start even if the session was not online before.
    pub autostart: bool,
    pub seed: u64,
    /// The proxy dials go through (`None`: direct).
    pub proxy: Option<crate::config::ProxyUrl>,
}

/// What a driver keeps of its `SessionSpec`: the policy lives in the session machine only
/// (one copy per session, and the one a reload updates).
struct Identity {
    id: String,
    phone: Option<String>,
    autostart: bool,
    proxy: Option<crate::config::ProxyUrl>,
}

/// Messages from the pool to a driver.
#[derive(Debug)]
pub enum DriverMsg {
    Act(Command),
    SetPolicy(Box<Policy>),
    /// A config reload changed the client version.
    SetVersion(ClientVersion),
    /// A config reload changed the session's proxy (used from the next dial on).
    SetProxy(Box<Option<crate::config::ProxyUrl>>),
    /// The session's outbox has new messages.
    Wake,
    /// The operator asks for a pairing code for this phone number (`pair_code.rs`).
    PairCode {
        phone: String,
        reply: CodeReply,
    },
}

/// Results of work the driver started in the background, on one channel (each channel costs
/// every session about a kilobyte and a half for its whole life).
pub(crate) enum Background {
    /// Progress of the dial `ConnId` (`link::open`).
    Link(ConnId, LinkEvent),
    Ping {
        conn: ConnId,
        rtt: Result<Duration, ()>,
    },
    /// A step of pairing by code (boxed: the channel's blocks hold 32 of the largest variant).
    Code(Box<pair_code::CodeStep>),
}

impl From<(ConnId, LinkEvent)> for Background {
    fn from((conn, event): (ConnId, LinkEvent)) -> Self {
        Background::Link(conn, event)
    }
}

/// The open (or opening) socket of the session, at most one.
enum Link {
    None,
    Dialling {
        conn: ConnId,
        cancel: CancellationToken,
    },
    Open {
        conn: ConnId,
        handle: Conn,
        events: chan::Receiver<ConnEvent>,
    },
}

impl Link {
    fn conn(&self) -> Option<ConnId> {
        match self {
            Link::None => None,
            Link::Dialling { conn, .. } | Link::Open { conn, .. } => Some(*conn),
        }
    }
}

struct Driver {
    spec: Identity,
    shared: Arc<Shared>,
    vault: VaultHandle,
    session: Session,
    /// Boxed: the driver lives as long as the session, and most of the time only reads these.
    creds: Option<Arc<Credentials>>,
    link: Link,
    /// The code pairing asked for on this connection, from `companion_hello` to its finish.
    code: Option<(ConnId, crate::wa::pair_code::CompanionCode)>,
    /// The version dials claim, and the edge routing of the last `<ib><edge_routing>`.
    version: ClientVersion,
    routing: Option<Vec<u8>>,
    prekeys: PreKeys,
    messenger: MessengerHandle,
    /// The messenger's outbox figures, shown in the status.
    outbox: watch::Receiver<crate::session::status::OutboxView>,
    /// The probe's reconnect requests acted on so far.
    silent_seen: u32,
    /// The messenger was told of a logout (told once per logout).
    told_logged_out: bool,
    timers: TimerQueue,
    /// The `was_online` flag as last written, so publishing writes only changes.
    was_online: bool,
    dial_started: Option<Instant>,
    background_tx: chan::Sender<Background>,
    /// Dial, ping and query tasks; cancelled and awaited at shutdown.
    tasks: TaskTracker,
    tasks_cancel: CancellationToken,
}

/// Runs one session until `cancel` fires, then closes its socket.
///
/// This future lives as long as the session, so it is kept small: its arguments arrive boxed
/// (an async fn keeps its arguments for its whole life), and every step that awaits is boxed
/// for the time it runs instead of reserving room in the idle future (issue 15).
pub fn run(
    spec: SessionSpec,
    shared: Arc<Shared>,
    inbox: chan::Receiver<DriverMsg>,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!("session", session = %spec.id);
    run_in_span(Box::new((spec, shared)), inbox, cancel).instrument(span)
}

async fn run_in_span(
    args: Box<(SessionSpec, Arc<Shared>)>,
    inbox: chan::Receiver<DriverMsg>,
    cancel: CancellationToken,
) {
    // Opening the store and loading the session run in a future of their own, boxed and
    // freed before the session's long life starts: their state would otherwise take room
    // in the future that lives as long as the session.
    let Some(started) = Box::pin(open_and_load(args, &cancel)).await else {
        return;
    };
    serve(started, inbox, cancel).await;
}

/// Opens the session's store and loads it, showing why on the board when it cannot; `None`
/// when the session must not start (or was cancelled meanwhile).
async fn open_and_load(
    args: Box<(SessionSpec, Arc<Shared>)>,
    cancel: &CancellationToken,
) -> Option<Box<(Driver, chan::Receiver<Background>)>> {
    {
        // Moved out in a block of its own: a box moved out of is freed only when it goes out
        // of scope, which for an argument is the end of the session.
        let (spec, shared) = {
            let args = args;
            *args
        };
        let keep = spec.policy.backups_kept;
        let (vault, mut stored, messenger_start) = loop {
            // The messenger's start read rides along (keys.db, not the credential store).
            let read = {
                let (keys, id) = (shared.keys.clone(), spec.id.clone());
                move || messages::start_read(&keys, &id)
            };
            match VaultHandle::open(shared.store.clone(), &spec.id, keep, read).await {
                Ok(opened) => break opened,
                Err(VaultError::Unavailable(reason)) => {
                    let phase = Phase::Failed { probe_at: None };
                    not_started(&shared, &spec, phase, format!("{reason}; asking again"));
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                    }
                }
                Err(err) => {
                    // Locked by another process, or the directory is unusable: show why and
                    // never dial.
                    let phase = match err {
                        VaultError::Locked(_) => Phase::Stopped,
                        _ => Phase::Failed { probe_at: None },
                    };
                    not_started(&shared, &spec, phase, err.to_string());
                    return None;
                }
            }
        };
        // The store could not be asked (Redis unreachable): nothing is known about the
        // credentials, so wait and ask again (the lock kept) rather than start as if there
        // were none.
        while let Some(reason) = stored.0.unavailable.clone() {
            let phase = Phase::Failed { probe_at: None };
            not_started(&shared, &spec, phase, format!("{reason}; asking again"));
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(STORE_RETRY) => {}
            }
            let Some(again) = vault.run(|v| v.stored()).await else {
                let phase = Phase::Failed { probe_at: None };
                let reason = format!("the store of session {} could not be read", spec.id);
                not_started(&shared, &spec, phase, reason);
                return None;
            };
            stored = again;
        }
        let (background_tx, background_rx) = chan::channel(8);
        let opened = (vault, stored, messenger_start);
        let (mut driver, first) = Driver::start(spec, shared, opened, background_tx, cancel);
        Box::pin(driver.execute(first)).await;
        Box::pin(driver.publish()).await;
        Some(Box::new((driver, background_rx)))
    }
}

/// The session's life once started: events in, effects out, until cancelled.
async fn serve(
    started: Box<(Driver, chan::Receiver<Background>)>,
    mut inbox: chan::Receiver<DriverMsg>,
    cancel: CancellationToken,
) {
    {
        // Unboxed in a block of its own, as `run_in_span`'s arguments are (an argument
        // lives as long as the future; the driver must be held once, not twice).
        let (mut driver, mut background_rx) = {
            let started = started;
            *started
        };
        // Wakes the loop when the messenger's outbox figures change (publish reads them).
        let mut outbox_changes = driver.outbox.clone();

        loop {
            let next_timer = driver.timers.next_at();
            let sleep = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let conn_event = async {
                match &mut driver.link {
                    Link::Open { events, .. } => events.recv().await,
                    _ => std::future::pending().await,
                }
            };
            let effects = tokio::select! {
                _ = cancel.cancelled() => break,
                msg = inbox.recv() => match msg {
                    None => break,
                    Some(msg) => driver.on_message(msg),
                },
                event = conn_event => Box::pin(driver.on_conn_event(event)).await,
                Some(done) = background_rx.recv() => driver.on_background(done),
                Ok(()) = outbox_changes.changed() => driver.on_outbox_change(),
                _ = sleep => driver.on_timer(),
            };
            Box::pin(driver.execute(effects)).await;
            Box::pin(driver.handle_ready()).await;
            Box::pin(driver.publish()).await;
        }
        Box::pin(driver.shutdown()).await;
    }
}

/// Publishes why a session never started (it is never dialled).
fn not_started(shared: &Shared, spec: &SessionSpec, phase: Phase, reason: String) {
    warn!(%reason, "session not started");
    let mut status = Status::new(&spec.id, &spec.label, now());
    status.phase = phase;
    status.reason = reason;
    status.proxy = spec.proxy.as_ref().map(ToString::to_string);
    shared.board.publish(status);
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver {
    /// Builds the machine from what the store holds and feeds it those facts; starts it when
    /// configured to or when it was meant to be online.
    fn start(
        spec: SessionSpec,
        shared: Arc<Shared>,
        (vault, (loaded, was_online, backups), messenger_start): (
            VaultHandle,
            Stored,
            Result<MessengerStart, KeysError>,
        ),
        background_tx: chan::Sender<Background>,
        cancel: &CancellationToken,
    ) -> (Driver, Vec<Effect>) {
        let at = now();
        let SessionSpec {
            id,
            label,
            phone,
            policy,
            autostart,
            seed,
            proxy,
        } = spec;
        let (tasks, tasks_cancel) = (TaskTracker::new(), cancel.child_token());
        let prekeys = PreKeys::new(&id, &shared, &policy, (tasks.clone(), tasks_cancel.clone()));
        let setup = MessengerSetup {
            keys: shared.keys.clone(),
            metrics: shared.metrics.clone(),
            events: shared.events.clone(),
            hooks: shared.hooks.clone(),
            timeout: policy.query_timeout,
            config: shared.messages.clone(),
            probe: shared.probe.clone().map(|config| messages::ProbeSetup {
                config,
                board: shared.board.clone(),
            }),
            start: messenger_start,
        };
        let session = Session::new(
            id.clone(),
            label,
            policy,
            loaded.credentials.is_some(),
            seed,
            at,
        );
        let spec = Identity {
            id,
            phone,
            autostart,
            proxy,
        };
        let (messenger, outbox) = messages::spawn(&spec.id, setup, (&tasks, tasks_cancel.clone()));
        let mut driver = Driver {
            outbox,
            silent_seen: 0,
            told_logged_out: false,
            version: shared.endpoint.version,
            routing: None,
            prekeys,
            messenger,
            spec,
            shared,
            vault,
            session,
            creds: loaded.credentials.map(Arc::new),
            link: Link::None,
            code: None,
            timers: TimerQueue::new(),
            was_online,
            dial_started: None,
            background_tx,
            tasks,
            tasks_cancel,
        };
        let mut first = Vec::new();
        let version = driver.version.to_string();
        first.extend(driver.session.handle(at, Event::ClientVersion { version }));
        first.extend(driver.session.handle(at, Event::Backups(backups)));
        let phone = driver.phone();
        first.extend(driver.session.handle(at, Event::Phone { phone }));
        if let Some(note) = loaded.note {
            warn!(%note, "credentials restored from a backup");
            first.extend(
                driver
                    .session
                    .handle(at, Event::CredentialsRestored { note }),
            );
        }
        if let Some(reason) = loaded.problem {
            warn!(%reason, "no usable credentials");
            first.extend(driver.session.handle(at, Event::CredentialsLost { reason }));
        }
        if driver.spec.autostart || was_online {
            first.extend(driver.session.handle(at, Event::Start));
        }
        (driver, first)
    }

    /// The phone the credentials name, else the configured one.
    fn phone(&self) -> Option<String> {
        self.creds
            .as_ref()
            .and_then(|c| c.account.as_ref())
            .map(|a| a.phone.clone())
            .or_else(|| self.spec.phone.clone())
    }

    /// Publishes the machine's status and persists whether the session is meant to be online.
    async fn publish(&mut self) {
        let mut status = self.session.status(now());
        status.outbox = *self.outbox.borrow();
        status.proxy = self.spec.proxy.as_ref().map(ToString::to_string);
        let logged_out = status.state() == crate::session::status::StateName::LoggedOut;
        if logged_out && !self.told_logged_out {
            self.messenger.pass(MessengerMsg::LoggedOut);
        }
        self.told_logged_out = logged_out;
        self.shared.board.publish(status);
        self.remember_online(self.session.state().wants_online())
            .await;
    }

    /// Persists the `was_online` flag when it changed (off the runtime).
    async fn remember_online(&mut self, wanted: bool) {
        if self.was_online != wanted {
            self.was_online = wanted;
            self.vault.run(move |v| v.set_online(wanted)).await;
        }
    }

    /// The messenger's figures changed: a new reconnect request of the probe (a silent
    /// probe on a socket that looked healthy) closes the socket and dials again at once.
    fn on_outbox_change(&mut self) -> Vec<Effect> {
        let asked = self.outbox.borrow().silent_reconnects;
        if asked == self.silent_seen {
            return Vec::new();
        }
        self.silent_seen = asked;
        warn!("the probe did not arrive: reconnecting");
        self.session
            .handle(now(), Event::Operator(Command::ReconnectNow))
    }

    fn on_message(&mut self, msg: DriverMsg) -> Vec<Effect> {
        match msg {
            DriverMsg::SetPolicy(policy) => {
                self.prekeys.timeout = policy.query_timeout;
                self.session.set_policy(*policy);
                Vec::new()
            }
            DriverMsg::SetProxy(proxy) => {
                self.spec.proxy = *proxy;
                Vec::new()
            }
            DriverMsg::SetVersion(version) => {
                self.version = version;
                let version = version.to_string();
                self.session.handle(now(), Event::ClientVersion { version })
            }
            DriverMsg::Wake => {
                self.messenger.wake();
                Vec::new()
            }
            DriverMsg::PairCode { phone, reply } => {
                self.request_code(&phone, reply);
                Vec::new()
            }
            DriverMsg::Act(command) => {
                info!(command = command.name(), "operator command");
                self.session.handle(now(), Event::Operator(command))
            }
        }
    }

    fn on_timer(&mut self) -> Vec<Effect> {
        let Some(timer) = self.timers.pop_due(now()) else {
            return Vec::new();
        };
        self.session.handle(now(), Event::TimerFired { timer })
    }

    fn on_background(&mut self, done: Background) -> Vec<Effect> {
        match done {
            Background::Link(conn, event) => self.on_link(conn, event),
            Background::Ping { conn, rtt: Ok(rtt) } => {
                self.shared.metrics.keepalive_rtt.observe(rtt.as_secs_f64());
                self.session
                    .handle(now(), Event::PingAnswered { conn, rtt })
            }
            Background::Ping { conn, rtt: Err(()) } => {
                self.session.handle(now(), Event::PingMissed { conn })
            }
            Background::Code(step) => {
                self.on_code_step(*step);
                Vec::new()
            }
        }
    }

    fn on_link(&mut self, conn: ConnId, event: LinkEvent) -> Vec<Effect> {
        if self.link.conn() != Some(conn) {
            // A dial we already gave up on: its connection (if any) is dropped here,
            // which closes it.
            return Vec::new();
        }
        match event {
            LinkEvent::Dialling { waited } => {
                self.shared.metrics.connects.inc();
                let peak = i64::try_from(self.shared.limiter.peak_per_second()).unwrap_or(i64::MAX);
                self.shared.metrics.connects_peak_per_second.set(peak);
                if waited {
                    self.shared.metrics.connects_rate_limited.inc();
                }
                self.session.handle(now(), Event::DialStarted { conn })
            }
            LinkEvent::Dialled => self.session.handle(now(), Event::Dialled { conn }),
            LinkEvent::Ready(handle, events) => {
                self.link = Link::Open {
                    conn,
                    handle,
                    events,
                };
                self.session.handle(now(), Event::HandshakeDone { conn })
            }
            LinkEvent::Failed(err) => {
                warn!(error = %err, "connect failed");
                self.link = Link::None;
                self.session.handle(
                    now(),
                    Event::Closed {
                        conn,
                        cause: err.cause(),
                    },
                )
            }
        }
    }

    async fn on_conn_event(&mut self, event: Option<ConnEvent>) -> Vec<Effect> {
        let Some(conn) = self.link.conn() else {
            return Vec::new();
        };
        match event {
            None => {
                self.link = Link::None;
                self.messenger.pass(MessengerMsg::Offline);
                self.session.handle(
                    now(),
                    Event::Closed {
                        conn,
                        cause: Cause::Closed,
                    },
                )
            }
            Some(ConnEvent::Closed { cause, by_us }) => {
                let cause = *cause;
                if by_us {
                    debug!(%cause, "socket closed by us");
                } else {
                    info!(%cause, code = cause.code(), "disconnected");
                }
                self.link = Link::None;
                self.messenger.pass(MessengerMsg::Offline);
                self.session.handle(now(), Event::Closed { conn, cause })
            }
            Some(event @ (ConnEvent::Received | ConnEvent::Undecodable { .. })) => {
                inbound::note_frame(&event, &self.shared.metrics);
                self.session.handle(now(), Event::FrameReceived { conn })
            }
            Some(ConnEvent::Node(node)) => {
                let mut effects = self.session.handle(now(), Event::FrameReceived { conn });
                effects.extend(self.on_node(conn, *node).await);
                effects
            }
        }
    }

    /// Handles the socket events already waiting (at most [`READY_FRAMES`]), so that the
    /// publish after them is one: a login's burst of pushes arrives in one read, and one
    /// publish shows where they all led.
    async fn handle_ready(&mut self) {
        for _ in 0..READY_FRAMES {
            let Link::Open { events, .. } = &mut self.link else {
                return;
            };
            let Some(event) = events.try_recv() else {
                return;
            };
            let effects = Box::pin(self.on_conn_event(Some(event))).await;
            Box::pin(self.execute(effects)).await;
        }
    }

    async fn close_link(&mut self) {
        match &self.link {
            Link::Open { handle, .. } => handle.close().await,
            Link::Dialling { cancel, .. } => cancel.cancel(),
            Link::None => {}
        }
    }

    fn ensure_credentials(&mut self) -> Option<&Credentials> {
        if self.creds.is_none() {
            self.creds = Some(Arc::new(Credentials::generate()));
        }
        self.creds.as_deref()
    }

    /// Closes the socket within the shutdown budget, ends the driver's own tasks and saves
    /// whether the session is meant to be online (the same rule as every publish).
    async fn shutdown(&mut self) {
        if let Link::Open { handle, events, .. } = &mut self.link {
            handle.close().await;
            // Wait briefly for the close to go out; the pool bounds the whole shutdown.
            let _ = tokio::time::timeout(Duration::from_millis(1500), async {
                while let Some(event) = events.recv().await {
                    if matches!(event, ConnEvent::Closed { .. }) {
                        break;
                    }
                }
            })
            .await;
        }
        if let Link::Dialling { cancel, .. } = &self.link {
            cancel.cancel();
        }
        self.link = Link::None;
        self.tasks_cancel.cancel();
        if !crate::net::tasks::drain(&self.tasks, TASKS_BUDGET).await {
            warn!("some session tasks did not end within {TASKS_BUDGET:?}");
        }
        self.remember_online(self.session.state().wants_online())
            .await;
    }
}
