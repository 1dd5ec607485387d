//! What the simulator keeps per device between connections: the stanzas pushed but not yet
//! acknowledged (redelivered first, with `offline`, at the next login) and the one-time
//! pre-key ids the device uploaded minus those consumed. Saved in the state file.

use std::collections::{BTreeSet, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::wa::node::{self, Node};

/// The most unacknowledged stanzas kept per device; older ones are dropped (the real
/// server's offline queue is bounded too).
pub const MAX_QUEUED: usize = 256;

/// One device's mailbox.
#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    /// Pushed (or queued while offline) and not acknowledged, oldest first.
    pub queue: VecDeque<Node>,
    /// One-time pre-key ids the server holds for the device.
    pub prekeys: BTreeSet<u32>,
    /// Accepted pre-key uploads.
    pub uploads: u64,
}

impl Mailbox {
    /// Queues a stanza; answers false when the oldest had to be dropped to make room.
    pub fn push(&mut self, node: Node) -> bool {
        let room = self.queue.len() < MAX_QUEUED;
        if !room {
            self.queue.pop_front();
        }
        self.queue.push_back(node);
        room
    }

    /// Removes the stanzas of `tag` whose id is in `ids` (and whose `from` is `to`, when the
    /// client addressed its ack); answers how many it removed.
    pub fn close(&mut self, tag: &str, ids: &[&str], to: Option<&str>) -> usize {
        let before = self.queue.len();
        self.queue.retain(|n| {
            let hit = n.tag == tag
                && n.get_attr("id").is_some_and(|id| ids.contains(&id))
                && to.is_none_or(|to| n.get_attr("from") == Some(to));
            !hit
        });
        before - self.queue.len()
    }

    /// Whether a stanza with this id is still waiting for its ack.
    pub fn pending(&self, id: &str) -> bool {
        self.queue.iter().any(|n| n.get_attr("id") == Some(id))
    }

    /// Removes up to `n` one-time pre-keys, lowest ids first (as peers fetch bundles);
    /// answers how many it removed.
    pub fn consume(&mut self, n: usize) -> usize {
        let taken: Vec<u32> = self.prekeys.iter().take(n).copied().collect();
        for id in &taken {
            self.prekeys.remove(id);
        }
        taken.len()
    }

    pub fn to_saved(&self) -> SavedMailbox {
        SavedMailbox {
            queue: self
                .queue
                .iter()
                .filter_map(|n| node::encode(n).ok())
                .map(|b| STANDARD.encode(b))
                .collect(),
            prekeys: self.prekeys.iter().copied().collect(),
            uploads: self.uploads,
        }
    }

    /// Back from the state file; an entry that does not decode is a clear error.
    pub fn from_saved(saved: SavedMailbox) -> Result<Mailbox, String> {
        let queue = saved
            .queue
            .iter()
            .map(|text| {
                STANDARD
                    .decode(text)
                    .map_err(|e| e.to_string())
                    .and_then(|b| node::decode(&b).map_err(|e| e.to_string()))
            })
            .collect::<Result<VecDeque<Node>, String>>()
            .map_err(|e| format!("a queued stanza does not decode: {e}"))?;
        Ok(Mailbox {
            queue,
            prekeys: saved.prekeys.into_iter().collect(),
            uploads: saved.uploads,
        })
    }
}

/// A mailbox in the state file: stanzas as base64 of their binary encoding.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedMailbox {
    #[serde(default)]
    pub queue: Vec<String>,
    #[serde(default)]
    pub prekeys: Vec<u32>,
    #[serde(default)]
    pub uploads: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn stanza(tag: &str, id: &str) -> Node {
        Node::new(tag).attr("id", id).attr("from", "s.whatsapp.net")
    }

    #[test]
    fn acks_close_by_tag_id_and_address_and_the_box_saves() {
        let mut mb = Mailbox::default();
        mb.push(stanza("notification", "1"));
        mb.push(stanza("message", "1"));
        mb.push(stanza("receipt", "2"));
        assert_eq!(mb.close("message", &["1"], Some("elsewhere")), 0);
        assert_eq!(mb.close("message", &["1"], Some("s.whatsapp.net")), 1);
        assert!(mb.pending("1"));
        assert_eq!(mb.close("notification", &["1"], None), 1);
        mb.prekeys.extend([5, 1, 9]);
        assert_eq!(mb.consume(2), 2);
        let back = Mailbox::from_saved(mb.to_saved()).unwrap();
        assert_eq!(back.queue, mb.queue);
        assert_eq!(back.prekeys.into_iter().collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut mb = Mailbox::default();
        for i in 0..MAX_QUEUED {
            assert!(mb.push(stanza("receipt", &i.to_string())));
        }
        assert!(!mb.push(stanza("receipt", "last")));
        assert_eq!(mb.queue.len(), MAX_QUEUED);
        assert!(!mb.pending("0") && mb.pending("last"));
    }
}
