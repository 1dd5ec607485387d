//! Follows the pool's message and status broadcasts and commits each wanted event to the
//! webhook queue: every event already waiting goes into one transaction, then the deliverer is
//! woken. A follower that fell behind the broadcast counts what it missed (`webhook_lost`);
//! missed state changes are caught up from the board.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::event::{message_json, state_json};
use super::{WebhookSetup, now_ms};
use crate::config::WebhookEvent;
use crate::net::board::BoardEvent;
use crate::net::messages::MessageEvent;
use crate::session::status::{StateName, Status};
use crate::store::webhook_queue::NewDelivery;

/// Most events in one transaction.
const BATCH: usize = 512;

struct Collector {
    setup: WebhookSetup,
    /// Each session's last state sent, so only changes go out.
    states: HashMap<String, StateName>,
    batch: Vec<NewDelivery>,
}

impl Collector {
    fn message(&mut self, event: &MessageEvent) {
        let (name, mut body) = message_json(event);
        let kind = if name == "message" {
            WebhookEvent::Message
        } else {
            WebhookEvent::Receipt
        };
        if self.setup.targets.wants(&event.session, kind) {
            body["event"] = serde_json::json!(name);
            self.batch.push(NewDelivery {
                session: event.session.clone(),
                event: name.to_string(),
                body: body.to_string(),
            });
        }
    }

    fn status(&mut self, status: &Status) {
        let state = status.state();
        if self.states.insert(status.id.clone(), state) == Some(state) {
            return;
        }
        if self.setup.targets.wants(&status.id, WebhookEvent::State) {
            let mut body = state_json(status);
            body["event"] = serde_json::json!("state");
            self.batch.push(NewDelivery {
                session: status.id.clone(),
                event: "state".to_string(),
                body: body.to_string(),
            });
        }
    }

    /// Commits the batch; a database failure loses it (counted and logged).
    async fn commit(&mut self, queued: &Notify) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        let keys = self.setup.keys.clone();
        let done =
            tokio::task::spawn_blocking(move || keys.webhook_enqueue(&batch, now_ms())).await;
        match done {
            Ok(Ok(())) => queued.notify_one(),
            Ok(Err(e)) => {
                self.setup.metrics.webhook_lost.inc_by(n);
                error!(error = %e, events = n, "webhook events could not be queued");
            }
            Err(e) => {
                self.setup.metrics.webhook_lost.inc_by(n);
                error!(error = %e, events = n, "webhook queueing stopped");
            }
        }
    }
}

pub(super) async fn run(
    setup: WebhookSetup,
    mut messages: broadcast::Receiver<MessageEvent>,
    mut board: broadcast::Receiver<BoardEvent>,
    queued: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut c = Collector {
        setup,
        states: HashMap::new(),
        batch: Vec::new(),
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            got = messages.recv() => match got {
                Ok(event) => {
                    c.message(&event);
                    while c.batch.len() < BATCH {
                        match messages.try_recv() {
                            Ok(event) => c.message(&event),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => missed(&c, n),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => missed(&c, n),
                Err(RecvError::Closed) => break,
            },
            got = board.recv() => match got {
                Ok(BoardEvent::Status(status)) => c.status(&status),
                Err(RecvError::Lagged(_)) => {
                    // Catch up on states from the board itself.
                    let now = c.setup.board.snapshot();
                    for status in &now {
                        c.status(status);
                    }
                }
                Err(RecvError::Closed) => break,
            },
        }
        c.commit(&queued).await;
    }
    c.commit(&queued).await;
}

fn missed(c: &Collector, n: u64) {
    c.setup.metrics.webhook_lost.inc_by(n);
    warn!(
        missed = n,
        "the webhook queue fell behind the message events"
    );
}
