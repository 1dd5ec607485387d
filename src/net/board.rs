//! The status board: the latest `Status` of every session, written by each session's driver
//! (one writer per key) and read by the console, the HTTP endpoint and the event stream.
//!
//! Coalescing is built in: a driver overwrites its entry and marks it dirty; a reader takes
//! the dirty set when woken. A storm of thousands of updates therefore costs the reader one
//! batch. Status changes also go to a bounded broadcast channel; a slow subscriber loses the
//! oldest events and is told how many. (Log lines have their own feed: `logging::LogFeed`.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::{Notify, broadcast, watch};

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
    /// Sessions started but not yet published once (the board is not ready while any is).
    awaited: BTreeSet<String>,
}

/// Shared, lock-light table of session statuses.
pub struct StatusBoard {
    inner: Mutex<Inner>,
    /// Wakes the one reader that takes the dirty set (`changed`).
    notify: Notify,
    /// Counts every change; followers wait on it without taking the dirty set.
    version: watch::Sender<u64>,
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
            version: watch::Sender::new(0),
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
        let event = {
            let mut inner = self.lock();
            inner.awaited.remove(&status.id);
            if inner.statuses.get(&status.id) == Some(&status) {
                return;
            }
            if !inner.dirty.contains(&status.id) {
                inner.dirty.insert(status.id.clone());
            }
            // A copy for the followers only when there are any (a pool's logins publish
            // several times each; the copy and its timeline were a few % of a login).
            let event = (self.events.receiver_count() > 0).then(|| Box::new(status.clone()));
            match inner.statuses.get_mut(&status.id) {
                Some(slot) => *slot = status,
                None => {
                    inner.statuses.insert(status.id.clone(), status);
                }
            }
            event
        };
        if let Some(status) = event {
            let _ = self.events.send(BoardEvent::Status(status));
        }
        self.notify.notify_waiters();
        self.notify.notify_one();
        self.version.send_modify(|v| *v += 1);
    }

    /// Records that session `id` was started: the board is not ready until it publishes.
    pub fn expect(&self, id: &str) {
        let mut inner = self.lock();
        if !inner.statuses.contains_key(id) {
            inner.awaited.insert(id.to_string());
        }
    }

    /// Whether `id` is a session of the pool: published, or started and not yet published.
    pub fn knows(&self, id: &str) -> bool {
        let inner = self.lock();
        inner.statuses.contains_key(id) || inner.awaited.contains(id)
    }

    /// True once every started session has published at least once.
    pub fn is_ready(&self) -> bool {
        self.lock().awaited.is_empty()
    }

    /// Follows changes without taking the dirty set: the receiver sees a new value after
    /// each publish or removal (`wait_for` on it, then read with `get`/`snapshot`).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Removes a session (it was removed from the config).
    pub fn remove(&self, id: &str) {
        let mut inner = self.lock();
        inner.statuses.remove(id);
        inner.dirty.remove(id);
        inner.awaited.remove(id);
        drop(inner);
        self.notify.notify_one();
        self.version.send_modify(|v| *v += 1);
    }

    /// Every status, ordered by session id.
    pub fn snapshot(&self) -> Vec<Status> {
        self.lock().statuses.values().cloned().collect()
    }

    /// How many statuses `pred` holds for, looked at in place: nothing is copied, so a bench
    /// may ask often without the asking being what it measures.
    pub fn count(&self, pred: impl Fn(&Status) -> bool) -> usize {
        self.lock().statuses.values().filter(|s| pred(s)).count()
    }

    /// What `pick` takes from each status, looked at in place (only what it returns is
    /// copied), in session id order.
    pub fn pick<T>(&self, pick: impl Fn(&Status) -> Option<T>) -> Vec<T> {
        self.lock().statuses.values().filter_map(pick).collect()
    }

    /// One session's status.
    pub fn get(&self, id: &str) -> Option<Status> {
        self.lock().statuses.get(id).cloned()
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
    use crate::session::status::Phase;
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
    fn pick_takes_what_it_returns_in_id_order() {
        let board = StatusBoard::new();
        let now = Instant::now();
        for (id, attempt) in [("c", 3), ("a", 1), ("b", 2)] {
            let mut s = Status::new(id, id, now);
            s.attempt = attempt;
            board.publish(s);
        }
        let odd = board.pick(|s| (s.attempt % 2 == 1).then(|| s.id.clone()));
        assert_eq!(odd, ["a", "c"]);
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
        s.phase = Phase::Online { since: now };
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

    #[test]
    fn ready_only_once_every_started_session_has_published() {
        let board = StatusBoard::new();
        assert!(board.is_ready(), "an empty pool is ready");
        board.expect("a");
        board.expect("b");
        assert!(!board.is_ready());
        board.publish(Status::new("a", "a", Instant::now()));
        assert!(!board.is_ready(), "b has not published");
        board.publish(Status::new("b", "b", Instant::now()));
        assert!(board.is_ready());
        board.expect("c");
        board.remove("c");
        assert!(board.is_ready(), "a removed session is not awaited");
    }

    #[tokio::test]
    async fn watch_sees_each_publish() {
        let board = StatusBoard::new();
        let mut rx = board.watch();
        let status = Status::new("x", "x", Instant::now());
        board.publish(status.clone());
        assert!(rx.has_changed().unwrap_or(false));
        rx.borrow_and_update();
        board.publish(status);
        assert!(
            !rx.has_changed().unwrap_or(true),
            "an unchanged status is no change"
        );
    }
}
