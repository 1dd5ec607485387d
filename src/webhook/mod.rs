//! Webhooks: every session's events (received messages, receipts, state changes) POSTed to the
//! operator's URL, signed, at least once and in order per session, through a durable queue in
//! keys.db (`store::webhook_queue`).
//!
//! A message or receipt event is queued by its session's messenger in the same transaction
//! as the message row it reports (`net::hooks`), so a crash cannot keep one without the other;
//! `collect.rs` follows the pool's status broadcasts and queues each state change;
//! `deliver.rs` sends each session's oldest queued event, removes it after a 2xx, retries
//! 5xx, 408, 429, network errors and timeouts with exponential backoff and jitter, and moves
//! other refusals (4xx) to the dead letters. A restart delivers what was queued before it.
//! A config reload changes the targets, timing and secret of the next tries.

pub mod client;
mod collect;
mod deliver;
pub mod sign;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::{Config, WebhookConfig};
use crate::net::board::StatusBoard;
use crate::net::handle::PoolHandle;
use crate::net::hooks::Hooks;
use crate::net::metrics::Metrics;
use crate::store::keys::KeyStore;

pub use crate::net::event_json as event;
pub use crate::net::hooks::Targets;
pub use sign::WebhookSecret;

/// The delivery settings in force: `[webhook]`'s timing and the signing secret.
#[derive(Clone)]
pub struct Settings {
    pub config: WebhookConfig,
    pub secret: Option<WebhookSecret>,
}

impl Settings {
    /// From a config; the secret from the variable `secret_env` names, when set.
    pub fn of(config: &Config) -> Settings {
        let webhook = config.webhook.clone().unwrap_or_default();
        Settings {
            secret: webhook
                .secret_env
                .as_deref()
                .and_then(WebhookSecret::from_env),
            config: webhook,
        }
    }
}

/// Everything the webhook tasks need.
#[derive(Clone)]
pub struct WebhookSetup {
    /// The targets, shared with the messengers that queue message events.
    pub hooks: Arc<Hooks>,
    pub settings: Arc<RwLock<Settings>>,
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub board: Arc<StatusBoard>,
}

impl WebhookSetup {
    /// For a started pool: `None` when no session has a webhook or the pool has no key
    /// database (a remote handle).
    pub fn of(config: &Config, pool: &PoolHandle) -> Option<WebhookSetup> {
        if !Targets::of(config).any() {
            return None;
        }
        Some(WebhookSetup {
            hooks: pool.hooks().clone(),
            settings: Arc::new(RwLock::new(Settings::of(config))),
            keys: pool.keys()?.clone(),
            metrics: pool.metrics.clone(),
            board: pool.board.clone(),
        })
    }

    /// The settings in force now.
    fn settings(&self) -> Settings {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The running webhook tasks.
pub struct Webhooks {
    tracker: TaskTracker,
    settings: Arc<RwLock<Settings>>,
}

impl Webhooks {
    /// Applies a reloaded config's `[webhook]` timing and secret to the next tries (the
    /// targets are the pool's, reloaded with it); queued events stay queued.
    pub fn reload(&self, config: &Config) {
        let new = Settings::of(config);
        let mut slot = match self.settings.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.config != new.config {
            info!("[webhook] settings changed by reload");
        }
        *slot = new;
    }

    /// Waits (up to `budget`) for both tasks to end after the cancel.
    pub async fn stopped(self, budget: Duration) {
        self.tracker.close();
        let _ = tokio::time::timeout(budget, self.tracker.wait()).await;
    }
}

/// Starts collecting `pool`'s state changes and delivering every queued event; both end when
/// `cancel` fires.
pub fn start(setup: WebhookSetup, pool: &PoolHandle, cancel: CancellationToken) -> Webhooks {
    let tracker = TaskTracker::new();
    let board = pool.board.subscribe();
    let settings = setup.settings.clone();
    tracker.spawn(collect::run(setup.clone(), board, cancel.clone()));
    tracker.spawn(deliver::run(setup, cancel));
    Webhooks { tracker, settings }
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
