//! Follows the pool's status broadcasts and commits each wanted state change to the webhook
//! queue, then wakes the deliverer; state changes missed by falling behind the broadcast are
//! caught up from the board. (Message and receipt events are queued by the messengers, with
//! their rows.)

use std::collections::HashMap;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::event::state_json;
use super::{WebhookSetup, now_ms};
use crate::config::WebhookEvent;
use crate::net::board::BoardEvent;
use crate::session::status::{StateName, Status};
use crate::store::webhook_queue::NewDelivery;

struct Collector {
    setup: WebhookSetup,
    /// Each session's last state sent, so only changes go out.
    states: HashMap<String, StateName>,
    batch: Vec<NewDelivery>,
}

impl Collector {
    fn status(&mut self, status: &Status) {
        let state = status.state();
        if self.states.insert(status.id.clone(), state) == Some(state) {
            return;
        }
        if self
            .setup
            .hooks
            .targets()
            .wants(&status.id, WebhookEvent::State)
        {
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
    async fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        let keys = self.setup.keys.clone();
        let done =
            tokio::task::spawn_blocking(move || keys.webhook_enqueue(&batch, now_ms())).await;
        match done {
            Ok(Ok(())) => self.setup.hooks.queued(),
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
    mut board: broadcast::Receiver<BoardEvent>,
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
        c.commit().await;
    }
    c.commit().await;
}
