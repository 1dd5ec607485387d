//! The in-process pool's messages as the console shows them: its message events (received,
//! status changes) batched into `PoolUpdate::Messages`, a session's kept messages read back
//! from keys.db, and the line of a message just queued. `wasp attach` reads the same from the
//! HTTP API (`attach::remote`).

use std::time::Instant;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::net::handle::PoolHandle;
use crate::net::messages::{MessageEvent, MessageEventKind, MessageStatus};
use crate::store::outbox::{Direction, InboxEntry, Kept, OutboxEntry};
use crate::ui::messages::{instant_of, wall_ms};
use crate::ui::{MessageLine, PoolUpdate, Stage, Way};

/// Kept messages read per direction when a session is first selected.
const READ_BACK: u32 = 10;
/// Most events in one batch.
const BATCH_MAX: usize = 512;

/// Feeds the console every message event, batched; a listener that fell behind loses the
/// oldest (the pane shows the newest anyway). Ends with `cancel` or the console.
pub async fn forward_messages(
    pool: PoolHandle,
    tx: mpsc::Sender<PoolUpdate>,
    cancel: CancellationToken,
) {
    let mut rx = pool.message_events();
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            event = rx.recv() => match event {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
        };
        let now = Instant::now();
        let mut lines = vec![event_line(&first, now)];
        while lines.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(event) => lines.push(event_line(&event, now)),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        if !lines.is_empty() && tx.send(PoolUpdate::Messages(lines)).await.is_err() {
            return;
        }
    }
}

/// The console's line for one message event.
pub fn event_line(event: &MessageEvent, now: Instant) -> MessageLine {
    let session = event.session.clone();
    match &event.kind {
        MessageEventKind::Received(m) => MessageLine {
            session,
            id: m.id.clone(),
            // A copy of what one of our own devices wrote goes out, not in.
            way: if m.from_me { Way::Out } else { Way::In },
            peer: m.chat.clone(),
            text: m.text.clone(),
            stage: if m.from_me {
                Stage::Sent
            } else {
                Stage::Received
            },
            at: now,
        },
        MessageEventKind::Status { id, chat, status } => MessageLine {
            session,
            id: id.clone(),
            way: Way::Out,
            peer: chat.clone(),
            text: None,
            stage: match status {
                MessageStatus::Pending => Stage::Queued,
                MessageStatus::Sent => Stage::Sent,
                MessageStatus::Delivered => Stage::Delivered,
                MessageStatus::Read | MessageStatus::Played => Stage::Read,
                MessageStatus::Failed(why) => Stage::Failed(why.clone()),
            },
            at: now,
        },
    }
}

/// The line of a message just handed to the outbox (or of a kept one).
pub fn queued_line(session: &str, entry: &OutboxEntry) -> MessageLine {
    out_line(session, entry, Instant::now(), wall_ms())
}

fn out_line(session: &str, entry: &OutboxEntry, now: Instant, now_ms: u64) -> MessageLine {
    MessageLine {
        session: session.to_string(),
        id: entry.id.clone(),
        way: Way::Out,
        peer: entry.to.clone(),
        text: Some(entry.text.clone()),
        stage: Stage::parse(entry.status.as_str(), entry.error.as_deref()).unwrap_or(Stage::Queued),
        at: instant_of(entry.queued_at, now, now_ms),
    }
}

fn in_line(session: &str, entry: &InboxEntry, now: Instant, now_ms: u64) -> MessageLine {
    MessageLine {
        session: session.to_string(),
        id: entry.id.clone(),
        way: Way::In,
        peer: entry.chat.clone(),
        text: entry.text.clone(),
        stage: Stage::Received,
        at: instant_of(entry.time.saturating_mul(1000), now, now_ms),
    }
}

/// The newest kept messages of `session`, both ways (none when they cannot be read: the
/// pane then fills from live events).
pub async fn kept_lines(pool: &PoolHandle, session: &str) -> Vec<MessageLine> {
    let (now, now_ms) = (Instant::now(), wall_ms());
    let mut lines = Vec::new();
    for direction in [Direction::Out, Direction::In] {
        match pool.messages(session, direction, READ_BACK).await {
            Ok(kept) => lines.extend(kept.iter().map(|k| match k {
                Kept::Out(e) => out_line(session, e, now, now_ms),
                Kept::In(e) => in_line(session, e, now, now_ms),
            })),
            Err(e) => tracing::debug!(session, error = %e, "kept messages not read"),
        }
    }
    lines
}
