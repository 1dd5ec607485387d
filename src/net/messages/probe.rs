//! The end-to-end probe of one session (`[probe]`): every `every` while online, a probe text
//! (`wasp-probe <id>`) goes through the outbox to the peer like any message, but marked as a
//! probe, so it counts for no traffic figure, webhook or event. It has arrived when the
//! peer's device sends its delivery receipt: the only signal that the message crossed the
//! server and was decrypted on the other side (a server ack only says the server took it).
//! A probe not delivered within `probe_deadline` of being written on a live socket marks the
//! session degraded (until a later probe arrives) and, with `reconnect_on_silence`, asks the
//! driver to reconnect.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::Messenger;
use crate::config::{ProbeConfig, ProbePeer};
use crate::net::board::StatusBoard;
use crate::store::outbox::NewMessage;

/// The text every probe starts with; the id follows.
pub const PROBE_PREFIX: &str = "wasp-probe ";

/// True when `text` is a probe as wasp writes it (`wasp-probe ` and a message id).
pub fn is_probe_text(text: &str) -> bool {
    text.strip_prefix(PROBE_PREFIX).is_some_and(|id| {
        (4..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    })
}

/// What a messenger needs to probe.
#[derive(Clone)]
pub struct ProbeSetup {
    pub config: ProbeConfig,
    /// To find a peer session's number.
    pub board: Arc<StatusBoard>,
}

/// One session's probe state.
pub(super) struct Probe {
    setup: Option<ProbeSetup>,
    /// When the next probe is queued (while none is pending).
    next_at: Instant,
    /// The probe waiting for its receipt, and its deadline once written on a socket.
    pending: Option<(String, Option<Instant>)>,
    pub(super) degraded: bool,
    /// Reconnects asked for so far (the driver acts on each new one).
    pub(super) reconnects: u32,
}

impl Probe {
    pub(super) fn new(setup: Option<ProbeSetup>, now: Instant) -> Probe {
        let first = setup.as_ref().map_or(Duration::ZERO, |s| s.config.every);
        Probe {
            setup,
            next_at: now + first,
            pending: None,
            degraded: false,
            reconnects: 0,
        }
    }

    /// When the probe has something to do, if ever.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        self.setup.as_ref()?;
        match &self.pending {
            Some((_, deadline)) => *deadline,
            None => Some(self.next_at),
        }
    }

    /// True when `id` is the pending probe.
    pub(super) fn is_pending(&self, id: &str) -> bool {
        self.pending.as_ref().is_some_and(|(p, _)| p == id)
    }
}

impl Messenger {
    /// The number the probes of this session go to; `None` when there is none (a peer
    /// session not paired yet, or this session is the peer itself).
    fn probe_peer(&self) -> Option<String> {
        let setup = self.probe.setup.as_ref()?;
        let number = match &setup.config.peer {
            ProbePeer::Session(id) if *id == self.session => return None,
            ProbePeer::Session(id) => setup.board.get(id)?.account.phone?,
            ProbePeer::Number(n) => n.clone(),
        };
        let own = self.link.as_ref().and_then(|(_, _, c)| c.account.as_ref());
        if own.is_some_and(|a| a.phone == number) {
            return None;
        }
        Some(number)
    }

    /// The probe's timer fired: judge the pending probe or queue the next.
    pub(super) async fn probe_tick(&mut self) {
        let now = Instant::now();
        let Some(setup) = self.probe.setup.clone() else {
            return;
        };
        if let Some((id, Some(deadline))) = self.probe.pending.clone() {
            if deadline > now {
                return;
            }
            self.probe.pending = None;
            self.probe.next_at = now + setup.config.every;
            let after = crate::config::format_duration(setup.config.probe_deadline);
            warn!(%id, "probe not delivered within {after}: session degraded");
            self.probe.degraded = true;
            if setup.config.reconnect_on_silence && self.link.is_some() {
                info!("reconnecting after a silent probe");
                self.probe.reconnects += 1;
            }
            return;
        }
        if self.probe.pending.is_some() || now < self.probe.next_at {
            return;
        }
        self.probe.next_at = now + setup.config.every;
        if self.link.is_none() {
            return;
        }
        let Some(peer) = self.probe_peer() else {
            return;
        };
        let own = self
            .link
            .as_ref()
            .and_then(|(_, _, c)| c.account.as_ref())
            .map(|a| a.phone.clone())
            .unwrap_or_default();
        let secs = super::queue::unix_ms() / 1000;
        let id = crate::wa::message::new_message_id(secs, &own);
        let msg = NewMessage {
            id: id.clone(),
            to: crate::wa::jid::Jid::pn(&peer).to_string(),
            text: format!("{PROBE_PREFIX}{id}"),
            key: None,
        };
        let (at, keep) = (super::queue::unix_ms(), self.outbox.config.keep);
        match self
            .keys_call(move |keys, session| keys.outbox_enqueue_probe(&session, &msg, at, keep))
            .await
        {
            Ok(()) => {
                self.probe.pending = Some((id, None));
                self.outbox.dirty = true;
            }
            Err(e) => warn!(error = %e, "could not queue a probe"),
        }
    }

    /// A message was written on the socket: a pending probe's deadline starts.
    pub(super) fn probe_written(&mut self, id: &str) {
        let Some(deadline) = self.probe.setup.as_ref().map(|s| s.config.probe_deadline) else {
            return;
        };
        if let Some((pending, at)) = &mut self.probe.pending
            && pending == id
            && at.is_none()
        {
            *at = Some(Instant::now() + deadline);
        }
    }

    /// Logged in again: a pending probe's deadline starts again (it is resent when it was
    /// not acked; an acked one may still be delivered).
    pub(super) fn probe_online(&mut self) {
        let Some(deadline) = self.probe.setup.as_ref().map(|s| s.config.probe_deadline) else {
            return;
        };
        if let Some((_, at)) = &mut self.probe.pending {
            *at = Some(Instant::now() + deadline);
        }
    }

    /// The socket closed: a pending probe waits for the next one (a dead socket is not
    /// silence of a live one).
    pub(super) fn probe_offline(&mut self) {
        if let Some((_, at)) = &mut self.probe.pending {
            *at = None;
        }
    }

    /// The probe's new status: delivered ends it well; failed ends it (no verdict).
    pub(super) fn probe_status(&mut self, id: &str, delivered: bool) {
        if !self.probe.is_pending(id) {
            return;
        }
        self.probe.pending = None;
        if delivered {
            if self.probe.degraded {
                info!(%id, "probe delivered: session healthy again");
            }
            self.probe.degraded = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_texts_are_told_apart() {
        assert!(is_probe_text("wasp-probe 3EB0A1B2C3D4"));
        assert!(!is_probe_text("wasp-probe "));
        assert!(!is_probe_text("wasp-probe hello there"));
        assert!(!is_probe_text("hello wasp-probe 3EB0A1"));
    }
}
