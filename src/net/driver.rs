//! One task per session: it owns the session's state machine, its credentials and its one
//! socket, executes the machine's effects and feeds what happens back as events. Nothing
//! else touches the socket, so two sockets for one session cannot happen by accident: the
//! machine decides when to dial, and the driver holds at most one link at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::net::board::StatusBoard;
use crate::net::conn::{Conn, ConnEvent};
use crate::net::handle::Action;
use crate::net::inbound;
use crate::net::link::{self, DialKeys, Endpoint, LinkEvent};
use crate::net::metrics::Metrics;
use crate::net::prekeys::PreKeys;
use crate::net::ratelimit::RateLimiter;
use crate::net::vault::Vault;
use crate::session::policy::Policy;
use crate::session::{Command, ConnId, Effect, Event, Session, TimerId};
use crate::store::keys::KeyStore;
use crate::wa::creds::Credentials;
use crate::wa::pair;
use crate::wa::payload::ClientVersion;
use crate::wa::stanza::{self, Cause, Incoming};

/// Everything a driver shares with the rest of the pool.
#[derive(Clone)]
pub struct Shared {
    pub endpoint: Endpoint,
    pub limiter: RateLimiter,
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    /// The key database (`<data_dir>/keys.db`): one-time pre-keys.
    pub keys: Arc<KeyStore>,
}

/// How one session is set up.
pub struct SessionSpec {
    pub id: String,
    pub label: String,
    pub phone: Option<String>,
    pub policy: Policy,
    /// Connect at start (autostart, or it was online before).
    pub start: bool,
    pub seed: u64,
}

/// Messages from the pool to a driver.
#[derive(Debug)]
pub enum DriverMsg {
    Act(Action),
    SetPolicy(Box<Policy>),
    /// A config reload changed the client version.
    SetVersion(ClientVersion),
}

/// Results of work the driver started in the background.
enum Background {
    Ping {
        conn: ConnId,
        rtt: Result<Duration, ()>,
    },
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
        events: mpsc::Receiver<ConnEvent>,
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
    spec: SessionSpec,
    shared: Shared,
    vault: Vault,
    session: Session,
    creds: Option<Credentials>,
    link: Link,
    refs: Vec<String>,
    /// The version dials claim, and the edge routing of the last `<ib><edge_routing>`.
    version: ClientVersion,
    routing: Option<Vec<u8>>,
    prekeys: PreKeys,
    timers: BTreeMap<(Instant, u64), TimerId>,
    timer_seq: u64,
    dial_started: Option<Instant>,
    progress_tx: mpsc::Sender<(ConnId, LinkEvent)>,
    background_tx: mpsc::Sender<Background>,
    cancel: CancellationToken,
}

/// Runs one session until `cancel` fires, then closes its socket.
pub async fn run(
    spec: SessionSpec,
    shared: Shared,
    vault: Vault,
    mut inbox: mpsc::Receiver<DriverMsg>,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!("session", session = %spec.id);
    async move {
        let (progress_tx, mut progress_rx) = mpsc::channel(8);
        let (background_tx, mut background_rx) = mpsc::channel(8);
        let now = Instant::now().into_std();
        let loaded = vault.load();
        let creds = loaded.credentials;
        let mut session = Session::new(
            spec.id.clone(),
            spec.label.clone(),
            spec.policy.clone(),
            creds.is_some(),
            spec.seed,
            now,
        );
        let mut first = Vec::new();
        if let Some(note) = loaded.note {
            warn!(%note, "credentials restored from a backup");
            first.extend(session.handle(now, Event::CredentialsRestored { note }));
        }
        if let Some(reason) = loaded.problem {
            warn!(%reason, "no usable credentials");
            first.extend(session.handle(now, Event::CredentialsLost { reason }));
        }
        let version = shared.endpoint.version.to_string();
        first.extend(session.handle(now, Event::ClientVersion { version }));
        let mut driver = Driver {
            version: shared.endpoint.version,
            routing: None,
            prekeys: PreKeys::new(&spec.id, &shared, &spec.policy),
            spec,
            shared,
            vault,
            session,
            creds,
            link: Link::None,
            refs: Vec::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            dial_started: None,
            progress_tx,
            background_tx,
            cancel: cancel.clone(),
        };
        if driver.spec.start {
            first.extend(driver.session.handle(now, Event::Start));
        }
        driver.execute(first).await;
        driver.publish();

        loop {
            let next_timer = driver.timers.keys().next().map(|(at, _)| *at);
            let sleep = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at).await,
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
                Some((conn, event)) = progress_rx.recv() => driver.on_link(conn, event),
                event = conn_event => driver.on_conn_event(event).await,
                Some(done) = background_rx.recv() => driver.on_background(done),
                _ = sleep => driver.on_timer(),
            };
            driver.execute(effects).await;
            driver.publish();
        }
        driver.shutdown().await;
    }
    .instrument(span)
    .await
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver {
    fn publish(&mut self) {
        let mut status = self.session.status(now());
        // Remember whether the session is meant to be online, so a restart resumes it.
        use crate::session::status::StateName as S;
        let wanted = matches!(
            status.state,
            S::Online | S::Connecting | S::Handshaking | S::Backoff | S::Cooldown
        );
        self.vault.set_online(wanted);
        status.phone = self
            .creds
            .as_ref()
            .and_then(|c| c.account.as_ref())
            .map(|a| a.phone.clone())
            .or_else(|| self.spec.phone.clone());
        status.paired = self.creds.as_ref().is_some_and(|c| c.is_paired());
        let backups = self.vault.backup_info();
        status.backups = backups.count;
        status.last_backup_at = backups.last_at;
        // The machine knows which ref it shows; the QR text needs our public keys.
        if let (Some(qr), Some(creds)) = (status.qr.as_mut(), self.creds.as_ref()) {
            let index = qr.index.saturating_sub(1) as usize;
            if let Some(reference) = self.refs.get(index) {
                let platform = self.shared.endpoint.device.browser.qr_platform();
                qr.text = pair::qr_text(reference, creds, platform);
            }
        }
        self.shared.board.publish(status);
    }

    fn on_message(&mut self, msg: DriverMsg) -> Vec<Effect> {
        match msg {
            DriverMsg::SetPolicy(policy) => {
                self.prekeys.timeout = policy.query_timeout;
                self.session.set_policy(*policy);
                Vec::new()
            }
            DriverMsg::SetVersion(version) => {
                self.version = version;
                let version = version.to_string();
                self.session.handle(now(), Event::ClientVersion { version })
            }
            DriverMsg::Act(action) => {
                info!(action = action.name(), "operator action");
                let command = match action {
                    Action::Connect => Command::Connect,
                    Action::Reconnect => Command::ReconnectNow,
                    Action::Disconnect => Command::Disconnect,
                    Action::ResetCooldown => Command::ResetCooldown,
                    Action::Wipe { backup } => Command::WipeCredentials { backup },
                    Action::Pair => Command::Pair,
                };
                self.session.handle(now(), Event::Operator(command))
            }
        }
    }

    fn on_timer(&mut self) -> Vec<Effect> {
        let Some((_, timer)) = self.timers.pop_first() else {
            return Vec::new();
        };
        self.session.handle(now(), Event::TimerFired { timer })
    }

    fn on_background(&mut self, done: Background) -> Vec<Effect> {
        match done {
            Background::Ping { conn, rtt: Ok(rtt) } => {
                self.shared.metrics.keepalive_rtt.observe(rtt.as_secs_f64());
                self.session
                    .handle(now(), Event::PingAnswered { conn, rtt })
            }
            Background::Ping { conn, rtt: Err(()) } => {
                self.session.handle(now(), Event::PingMissed { conn })
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
                if waited {
                    self.shared.metrics.connects_rate_limited.inc();
                }
                Vec::new()
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
                self.session.handle(
                    now(),
                    Event::Closed {
                        conn,
                        cause: Cause::Closed,
                    },
                )
            }
            Some(ConnEvent::Closed { cause, by_us }) => {
                if by_us {
                    debug!(%cause, "socket closed by us");
                } else {
                    info!(%cause, code = cause.code(), "disconnected");
                }
                self.link = Link::None;
                self.session.handle(now(), Event::Closed { conn, cause })
            }
            Some(event @ (ConnEvent::Received | ConnEvent::Undecodable { .. })) => {
                inbound::note_frame(&event, &self.shared.metrics);
                self.session.handle(now(), Event::FrameReceived { conn })
            }
            Some(ConnEvent::Node(node)) => {
                let mut effects = self.session.handle(now(), Event::FrameReceived { conn });
                effects.extend(self.on_node(conn, node).await);
                effects
            }
        }
    }

    async fn send(&self, node: crate::wa::node::Node) {
        if let Link::Open { handle, .. } = &self.link
            && let Err(e) = handle.send(node).await
        {
            debug!(error = %e, "send failed: the connection is closing");
        }
    }

    async fn on_node(&mut self, conn: ConnId, node: crate::wa::node::Node) -> Vec<Effect> {
        match stanza::classify(node) {
            Incoming::PairDevice { id, refs } => {
                self.send(stanza::iq_result(&id)).await;
                self.refs = refs.clone();
                self.session.handle(now(), Event::QrRefs { conn, refs })
            }
            Incoming::PairSuccess { id, node } => self.on_pair_success(conn, &id, &node).await,
            Incoming::Success { .. } => {
                if let Some(started) = self.dial_started.take() {
                    self.shared
                        .metrics
                        .connect_duration
                        .observe(started.elapsed().as_secs_f64());
                }
                if let (Link::Open { handle, .. }, Some(creds)) = (&self.link, &self.creds) {
                    self.prekeys.after_login(handle.querier(), creds.clone());
                }
                self.session.handle(now(), Event::Online { conn })
            }
            Incoming::Ping { id } => {
                self.send(stanza::iq_result(&id)).await;
                Vec::new()
            }
            Incoming::Ib(node) | Incoming::Notification(node) | Incoming::Other(node) => {
                if let (Link::Open { handle, .. }, Some(creds)) = (&self.link, &self.creds) {
                    let (acks, routing) = (self.shared.endpoint.send_acks, &mut self.routing);
                    inbound::answer(&node, handle, creds, acks, &self.prekeys, routing).await;
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    async fn on_pair_success(
        &mut self,
        conn: ConnId,
        id: &str,
        node: &crate::wa::node::Node,
    ) -> Vec<Effect> {
        let Some(creds) = self.creds.as_mut() else {
            return Vec::new();
        };
        let result = pair::parse_pair_success(node)
            .and_then(|success| pair::complete_pairing(creds, &success));
        match result {
            Ok((account, reply)) => {
                let phone = account.phone.clone();
                info!(jid = %account.jid, "paired");
                creds.account = Some(account);
                if let Err(e) = self.vault.save(creds) {
                    warn!(error = %e, "could not save credentials after pairing");
                }
                self.send(reply).await;
                self.session.handle(now(), Event::Paired { conn, phone })
            }
            Err(err) => {
                warn!(error = %err, "pair-success rejected");
                self.send(pair::pair_error_reply(id, &err)).await;
                self.close_link().await;
                Vec::new()
            }
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
            self.creds = Some(Credentials::generate());
        }
        self.creds.as_ref()
    }

    async fn execute(&mut self, effects: Vec<Effect>) {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            let more = self.execute_one(effect).await;
            queue.extend(more);
        }
    }

    async fn execute_one(&mut self, effect: Effect) -> Vec<Effect> {
        match effect {
            Effect::Dial { conn } => {
                if let Some(open) = self.link.conn() {
                    // The machine guarantees this never happens; if it did, refusing the
                    // second dial is the only safe answer.
                    warn!(open, conn, "dial refused: a connection is still open");
                    return Vec::new();
                }
                let (version, routing) = (self.version, self.routing.clone());
                let device = self.shared.endpoint.device.clone();
                let Some(creds) = self.ensure_credentials() else {
                    return Vec::new();
                };
                let keys = match DialKeys::from_credentials(creds, &version, &device) {
                    Ok(keys) => keys.with_routing(routing),
                    Err(e) => {
                        return self.session.handle(
                            now(),
                            Event::Closed {
                                conn,
                                cause: e.cause(),
                            },
                        );
                    }
                };
                let cancel = self.cancel.child_token();
                self.link = Link::Dialling {
                    conn,
                    cancel: cancel.clone(),
                };
                self.dial_started = Some(Instant::now());
                tokio::spawn(
                    link::open(
                        conn,
                        self.shared.endpoint.clone(),
                        keys,
                        self.spec.policy.connect_timeout,
                        self.shared.limiter.clone(),
                        self.progress_tx.clone(),
                        cancel,
                    )
                    .in_current_span(),
                );
                Vec::new()
            }
            Effect::Close { conn, .. } => {
                if self.link.conn() == Some(conn) {
                    if let Link::Dialling { cancel, .. } = &self.link {
                        cancel.cancel();
                        self.link = Link::None;
                        return self.session.handle(
                            now(),
                            Event::Closed {
                                conn,
                                cause: Cause::Closed,
                            },
                        );
                    }
                    self.close_link().await;
                }
                Vec::new()
            }
            Effect::SendPing { conn } => {
                if let Link::Open {
                    handle, conn: open, ..
                } = &self.link
                    && *open == conn
                {
                    let querier = handle.querier();
                    let deadline = self.spec.policy.keepalive_deadline;
                    let tx = self.background_tx.clone();
                    tokio::spawn(async move {
                        let rtt = querier.ping(deadline).await.map_err(|_| ());
                        let _ = tx.send(Background::Ping { conn, rtt }).await;
                    });
                }
                Vec::new()
            }
            Effect::ScheduleTimer { timer, at } => {
                self.timer_seq += 1;
                self.timers
                    .insert((Instant::from_std(at), self.timer_seq), timer);
                Vec::new()
            }
            Effect::SaveCredentials => {
                if let Some(creds) = &self.creds
                    && let Err(e) = self.vault.save(creds)
                {
                    warn!(error = %e, "could not save credentials");
                }
                Vec::new()
            }
            Effect::BackupCredentials => {
                if let Err(e) = self.vault.backup() {
                    self.shared.metrics.backups_failed.inc();
                    warn!(error = %e, "credential backup failed");
                } else {
                    self.shared.metrics.backups_written.inc();
                }
                Vec::new()
            }
            Effect::WipeCredentials { backup } => {
                if let Err(e) = self.vault.wipe(backup) {
                    warn!(error = %e, "could not wipe credentials");
                }
                self.creds = None;
                self.refs.clear();
                self.routing = None;
                self.prekeys.forget().await;
                Vec::new()
            }
            Effect::ShowQr { .. } => {
                self.shared.metrics.qr_shown.inc();
                Vec::new()
            }
            Effect::Record(entry) => {
                match entry.code {
                    Some(440) => {
                        self.shared.metrics.conflicts.inc();
                    }
                    Some(401) => {
                        self.shared.metrics.logouts.inc();
                    }
                    _ => {}
                }
                Vec::new()
            }
            Effect::Reconnect { cause } => {
                self.shared.metrics.reconnect(&cause);
                Vec::new()
            }
        }
    }

    /// Closes the socket within the shutdown budget and saves what is worth keeping.
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
        let online = self.session.status(now()).state == crate::session::status::StateName::Online;
        self.vault.set_online(online);
    }
}
