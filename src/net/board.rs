//! The status board: the latest `Status` of every session, written by each session's driver
//! (one writer per key) and read by the console, the HTTP endpoint and the event stream.
//!
//! Coalescing is built in: a driver overwrites its entry and marks it dirty; a reader takes
//! the dirty set when woken. A storm of thousands of updates therefore costs the reader one
//! batch. Status changes also go to a bounded broadcast channel; a slow subscriber loses the
//! oldest events and is told how many. (Log lines have their own feed: `logging::LogFeed`.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::{Notify, broadcast};

use crate::session::status::Status;

/// One live event for `GET /events` and other followers.
#[derive(Debug, Clone)]
pub enum BoardEvent {
    /// A session's status changed (the new snapshot).
    Status(Box<Status>),
}

#[derive(Default)]
struct Inner {
    statuses: BTreeMap<String, Status>,
    dirty: BTreeSet<String>,
}

/// Shared, lock-light table of session statuses.
pub struct StatusBoard {
    inner: Mutex<Inner>,
    notify: Notify,
    events: broadcast::Sender<BoardEvent>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusBoard {
    /// An empty board; the event channel keeps the last 4,096 events for slow followers.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        StatusBoard {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-written (every update
        // is a single insert), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a session's new status and wakes the readers.
    pub fn publish(&self, status: Status) {
        let changed = {
            let mut inner = self.lock();
            let changed = inner.statuses.get(&status.id) != Some(&status);
            if changed {
                inner.dirty.insert(status.id.clone());
                inner.statuses.insert(status.id.clone(), status.clone());
            }
            changed
        };
        if changed {
            let _ = self.events.send(BoardEvent::Status(Box::new(status)));
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
    }

    /// Removes a session (it was removed from the config).
    pub fn remove(&self, id: &str) {
        let mut inner = self.lock();
        inner.statuses.remove(id);
        inner.dirty.remove(id);
        drop(inner);
        self.notify.notify_one();
    }

    /// Every status, ordered by session id.
    pub fn snapshot(&self) -> Vec<Status> {
        self.lock().statuses.values().cloned().collect()
    }

    /// One session's status.
    pub fn get(&self, id: &str) -> Option<Status> {
        self.lock().statuses.get(id).cloned()
    }

    /// Ids of every session on the board.
    pub fn ids(&self) -> Vec<String> {
        self.lock().statuses.keys().cloned().collect()
    }

    /// The statuses changed since the last call (each at its newest), clearing the set.
    pub fn take_dirty(&self) -> Vec<Status> {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        dirty
            .iter()
            .filter_map(|id| inner.statuses.get(id).cloned())
            .collect()
    }

    /// Waits until something was published after the last `take_dirty`.
    pub async fn changed(&self) {
        loop {
            let notified = self.notify.notified();
            if !self.lock().dirty.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Follows live events.
    pub fn subscribe(&self) -> broadcast::Receiver<BoardEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::status::StateName;
    use std::time::Instant;

    #[test]
    fn a_storm_of_updates_is_one_batch_with_the_newest_values() {
        let board = StatusBoard::new();
        let now = Instant::now();
        for round in 0..1000u32 {
            for id in ["a", "b", "c"] {
                let mut s = Status::new(id, id, now);
                s.attempt = round;
                board.publish(s);
            }
        }
        let batch = board.take_dirty();
        assert_eq!(batch.len(), 3);
        assert!(batch.iter().all(|s| s.attempt == 999));
        assert!(board.take_dirty().is_empty());
    }

    #[test]
    fn unchanged_status_is_not_dirty() {
        let board = StatusBoard::new();
        let now = Instant::now();
        let mut s = Status::new("a", "a", now);
        board.publish(s.clone());
        board.take_dirty();
        board.publish(s.clone());
        assert!(board.take_dirty().is_empty());
        s.state = StateName::Online;
        board.publish(s);
        assert_eq!(board.take_dirty().len(), 1);
    }

    #[tokio::test]
    async fn changed_wakes_after_publish() {
        let board = std::sync::Arc::new(StatusBoard::new());
        let b2 = board.clone();
        let waiter = tokio::spawn(async move {
            b2.changed().await;
            b2.take_dirty().len()
        });
        tokio::task::yield_now().await;
        board.publish(Status::new("x", "x", Instant::now()));
        assert_eq!(waiter.await.ok(), Some(1));
    }
}
