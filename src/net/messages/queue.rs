//! The outbox pump of one session: the queued messages of keys.db, sent one at a time in
//! queue order (so in order per chat) while the session is online and the send limits allow,
//! each with the id it was queued with. A message stays queued until the server acks it, so
//! after a reconnect or a restart every message not yet acked goes out again with the same
//! id (the receiver drops a second copy by id). Status changes are written to the outbox
//! before they are reported.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::probe::is_probe_text;
use super::tally::Tally;
use super::{MessageEvent, MessageEventKind, MessageStatus, Messenger, SendError};
use crate::session::status::OutboxView;
use crate::store::keys::{KeyStore, KeysError};
use crate::store::outbox::{OutStatus, OutboxEntry};
use crate::store::tally::{Counted, MessengerStart};

/// How long the pump waits after a send failed for a reason that may pass (a query timed
/// out, the socket closed).
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Write times kept for the delivery latency before they are forgotten at once.
const WRITTEN_KEPT: usize = 10_000;

/// How often a queue that cannot move is checked for expired messages.
const EXPIRY_CHECK: Duration = Duration::from_secs(60);

pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The failure reason a send error means for good, `None` for one worth retrying.
fn lasting(error: &SendError) -> Option<String> {
    match error {
        SendError::BadRecipient { to, .. } => Some(format!("{to} is not a phone number or JID")),
        SendError::NoDevices { to, .. } => Some(format!("{to} is not on WhatsApp")),
        _ => None,
    }
}

impl Messenger {
    /// When the pump has something to do: now when new rows wait to be read, the send
    /// limits' instant when a message can go, a slow tick for expiry while it cannot.
    pub(super) fn next_pump(&mut self, now: Instant) -> Option<Instant> {
        if self.outbox.dirty {
            return Some(now);
        }
        if self.outbox.queue.is_empty() {
            return None;
        }
        let tick = now + EXPIRY_CHECK;
        if self.link.is_none() || !self.has_unsent() {
            return Some(tick);
        }
        let age = self.pairing_age();
        let ready = self.outbox.pace.ready_at(now, age);
        let ready = self.outbox.retry_at.map_or(ready, |r| ready.max(r));
        Some(ready.min(tick))
    }

    fn has_unsent(&self) -> bool {
        self.outbox
            .queue
            .iter()
            .any(|e| !self.outbox.in_flight.contains(&e.id))
    }

    fn pairing_age(&self) -> Option<Duration> {
        let paired = self.outbox.paired_at?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        Some(now.saturating_sub(Duration::from_secs(paired)))
    }

    /// One step: read new rows, fail expired ones, send the next when allowed.
    pub(super) async fn pump(&mut self) {
        if self.outbox.dirty {
            self.outbox.dirty = false;
            let after = self.outbox.last_seq;
            match self
                .keys_call(move |keys, session| keys.outbox_queued(&session, after))
                .await
            {
                Ok(rows) => self.take_queued(rows),
                Err(e) => {
                    warn!(error = %e, "could not read the outbox");
                    self.outbox.retry_at = Some(Instant::now() + RETRY_AFTER);
                    self.outbox.dirty = true;
                    return;
                }
            }
        }
        self.expire().await;
        let now = Instant::now();
        if self.link.is_none() || self.outbox.retry_at.is_some_and(|r| r > now) {
            return;
        }
        self.outbox.retry_at = None;
        let Some(entry) = self
            .outbox
            .queue
            .iter()
            .find(|e| !self.outbox.in_flight.contains(&e.id))
            .cloned()
        else {
            return;
        };
        let age = self.pairing_age();
        if self.outbox.pace.ready_at(now, age) > now {
            return;
        }
        self.outbox.pace.record(now, rand::random::<f64>());
        match self.send_queued(&entry).await {
            Ok(()) => {
                self.probe_written(&entry.id);
                self.outbox.in_flight.insert(entry.id.clone());
                if self.outbox.written.len() >= WRITTEN_KEPT {
                    // Messages never delivered (a peer gone for good): forget their times.
                    self.outbox.written.clear();
                }
                self.outbox
                    .written
                    .insert(entry.id.clone(), std::time::Instant::now());
            }
            Err(e) => match lasting(&e) {
                Some(reason) => {
                    warn!(id = %entry.id, %reason, "message failed");
                    self.status(&entry.id, MessageStatus::Failed(reason)).await;
                }
                None => {
                    debug!(id = %entry.id, error = %e, "message not sent yet; trying again");
                    self.outbox.retry_at = Some(Instant::now() + RETRY_AFTER);
                }
            },
        }
    }

    /// Fails every queued message older than `expire_after`.
    async fn expire(&mut self) {
        let limit = u64::try_from(self.outbox.config.expire_after.as_millis()).unwrap_or(u64::MAX);
        let now = unix_ms();
        let old: Vec<String> = self
            .outbox
            .queue
            .iter()
            .filter(|e| now.saturating_sub(e.queued_at) > limit)
            .map(|e| e.id.clone())
            .collect();
        let after = crate::config::format_duration(self.outbox.config.expire_after);
        for id in old {
            let reason = format!("expired after {after} in the queue");
            self.status(&id, MessageStatus::Failed(reason)).await;
        }
    }

    /// The session logged out: nothing queued can be sent any more.
    pub(super) async fn fail_all(&mut self, reason: &str) {
        let ids: Vec<String> = self.outbox.queue.iter().map(|e| e.id.clone()).collect();
        if !ids.is_empty() {
            info!(count = ids.len(), %reason, "queued messages failed");
        }
        for id in ids {
            self.status(&id, MessageStatus::Failed(reason.to_string()))
                .await;
        }
    }

    /// The socket closed: what was written and not acked goes out again on the next one.
    pub(super) fn offline(&mut self) {
        self.outbox.in_flight.clear();
        self.outbox.retry_at = None;
    }

    /// Records a status change of message `id` in the outbox and reports it once; its
    /// webhook event commits with the row.
    pub(super) async fn status(&mut self, id: &str, status: MessageStatus) {
        let in_memory = self.sent.advance(id, status.clone());
        let (out, error) = match &status {
            MessageStatus::Pending => return,
            MessageStatus::Sent => (OutStatus::Sent, None),
            MessageStatus::Delivered => (OutStatus::Delivered, None),
            MessageStatus::Read | MessageStatus::Played => (OutStatus::Read, None),
            MessageStatus::Failed(why) => (OutStatus::Failed, Some(why.clone())),
        };
        let queued = self.outbox.queue.iter().find(|e| e.id == id);
        let probe = self.probe.is_pending(id) || queued.is_some_and(|e| is_probe_text(&e.text));
        // Unchanged rows are reported only for messages this run sent (as before a restart).
        let remembered = in_memory.is_some();
        let known = in_memory.or_else(|| queued.map(|e| e.to.clone()));
        if known.is_none() && !probe && !self.outbox.has_outgoing {
            // The outbox holds no message of ours (checked at the start; every message sent
            // since was read from it first): a receipt for another client's message.
            return;
        }
        let wanted = id.to_string();
        // Strictly increasing per session, so a column filled by this change is told apart
        // from one filled by an earlier change in the same millisecond.
        let at = unix_ms().max(self.outbox.last_stamp + 1);
        self.outbox.last_stamp = at;
        // A probe is no traffic: no webhook, count or event.
        let hooks = (!probe).then(|| self.hooks.clone());
        let reported = status.clone();
        let stored = self
            .keys_call(move |keys, session| {
                let chat = match known {
                    Some(chat) => chat,
                    // Not a message of ours (a receipt for another client's message, or one
                    // long gone): nothing to advance, nothing to report.
                    None => match keys.outbox_get(&session, &wanted)? {
                        Some(row) => row.to,
                        None => return Ok((None, None, false)),
                    },
                };
                let event = MessageEvent {
                    session: session.clone(),
                    kind: MessageEventKind::Status {
                        id: wanted.clone(),
                        chat,
                        status: reported,
                    },
                };
                let hook = hooks.and_then(|hooks| hooks.delivery(&event));
                let row = keys.outbox_advance(
                    &session,
                    &wanted,
                    (out, error.as_deref()),
                    hook.as_ref(),
                    at,
                )?;
                if row.is_none() && !remembered {
                    return Ok((None, None, false));
                }
                if row.is_none()
                    && let Some(hook) = &hook
                {
                    // Nothing stored changed (a second receipt, `played` after `read`): the
                    // event is still reported, on its own.
                    keys.webhook_enqueue(std::slice::from_ref(hook), at)?;
                }
                Ok((row, Some(event), hook.is_some()))
            })
            .await;
        let (row, event) = match stored {
            Ok((row, event, hooked)) => {
                if hooked {
                    self.hooks.queued();
                }
                (row, event)
            }
            Err(e) => {
                warn!(id, error = %e, "could not record a message status");
                (None, None)
            }
        };
        if probe {
            if let Some(row) = &row {
                self.settled_quietly(row);
            }
            let delivered = matches!(out, OutStatus::Delivered | OutStatus::Read);
            if delivered || out == OutStatus::Failed {
                self.probe_status(id, delivered);
            }
            return;
        }
        if let Some(row) = &row {
            self.settled(row);
            // The times this change filled carry its stamp (a receipt that overtook the ack
            // fills both).
            if row.sent_at == Some(at) {
                self.outbox.tally.add(Counted::Sent, at, 1);
            }
            if row.delivered_at == Some(at) {
                self.outbox.tally.add(Counted::Delivered, at, 1);
            }
        }
        if let Some(event) = event {
            let _ = self.events.send(event);
        }
    }

    /// New `[messages]` settings (config reload): the send limits, expiry and retention of
    /// the next sends; nothing queued is dropped.
    pub(super) fn reconfigure(&mut self, config: crate::config::MessagesConfig) {
        if config == self.outbox.config {
            return;
        }
        info!(
            per_minute = config.per_minute,
            burst = config.burst,
            "send limits changed by reload"
        );
        self.outbox.pace.set_config(config.clone(), Instant::now());
        self.outbox.config = config;
    }

    /// Counts a stored status change; a message no longer queued leaves the pump.
    fn settled(&mut self, row: &OutboxEntry) {
        let event = row.status.as_str();
        self.metrics.message(&self.session, event);
        self.settled_quietly(row);
    }

    /// A stored status change, not counted (a probe): the pump lets go of it.
    fn settled_quietly(&mut self, row: &OutboxEntry) {
        if row.status == OutStatus::Delivered
            && let Some(at) = self.outbox.written.remove(&row.id)
            && !is_probe_text(&row.text)
        {
            self.metrics
                .delivery_latency
                .observe(at.elapsed().as_secs_f64());
        }
        if row.status != OutStatus::Queued {
            self.outbox.queue.retain(|e| e.id != row.id);
            self.outbox.in_flight.remove(&row.id);
        }
        if matches!(row.status, OutStatus::Read | OutStatus::Failed) {
            self.outbox.written.remove(&row.id);
        }
    }

    /// Rows read from the outbox join the queue.
    fn take_queued(&mut self, rows: Vec<OutboxEntry>) {
        self.outbox.has_outgoing |= !rows.is_empty();
        for row in rows {
            self.outbox.last_seq = self.outbox.last_seq.max(row.seq);
            self.outbox.queue.push_back(row);
        }
    }

    /// At the messenger's start: the last hour's counts (a restart keeps showing them) and
    /// the queued messages (else the first pump reads them), as the driver read them with
    /// its store ([`start_read`]).
    pub(super) fn seed(&mut self, read: Result<MessengerStart, KeysError>) {
        match read {
            Ok(start) => {
                for (what, minute, n) in start.minutes {
                    self.outbox.tally.add(what, minute * 60_000, n);
                }
                self.take_queued(start.queued);
                self.outbox.has_outgoing = start.has_outgoing;
                self.outbox.dirty = false;
            }
            // The outbox stays dirty: the pump reads it again (and says so if it fails).
            Err(e) => warn!(error = %e, "could not read the message counts and the queue"),
        }
    }

    /// When the oldest minute of the counts leaves the hour's window (far off when none).
    pub(super) fn tally_expiry(&self) -> Instant {
        let now = Instant::now();
        match self.outbox.tally.next_expiry_ms() {
            Some(at) => now + Duration::from_millis(at.saturating_sub(unix_ms()) + 1),
            None => now + Duration::from_secs(3600),
        }
    }

    /// Publishes the queue's size and next send time (to the driver's status, and metrics).
    pub(super) fn publish_view(&mut self) {
        let queued = u32::try_from(self.outbox.queue.len()).unwrap_or(u32::MAX);
        let next_send_at = if self.link.is_some() && self.has_unsent() {
            let now = Instant::now();
            let age = self.pairing_age();
            let ready = self.outbox.pace.ready_at(now, age);
            let ready = self.outbox.retry_at.map_or(ready, |r| ready.max(r));
            // "Now" is no time to show: only a wait is.
            (ready > now).then(|| ready.into_std())
        } else {
            None
        };
        let [sent_1h, delivered_1h, received_1h] = self.outbox.tally.totals(unix_ms());
        let view = OutboxView {
            queued,
            next_send_at,
            sent_1h,
            delivered_1h,
            received_1h,
            degraded: self.probe.degraded,
            silent_reconnects: self.probe.reconnects,
        };
        let changed_depth = self.outbox.view.borrow().queued != queued;
        self.outbox.view.send_if_modified(|v| {
            // The bucket's arithmetic moves an instant by nanoseconds: that is no change.
            let moved = match (v.next_send_at, view.next_send_at) {
                (Some(a), Some(b)) => a.max(b) - a.min(b) > Duration::from_millis(100),
                (a, b) => a.is_some() != b.is_some(),
            };
            let counted = (v.sent_1h, v.delivered_1h, v.received_1h)
                != (view.sent_1h, view.delivered_1h, view.received_1h);
            let probed =
                (v.degraded, v.silent_reconnects) != (view.degraded, view.silent_reconnects);
            let changed = v.queued != view.queued || moved || counted || probed;
            if changed {
                *v = view;
            }
            changed
        });
        if changed_depth {
            self.metrics.set_outbox_depth(&self.session, queued);
        }
    }
}

/// What a messenger starts from, read in one transaction of keys.db (blocking): the counts
/// of the hour's window and the queue.
pub fn start_read(keys: &KeyStore, session: &str) -> Result<MessengerStart, KeysError> {
    keys.messenger_start(session, Tally::window_start_ms(unix_ms()))
}
