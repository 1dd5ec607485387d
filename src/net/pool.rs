//! The pool: starts one driver per configured session, routes operator commands to them,
//! applies config reloads, and shuts everything down within a bound. Clustered (a
//! [`ClusterSeam`]), a session's driver runs only between the cluster's `Claim` and `Release`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, MessagesConfig, ServerConfig, SessionConfig};
use crate::net::board::StatusBoard;
use crate::net::chan;
use crate::net::driver::{self, DriverMsg, SessionSpec, Shared};
use crate::net::footprint;
use crate::net::gate::ClusterSeam;
use crate::net::handle::{PoolHandle, PoolRequest};
use crate::net::hooks::{Hooks, Targets};
use crate::net::link::Endpoint;
use crate::net::messages::EVENTS_CAPACITY;
use crate::net::metrics::Metrics;
use crate::net::ratelimit::RateLimiter;
use crate::net::tasks::drain;
use crate::store::CredentialStore;
use crate::store::keys::KeyStore;

/// How long shutdown waits for every session to close its socket.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);

struct Entry {
    inbox: chan::Sender<DriverMsg>,
    cancel: CancellationToken,
    /// Boxed: the map keeps room for up to twice its entries, and a config is about a
    /// kilobyte (issue 15's per-session memory).
    config: Box<SessionConfig>,
    task: tokio::task::JoinHandle<()>,
}

/// A running pool: its handle, and the task to await for a clean stop.
pub struct Running {
    pub handle: PoolHandle,
    pub task: tokio::task::JoinHandle<()>,
    /// Sends a new config (SIGHUP reload).
    pub reload: mpsc::Sender<Config>,
}

struct Pool {
    /// One copy for every session (each holds a reference, not its own copy).
    shared: Arc<Shared>,
    entries: HashMap<String, Entry>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    seed: u64,
    /// The `[server]` table in force, to notice a changed `client_version` on reload.
    server: ServerConfig,
    /// `[messages]` in force; every messenger follows it.
    messages: watch::Sender<MessagesConfig>,
    /// Clustered: every configured session, started only when claimed.
    configured: Option<HashMap<String, SessionConfig>>,
}

/// Starts every configured session (connecting those with `autostart` or that were online
/// when the last process stopped) and returns the handle the console and HTTP use.
pub fn start(
    config: &Config,
    endpoint: Endpoint,
    store: Arc<dyn CredentialStore>,
    cancel: CancellationToken,
) -> Running {
    start_with(config, endpoint, store, cancel, None)
}

/// [`start`], clustered when `seam` is given: no session starts until the cluster claims it,
/// drivers ask the seam's gate before each dial, and commands for sessions owned elsewhere
/// travel through its remote.
pub fn start_with(
    config: &Config,
    endpoint: Endpoint,
    store: Arc<dyn CredentialStore>,
    cancel: CancellationToken,
    seam: Option<ClusterSeam>,
) -> Running {
    let board = Arc::new(StatusBoard::new());
    let metrics = Arc::new(Metrics::new());
    let limiter = RateLimiter::with_in_flight(
        config.limits.connects_per_second,
        config.limits.connect_burst,
        config.limits.handshakes_in_flight,
    );
    let (events, _) = broadcast::channel(EVENTS_CAPACITY);
    let (messages, messages_rx) = watch::channel(config.messages.clone());
    let hooks = Arc::new(Hooks::new(Targets::of(config)));
    let shared = Shared {
        endpoint,
        limiter,
        board: board.clone(),
        metrics: metrics.clone(),
        store,
        keys: Arc::new(
            KeyStore::in_data_dir(&config.storage.data_dir)
                .mirrored(seam.as_ref().and_then(|s| s.mirror.clone())),
        ),
        gate: seam.as_ref().map(|s| s.gate.clone()),
        events: events.clone(),
        messages: messages_rx.clone(),
        probe: config.probe.clone(),
        hooks: hooks.clone(),
    };
    let (req_tx, mut req_rx) = mpsc::channel::<PoolRequest>(256);
    let (reload_tx, mut reload_rx) = mpsc::channel::<Config>(4);
    let outbox = crate::net::handle::OutboxAccess {
        keys: shared.keys.clone(),
        config: messages_rx,
    };
    let mut handle = PoolHandle::new(board, metrics, req_tx)
        .with_events(events)
        .with_outbox(outbox)
        .with_hooks(hooks);
    if let Some(seam) = &seam {
        handle = handle.with_remote(seam.remote.clone());
    }
    let mut pool = Pool {
        shared: Arc::new(shared),
        entries: HashMap::new(),
        tracker: TaskTracker::new(),
        cancel: cancel.clone(),
        seed: rand::random(),
        server: config.server.clone(),
        messages,
        configured: seam.as_ref().map(|_| {
            config
                .sessions
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect()
        }),
    };
    if pool.configured.is_none() {
        for session in &config.sessions {
            pool.start_session(session.clone());
        }
    }
    info!(sessions = config.sessions.len(), "pool started");

    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                req = req_rx.recv() => match req {
                    None | Some(PoolRequest::Shutdown) => break,
                    Some(PoolRequest::Wake { session }) => {
                        // A session not running here reads its outbox when it starts.
                        if let Some(entry) = pool.entries.get(&session) {
                            let _ = entry.inbox.send(DriverMsg::Wake).await;
                        }
                    }
                    Some(PoolRequest::Act { session, command }) => {
                        if let Some(entry) = pool.entries.get(&session)
                            && entry.inbox.send(DriverMsg::Act(command)).await.is_err()
                        {
                            warn!(session = %session, "session task has ended");
                        }
                    }
                    Some(PoolRequest::PairCode { session, phone, reply }) => {
                        // Dropping `reply` (no such driver here) answers "not running".
                        if let Some(entry) = pool.entries.get(&session) {
                            let _ = entry.inbox.send(DriverMsg::PairCode { phone, reply }).await;
                        }
                    }
                    Some(PoolRequest::Claim { session }) => pool.claim(&session),
                    Some(PoolRequest::Release { session, reason, done }) => {
                        pool.release(&session, reason, done);
                    }
                },
                Some(new) = reload_rx.recv() => pool.reload(new).await,
            }
        }
        pool.shutdown().await;
    });
    Running {
        handle,
        task,
        reload: reload_tx,
    }
}

impl Pool {
    fn start_session(&mut self, config: SessionConfig) {
        let id = config.id.clone();
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let spec = SessionSpec {
            id: id.clone(),
            label: config.label.clone(),
            phone: config.phone.clone(),
            policy: config.policy.clone(),
            autostart: config.autostart,
            seed: self.seed,
            proxy: config.proxy.clone(),
        };
        let (inbox, rx) = chan::channel(16);
        let cancel = self.cancel.child_token();
        self.shared.board.expect(&id);
        let task = self.tracker.spawn(footprint::noted(
            footprint::Task::Driver,
            driver::run(spec, self.shared.clone(), rx, cancel.clone()),
        ));
        self.entries.insert(
            id,
            Entry {
                inbox,
                cancel,
                config: Box::new(config),
                task,
            },
        );
    }

    /// Clustered: starts a configured session this node now holds (again).
    fn claim(&mut self, id: &str) {
        if self.entries.contains_key(id) {
            return;
        }
        let Some(config) = self.configured.as_ref().and_then(|c| c.get(id)).cloned() else {
            warn!(session = %id, "claimed a session that is not configured here");
            return;
        };
        info!(session = %id, "lease acquired: starting the session");
        self.start_session(config);
    }

    /// Clustered: stops a session's driver; once it has ended (socket closed), shows why it
    /// is not running here (or removes it) and answers `done`.
    fn release(
        &mut self,
        id: &str,
        reason: Option<String>,
        done: tokio::sync::oneshot::Sender<()>,
    ) {
        let Some(entry) = self.entries.remove(id) else {
            let _ = done.send(());
            return;
        };
        entry.cancel.cancel();
        let board = self.shared.board.clone();
        let label = entry.config.label.clone();
        let id = id.to_string();
        self.tracker.spawn(async move {
            let _ = entry.task.await;
            match reason {
                Some(reason) => {
                    let at = tokio::time::Instant::now().into_std();
                    let mut status = crate::session::status::Status::new(&id, &label, at);
                    status.phase = crate::session::status::Phase::Cooldown { until: at };
                    status.reason = reason;
                    board.publish(status);
                }
                None => board.remove(&id),
            }
            let _ = done.send(());
        });
    }

    /// Applies a new config: new sessions start, removed ones stop, changed policies apply
    /// in place (an online socket is not dropped).
    async fn reload(&mut self, config: Config) {
        if let Some(version) = config.server.client_version
            && config.server.client_version != self.server.client_version
        {
            // Sessions refused with 405 probe again with the new version at once.
            info!(%version, "client version changed by reload");
            Arc::make_mut(&mut self.shared).endpoint.version = version;
            for entry in self.entries.values() {
                let _ = entry.inbox.send(DriverMsg::SetVersion(version)).await;
            }
        }
        self.server = config.server.clone();
        // Queued messages and webhook events stay queued: only the next sends and tries see
        // the new settings.
        self.messages.send_if_modified(|old| {
            let changed = *old != config.messages;
            if changed {
                info!("[messages] changed by reload");
                old.clone_from(&config.messages);
            }
            changed
        });
        if self.shared.hooks.set(Targets::of(&config)) {
            info!("webhook targets changed by reload");
        }
        let wanted: HashMap<String, SessionConfig> = config
            .sessions
            .iter()
            .map(|s| (s.id.clone(), s.clone()))
            .collect();
        if let Some(configured) = &mut self.configured {
            configured.clone_from(&wanted);
        }
        let removed: Vec<String> = self
            .entries
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        for id in removed {
            if let Some(entry) = self.entries.remove(&id) {
                entry.cancel.cancel();
                self.shared.board.remove(&id);
                info!(session = %id, "session removed by reload");
            }
        }
        for (id, session) in wanted {
            match self.entries.get_mut(&id) {
                None if self.configured.is_some() => {
                    info!(session = %id, "session added by reload; it starts when claimed");
                }
                None => {
                    info!(session = %id, "session added by reload");
                    self.start_session(session);
                }
                Some(entry) => {
                    if entry.config.policy != session.policy {
                        let _ = entry
                            .inbox
                            .send(DriverMsg::SetPolicy(Box::new(session.policy.clone())))
                            .await;
                        info!(session = %id, "policy changed by reload");
                    }
                    if entry.config.proxy != session.proxy {
                        let proxy = session.proxy.clone();
                        let path = proxy
                            .as_ref()
                            .map_or("direct".to_string(), ToString::to_string);
                        let _ = entry.inbox.send(DriverMsg::SetProxy(Box::new(proxy))).await;
                        info!(session = %id, %path, "proxy changed by reload; used from the next dial");
                    }
                    *entry.config = session;
                }
            }
        }
    }

    async fn shutdown(self) {
        self.cancel.cancel();
        if !drain(&self.tracker, SHUTDOWN_BUDGET).await {
            warn!("some sessions did not close within {SHUTDOWN_BUDGET:?}");
        }
    }
}
