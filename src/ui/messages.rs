//! The console's view of messages: the newest few in and out of each session with where they
//! stand, merged from what the pool reports (a message handed to it, a receipt, one received,
//! a listing read back when a session is first selected), and the model's accessors for them.
//! Pure data; `view::messages` draws it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::model::Model;
use crate::session::status::Status;

/// Messages kept per session (the pane shows what fits).
pub const KEPT_PER_SESSION: usize = 20;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    In,
    Out,
}

/// Where a message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Handed to the outbox, not yet acked by the server.
    Queued,
    Sent,
    Delivered,
    Read,
    /// With the reason.
    Failed(String),
    /// A message that came in.
    Received,
}

impl Stage {
    /// From a status name as the pool reports it (`queued`, `sent`, `delivered`, `read`,
    /// `played`, `failed`, `received`).
    pub fn parse(name: &str, error: Option<&str>) -> Option<Stage> {
        Some(match name {
            "queued" => Stage::Queued,
            "sent" => Stage::Sent,
            "delivered" => Stage::Delivered,
            "read" | "played" => Stage::Read,
            "failed" => Stage::Failed(error.unwrap_or("no reason given").to_string()),
            "received" => Stage::Received,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Sent => "sent",
            Stage::Delivered => "delivered",
            Stage::Read => "read",
            Stage::Failed(_) => "failed",
            Stage::Received => "received",
        }
    }

    /// Progress order: a stage never goes back (a late `sent` after `delivered` is ignored).
    fn rank(&self) -> u8 {
        match self {
            Stage::Queued => 0,
            Stage::Sent => 1,
            Stage::Delivered => 2,
            Stage::Read => 3,
            Stage::Failed(_) | Stage::Received => 4,
        }
    }
}

/// One message as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageLine {
    pub session: String,
    pub id: String,
    pub way: Way,
    /// The chat: a JID or a number.
    pub peer: String,
    /// `None` for a message that is not text, or a receipt for a message not seen yet.
    pub text: Option<String>,
    pub stage: Stage,
    /// When it was queued or received.
    pub at: Instant,
}

impl MessageLine {
    /// The peer as a number: the user part of a JID, without a device suffix.
    pub fn peer_number(&self) -> &str {
        let user = self.peer.split('@').next().unwrap_or_default();
        user.split(':').next().unwrap_or_default()
    }
}

impl Model {
    /// Whether `s` has sent, received or queued messages (the console then shows them).
    pub fn has_traffic(&self, s: &Status) -> bool {
        let o = &s.outbox;
        o.queued > 0
            || o.sent_1h > 0
            || o.received_1h > 0
            || o.delivered_1h > 0
            || !self.messages.of(&s.id).is_empty()
    }

    /// The newest messages of `session`, newest first.
    pub fn messages(&self, session: &str) -> &[MessageLine] {
        self.messages.of(session)
    }

    /// The reads of kept messages the selection asked for since the last call (the selected
    /// session's, once each).
    pub fn take_loads(&mut self) -> Vec<String> {
        std::mem::take(&mut self.to_load)
    }

    /// Asks for the selected session's kept messages the first time it is selected.
    pub(crate) fn want_messages(&mut self) {
        if let Some(id) = self.selected.clone()
            && self.messages.ask(&id)
        {
            self.to_load.push(id);
        }
    }
}

/// The instant of wall time `wall_ms` (unix ms), given that `now` is `now_ms` on the wall.
pub fn instant_of(wall_ms: u64, now: Instant, now_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(now_ms.saturating_sub(wall_ms)))
        .unwrap_or(now)
}

/// Now on the wall clock, in unix ms.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Every session's newest messages, newest first.
#[derive(Debug, Default)]
pub struct Recent {
    by_session: HashMap<String, Vec<MessageLine>>,
    /// Sessions whose kept messages were asked for (once each).
    asked: HashSet<String>,
}

impl Recent {
    /// Takes reported lines: a known message (same session, direction and id) moves forward
    /// and keeps its first time and text; a new one joins. Each session keeps its newest
    /// `KEPT_PER_SESSION`.
    pub fn merge(&mut self, lines: Vec<MessageLine>) {
        let mut touched = HashSet::new();
        for line in lines {
            let kept = self.by_session.entry(line.session.clone()).or_default();
            touched.insert(line.session.clone());
            match kept
                .iter_mut()
                .find(|k| k.way == line.way && k.id == line.id)
            {
                Some(known) => {
                    if line.stage.rank() > known.stage.rank() {
                        known.stage = line.stage;
                    }
                    if known.text.is_none() {
                        known.text = line.text;
                    }
                    known.at = known.at.min(line.at);
                }
                None => kept.push(line),
            }
        }
        for session in touched {
            if let Some(kept) = self.by_session.get_mut(&session) {
                // Newest first; ties keep their order.
                kept.sort_by_key(|line| std::cmp::Reverse(line.at));
                kept.truncate(KEPT_PER_SESSION);
            }
        }
    }

    /// The newest messages of `session`, newest first.
    pub fn of(&self, session: &str) -> &[MessageLine] {
        self.by_session.get(session).map_or(&[], Vec::as_slice)
    }

    /// True the first time it is asked for `session`: its kept messages should be read.
    pub fn ask(&mut self, session: &str) -> bool {
        self.asked.insert(session.to_string())
    }

    /// Forgets the sessions `keep` says are gone.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.by_session.retain(|id, _| keep(id));
        self.asked.retain(|id| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, stage: Stage, text: Option<&str>, at: Instant) -> MessageLine {
        MessageLine {
            session: "s1".into(),
            id: id.into(),
            way: Way::Out,
            peer: "15550100001@s.whatsapp.net".into(),
            text: text.map(str::to_string),
            stage,
            at,
        }
    }

    #[test]
    fn a_receipt_moves_a_known_message_forward_and_never_back() {
        let t0 = Instant::now();
        let mut recent = Recent::default();
        recent.merge(vec![line("A", Stage::Queued, Some("hello"), t0)]);
        let later = t0 + Duration::from_secs(2);
        recent.merge(vec![line("A", Stage::Delivered, None, later)]);
        recent.merge(vec![line("A", Stage::Sent, None, later)]);
        let kept = recent.of("s1");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].stage, Stage::Delivered);
        assert_eq!(kept[0].text.as_deref(), Some("hello"));
        assert_eq!(kept[0].at, t0, "the line keeps the time it was queued");
        assert_eq!(kept[0].peer_number(), "15550100001");
    }

    #[test]
    fn each_session_keeps_its_newest_first() {
        let t0 = Instant::now();
        let mut recent = Recent::default();
        let lines = (0..KEPT_PER_SESSION as u64 + 5)
            .map(|i| {
                let at = t0 + Duration::from_secs(i);
                line(&format!("m{i}"), Stage::Sent, None, at)
            })
            .collect();
        recent.merge(lines);
        let kept = recent.of("s1");
        assert_eq!(kept.len(), KEPT_PER_SESSION);
        assert_eq!(kept[0].id, format!("m{}", KEPT_PER_SESSION + 4));
        assert!(recent.of("s2").is_empty());
        assert!(recent.ask("s1") && !recent.ask("s1"), "asked once");
        recent.retain(|id| id != "s1");
        assert!(recent.of("s1").is_empty() && recent.ask("s1"));
    }
}
