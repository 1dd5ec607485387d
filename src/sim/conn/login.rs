//! A logged-in device's connection: the login itself (its other logins kicked with 440
//! first), the burst a real server pushes after `<success>` (offline preview, the queued
//! stanzas with `offline`, offline end, live notifications), mailbox flushes as the relay
//! queues more, the ack clock, and faults on the logged-in connection.

use tokio::sync::{mpsc, oneshot};

use super::{CONTROL_QUEUE, Conn, End, KICK_DEADLINE};
use crate::sim::SimError;
use crate::sim::faults::Fault;
use crate::sim::mailbox;
use crate::sim::pushes;
use crate::sim::registry::{Control, Device};
use crate::sim::server::now_unix;
use crate::sim::stats::ErrorKind;
use crate::wa::node::Node;
use crate::wa::{prekey, stanza};

impl Conn {
    /// Sends what the device's mailbox holds that this connection has not sent yet, in
    /// order. Returns false once the client is gone.
    pub(super) async fn flush(&mut self, jid: &str) -> bool {
        let pending: Vec<Node> = {
            let mut reg = self.core.reg();
            reg.mailbox(jid)
                .queue
                .iter()
                .filter(|n| !self.shown.contains(&mailbox::key(n)))
                .cloned()
                .collect()
        };
        for node in &pending {
            if !self.push(node).await {
                return false;
            }
        }
        pending.is_empty() || self.socket.flush().await.is_ok()
    }

    /// Queues a pushed stanza (already in the device's mailbox) for the next flush and
    /// starts its ack clock.
    async fn push(&mut self, node: &Node) -> bool {
        self.shown.insert(mailbox::key(node));
        if let Some(id) = node.get_attr("id") {
            self.delivery.sent(id, tokio::time::Instant::now());
        }
        self.socket.feed_node(node).await.is_ok()
    }

    /// What a real server sends right after `<success>` (PROTOCOL-MESSAGING.md §4.1): the
    /// offline preview, every queued stanza (unacknowledged ones first, as they are oldest)
    /// with `offline`, the end of the offline queue, edge routing, then live notifications
    /// and a receipt. Returns false once the client is gone.
    async fn push_burst(&mut self, device: &Device) -> bool {
        let now = now_unix();
        let (queued, live) = {
            let mut reg = self.core.reg();
            let numbers: Vec<u32> = std::iter::once(0)
                .chain(reg.devices_of(&device.phone).map(|d| d.device))
                .collect();
            let check_prekeys = reg.strict.prekeys;
            let mailbox = reg.mailbox(&device.jid);
            let queued: Vec<Node> = mailbox.queue.iter().cloned().collect();
            let mut live = vec![
                pushes::account_sync(&device.phone, &numbers, now),
                pushes::read_receipt(now),
            ];
            // A device that never uploaded is told by its own count query after login, and
            // one with a low-count notification still queued gets no second one.
            let told = queued.iter().any(|n| n.get_attr("type") == Some("encrypt"));
            let low = mailbox.prekeys.len() < prekey::LOW_WATER as usize;
            if check_prekeys && mailbox.uploads > 0 && low && !told {
                live.push(pushes::encrypt_low(mailbox.prekeys.len(), now));
            }
            for node in &live {
                reg.enqueue(&device.jid, node.clone());
            }
            (queued, live)
        };
        self.save_later();
        // Written out together at the end, as a server's burst arrives.
        if self
            .socket
            .feed_node(&pushes::offline_preview(&queued))
            .await
            .is_err()
        {
            return false;
        }
        for node in &queued {
            if !self.push(&pushes::as_offline(node)).await {
                return false;
            }
        }
        for node in [pushes::offline_end(queued.len()), pushes::edge_routing()] {
            if self.socket.feed_node(&node).await.is_err() {
                return false;
            }
        }
        for node in &live {
            if !self.push(node).await {
                return false;
            }
        }
        self.socket.flush().await.is_ok()
    }

    /// At an ack deadline: ends the stream when `max_unacked` pushed stanzas are overdue,
    /// naming the oldest (they stay queued for the next login).
    fn check_acks(&mut self, jid: &str) -> Option<End> {
        let mut reg = self.core.reg();
        let strict = reg.strict.clone();
        let mailbox = reg.mailbox(jid);
        let now = tokio::time::Instant::now();
        let first = self
            .delivery
            .overdue(&strict, now, |id| mailbox.pending(id))?;
        reg.stats.stream_errors_ack += 1;
        reg.stats.device(jid).stream_errors_ack += 1;
        tracing::debug!(device = %jid, id = %first, "too many unacknowledged stanzas");
        Some(End::With(pushes::stream_error_ack(&first)))
    }

    /// A known device logs in: its other logins are closed with 440 first, then this one
    /// counts and gets `<success>`; then it is served until it ends.
    pub async fn login(mut self, device: Device) {
        let jid = device.jid.clone();
        let delay = self.core.reg().login_delay(&jid);
        // While the login waits (slow-handshake for this one device, see
        // docs/decisions.md, then its turn), the socket is watched: a client that has gone
        // is not logged in and kicks nobody, as on the real server.
        let mut early = Vec::new();
        if let Some(delay) = delay
            && self
                .while_present(tokio::time::sleep(delay), &mut early)
                .await
                .is_none()
        {
            return self.abandoned().await;
        }
        let gate = self.core.reg().login_gate(&jid);
        let Some(turn) = self.while_present(gate.lock_owned(), &mut early).await else {
            return self.abandoned().await;
        };
        let others = self.core.reg().live_controls(&jid);
        for other in others {
            let (done_tx, done_rx) = oneshot::channel();
            if other.send(Control::Kick(done_tx)).await.is_ok() {
                let _ = tokio::time::timeout(KICK_DEADLINE, done_rx).await;
            }
        }
        let (control_tx, mut control) = mpsc::channel(CONTROL_QUEUE);
        let queued = {
            let mut reg = self.core.reg();
            if !reg.knows(&jid) {
                // Logged out while this login waited for its turn.
                reg.stats.error(ErrorKind::UnknownDevice);
                None
            } else {
                match reg.take_queued_fault(&jid) {
                    // A queued failure refuses the login instead of `<success>`.
                    Some(fault @ Fault::Failure { .. }) => {
                        reg.stats.fault_applied(Some(&jid), fault.name());
                        Some(Err(fault))
                    }
                    other => {
                        reg.login(&device, self.id, control_tx);
                        reg.stats.device(&jid).last_peer = self.peer.map(|p| p.to_string());
                        Some(Ok(other))
                    }
                }
            }
        };
        drop(turn);
        let queued = match queued {
            None => return self.refuse(stanza::failure(401, &[])).await,
            Some(Err(fault)) => {
                let refusal = fault.stanza().unwrap_or_else(|| stanza::failure(401, &[]));
                return self.refuse(refusal).await;
            }
            Some(Ok(queued)) => queued,
        };
        let success = stanza::success(Some(&device.lid), now_unix());
        let pushes_on = self.core.reg().strict.pushes;
        self.device = Some(device.clone());
        let mut end = if self.socket.send_node(&success).await.is_err() {
            Some(End::Gone)
        } else {
            queued.and_then(|fault| self.device_fault(&jid, fault))
        };
        if end.is_none() && pushes_on && !self.push_burst(&device).await {
            end = Some(End::Gone);
        }
        for node in early {
            if end.is_none() && !self.answer(node).await {
                end = Some(End::Gone);
            }
        }
        while end.is_none() {
            // A stalled server answers nothing, not even with an ack error.
            let deadline = self
                .delivery
                .deadline(&self.core.reg().strict)
                .filter(|_| !self.stalled);
            let ack_clock = tokio::time::sleep_until(
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + KICK_DEADLINE),
            );
            tokio::select! {
                _ = self.cancel.cancelled() => end = Some(End::Gone),
                _ = ack_clock, if deadline.is_some() => end = self.check_acks(&jid),
                node = self.socket.recv_node() => match node {
                    Ok(node) => if !self.answer(node).await { end = Some(End::Gone) },
                    Err(_) => end = Some(End::Gone),
                },
                cmd = control.recv() => match cmd {
                    None => end = Some(End::Gone),
                    Some(Control::Kick(done)) => {
                        // Leave the logged-in set before confirming, so the new login
                        // counts alone.
                        self.leave(&jid);
                        self.core.reg().stats.conflict_sent(&jid);
                        let _ = self.socket.send_node(&stanza::conflict_replaced()).await;
                        self.socket.close().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Control::Fault(fault)) => end = self.device_fault(&jid, fault),
                    Some(Control::Push(_) | Control::Flush) => {
                        if !self.flush(&jid).await { end = Some(End::Gone) }
                    }
                    Some(Control::Scan { reply, .. } | Control::EnterCode { reply, .. }) => {
                        let _ = reply.send(Err(SimError::NoSuchPairing));
                    }
                },
            }
        }
        self.leave(&jid);
        let core = self.core.clone();
        if let Some(end) = end {
            self.finish(end).await;
        }
        // Acks received on this connection survive a restart of the simulator.
        core.save().await;
    }

    /// Takes this connection out of its device's logged-in set (and out of its stalled
    /// count).
    fn leave(&self, jid: &str) {
        let mut reg = self.core.reg();
        if self.stalled {
            let d = reg.stats.device(jid);
            d.stalled = d.stalled.saturating_sub(1);
        }
        reg.logout(jid, self.id);
    }

    /// Waits for `until` while watching the socket; `None` when the client left (or the
    /// simulator stops) first. Nodes the client sends meanwhile are kept in `early`.
    async fn while_present<T>(
        &mut self,
        until: impl std::future::Future<Output = T>,
        early: &mut Vec<Node>,
    ) -> Option<T> {
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                out = &mut until => return Some(out),
                node = self.socket.recv_node() => match node {
                    Ok(node) => early.push(node),
                    Err(_) => return None,
                },
            }
        }
    }

    /// Ends a login whose client left before it was answered (counted unless the
    /// simulator is stopping).
    async fn abandoned(self) {
        if !self.cancel.is_cancelled() {
            self.core.error(ErrorKind::AbandonedLogin);
        }
        self.finish(End::Gone).await;
    }

    /// A fault on a logged-in connection: the registry side (conflict count, logout), then
    /// the connection side.
    pub(super) fn device_fault(&mut self, jid: &str, fault: Fault) -> Option<End> {
        match fault {
            Fault::Conflict => self.core.reg().stats.conflict_sent(jid),
            Fault::Logout => {
                self.core.reg().remove_device(jid);
                let core = self.core.clone();
                self.core.tasks.spawn(async move { core.save().await });
            }
            _ => {}
        }
        self.apply(Some(jid), fault)
    }
}
