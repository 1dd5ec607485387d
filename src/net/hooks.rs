//! Where each session's webhook events go ([`Targets`], from `[webhook]` and the sessions'
//! `webhook` keys) and the pool's shared view of it ([`Hooks`]): a messenger asks it for the
//! webhook row of a message event *before* storing the message, so the message row and its
//! webhook event commit in one keys.db transaction; a config reload swaps the targets in place.

use std::collections::HashMap;
use std::sync::RwLock;

use tokio::sync::Notify;

use crate::config::{Config, SessionWebhook, WebhookEvent, WebhookUrl};
use crate::net::event_json::message_json;
use crate::net::messages::MessageEvent;
use crate::store::webhook_queue::NewDelivery;

/// Where each session's events go, and what goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
            // Only the sessions with a `webhook` key of their own: a missing one inherits,
            // and a fleet of thousands without the key keeps no entry per session.
            sessions: config
                .sessions
                .iter()
                .filter(|s| s.webhook != SessionWebhook::Inherit)
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

/// The pool's webhook targets, shared by the messengers and the webhook tasks and replaced
/// by a config reload; `queued` wakes the deliverer after events were committed.
#[derive(Debug, Default)]
pub struct Hooks {
    targets: RwLock<Targets>,
    queued: Notify,
}

impl Hooks {
    pub fn new(targets: Targets) -> Hooks {
        Hooks {
            targets: RwLock::new(targets),
            queued: Notify::new(),
        }
    }

    /// The targets in force.
    pub fn targets(&self) -> Targets {
        match self.targets.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the targets (config reload); answers whether they changed.
    pub fn set(&self, targets: Targets) -> bool {
        let mut slot = match self.targets.write() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = *slot != targets;
        *slot = targets;
        changed
    }

    /// The webhook row for `event` when its kind is sent for its session, else `None`.
    pub fn delivery(&self, event: &MessageEvent) -> Option<NewDelivery> {
        let (name, mut body) = message_json(event);
        let kind = if name == "message" {
            WebhookEvent::Message
        } else {
            WebhookEvent::Receipt
        };
        if !self.targets().wants(&event.session, kind) {
            return None;
        }
        body["event"] = serde_json::json!(name);
        Some(NewDelivery {
            session: event.session.clone(),
            event: name.to_string(),
            body: body.to_string(),
        })
    }

    /// Tells the deliverer that events were committed.
    pub fn queued(&self) {
        self.queued.notify_one();
    }

    /// Waits for [`Hooks::queued`] (a ring before the wait is kept).
    pub async fn wait_queued(&self) {
        self.queued.notified().await;
    }
}
