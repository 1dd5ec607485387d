//! Webhooks: every session's events (received messages, receipts, state changes) POSTed to the
//! operator's URL, signed, at least once and in order per session, through a durable queue in
//! keys.db (`store::webhook_queue`).
//!
//! `collect.rs` follows the pool's event broadcasts and commits each wanted event to the queue
//! (a batch per transaction); `deliver.rs` sends each session's oldest queued event, removes it
//! after a 2xx, retries 5xx, 408, 429, network errors and timeouts with exponential backoff and
//! jitter, and moves other refusals (4xx) to the dead letters. A restart delivers what was
//! queued before it.

pub mod client;
mod collect;
mod deliver;
pub mod event;
pub mod sign;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, SessionWebhook, WebhookConfig, WebhookEvent, WebhookUrl};
use crate::net::board::StatusBoard;
use crate::net::handle::PoolHandle;
use crate::net::metrics::Metrics;
use crate::store::keys::KeyStore;

pub use sign::WebhookSecret;

/// Where each session's events go, and what goes.
#[derive(Debug, Clone)]
pub struct Targets {
    global: Option<WebhookUrl>,
    sessions: HashMap<String, SessionWebhook>,
    events: Vec<WebhookEvent>,
}

impl Targets {
    /// From a config: `[webhook] url` and the sessions' `webhook` keys.
    pub fn of(config: &Config) -> Targets {
        let webhook = config.webhook.clone().unwrap_or_default();
        Targets {
            global: webhook.url,
            sessions: config
                .sessions
                .iter()
                .map(|s| (s.id.clone(), s.webhook.clone()))
                .collect(),
            events: webhook.events,
        }
    }

    /// True when some session's events go somewhere.
    pub fn any(&self) -> bool {
        self.global.is_some()
            || self
                .sessions
                .values()
                .any(|w| matches!(w, SessionWebhook::Url(_)))
    }

    /// The URL `session`'s events go to now, if any.
    pub fn url(&self, session: &str) -> Option<&WebhookUrl> {
        match self.sessions.get(session) {
            Some(SessionWebhook::Off) => None,
            Some(SessionWebhook::Url(url)) => Some(url),
            Some(SessionWebhook::Inherit) | None => self.global.as_ref(),
        }
    }

    /// True when `event` of `session` is to be sent.
    pub fn wants(&self, session: &str, event: WebhookEvent) -> bool {
        self.events.contains(&event) && self.url(session).is_some()
    }
}

/// Everything the webhook tasks need.
#[derive(Clone)]
pub struct WebhookSetup {
    pub targets: Targets,
    pub config: WebhookConfig,
    pub secret: Option<WebhookSecret>,
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub board: Arc<StatusBoard>,
}

impl WebhookSetup {
    /// For a started pool: `None` when no session has a webhook or the pool has no key
    /// database (a remote handle).
    pub fn of(config: &Config, pool: &PoolHandle) -> Option<WebhookSetup> {
        let targets = Targets::of(config);
        if !targets.any() {
            return None;
        }
        let webhook = config.webhook.clone().unwrap_or_default();
        Some(WebhookSetup {
            secret: webhook
                .secret_env
                .as_deref()
                .and_then(WebhookSecret::from_env),
            config: webhook,
            targets,
            keys: pool.keys()?.clone(),
            metrics: pool.metrics.clone(),
            board: pool.board.clone(),
        })
    }
}

/// The running webhook tasks.
pub struct Webhooks {
    tracker: TaskTracker,
}

impl Webhooks {
    /// Waits (up to `budget`) for both tasks to end after the cancel.
    pub async fn stopped(self, budget: Duration) {
        self.tracker.close();
        let _ = tokio::time::timeout(budget, self.tracker.wait()).await;
    }
}

/// Starts collecting `pool`'s events and delivering them; both end when `cancel` fires.
pub fn start(setup: WebhookSetup, pool: &PoolHandle, cancel: CancellationToken) -> Webhooks {
    let tracker = TaskTracker::new();
    let queued = Arc::new(Notify::new());
    let messages = pool.message_events();
    let board = pool.board.subscribe();
    tracker.spawn(collect::run(
        setup.clone(),
        messages,
        board,
        queued.clone(),
        cancel.clone(),
    ));
    tracker.spawn(deliver::run(setup, queued, cancel));
    Webhooks { tracker }
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
