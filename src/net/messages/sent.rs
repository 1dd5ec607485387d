//! What a session remembers of the messages it sent: the last [`KEPT`] messages by id, with
//! the plaintext (to re-encrypt on a retry receipt), the chat, and the furthest status seen,
//! so each status change is reported once and never backwards.

use std::collections::{HashMap, VecDeque};

use super::MessageStatus;
use crate::wa::jid::Jid;
use crate::wa::message::Message;

/// How many sent messages a session keeps for retries and receipts (whatsmeow keeps 256).
pub const KEPT: usize = 1024;

/// One message we sent.
#[derive(Clone)]
pub struct SentMessage {
    /// The chat: the recipient's bare JID.
    pub to: String,
    pub message: Message,
    pub status: MessageStatus,
    /// Retry receipts answered per requesting device.
    pub retries: HashMap<String, u32>,
    /// The participant-list hash of the device lists it was fanned out for (§3.5), to
    /// compare with the server ack's `phash`; `None` for a message sent before a restart.
    pub phash: Option<String>,
    /// The devices it was encrypted for.
    pub devices: Vec<Jid>,
    /// The device lists were already refreshed once after a `phash` mismatch.
    pub refreshed: bool,
}

/// The ring of sent messages.
#[derive(Default)]
pub struct SentLog {
    by_id: HashMap<String, SentMessage>,
    order: VecDeque<String>,
}

impl SentLog {
    pub fn insert(&mut self, id: &str, to: &str, message: Message) {
        if self.by_id.contains_key(id) {
            return;
        }
        while self.order.len() >= KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.order.push_back(id.to_owned());
        self.by_id.insert(
            id.to_owned(),
            SentMessage {
                to: to.to_owned(),
                message,
                status: MessageStatus::Pending,
                retries: HashMap::new(),
                phash: None,
                devices: Vec::new(),
                refreshed: false,
            },
        );
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut SentMessage> {
        self.by_id.get_mut(id)
    }

    /// Moves message `id` to `status` when that is further along (a failure always counts);
    /// returns the chat when the status changed, `None` for an unknown id or no change.
    pub fn advance(&mut self, id: &str, status: MessageStatus) -> Option<String> {
        let sent = self.by_id.get_mut(id)?;
        if status.rank() <= sent.status.rank() && !matches!(status, MessageStatus::Failed(_)) {
            return None;
        }
        if sent.status == status {
            return None;
        }
        sent.status = status;
        Some(sent.to.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward_and_each_is_reported_once() {
        let mut log = SentLog::default();
        log.insert("A", "1@s.whatsapp.net", Message::text("hi"));
        assert_eq!(
            log.advance("A", MessageStatus::Sent).as_deref(),
            Some("1@s.whatsapp.net")
        );
        assert_eq!(log.advance("A", MessageStatus::Sent), None, "once");
        assert!(log.advance("A", MessageStatus::Read).is_some());
        assert_eq!(
            log.advance("A", MessageStatus::Delivered),
            None,
            "never backwards"
        );
        assert_eq!(
            log.advance("B", MessageStatus::Delivered),
            None,
            "unknown id"
        );
    }

    #[test]
    fn the_ring_forgets_the_oldest() {
        let mut log = SentLog::default();
        for i in 0..KEPT + 2 {
            log.insert(&i.to_string(), "x", Message::text("t"));
        }
        assert!(log.get_mut("0").is_none() && log.get_mut("1").is_none());
        assert!(log.get_mut("2").is_some());
        assert!(log.get_mut(&(KEPT + 1).to_string()).is_some());
    }
}
