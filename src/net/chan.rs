//! A small bounded multi-producer, single-consumer channel for the queues every session keeps
//! for its whole life (pool to driver, driver to connection and back, driver to messenger,
//! background results).
//!
//! Why not `tokio::sync::mpsc`: each of its channels allocates, when it is made, a cache-padded
//! shared block of about 512 bytes plus a first block of 32 message slots, about 1.3 KiB even
//! if nothing is ever sent. A session keeps five such queues, so an idle pool of 2,000 paid
//! about 13 MB for queues that are empty nearly all the time (issue 15, `wasp bench idle`).
//! This one costs about 200 bytes when empty: a mutex around a `VecDeque` (which allocates on
//! the first send and gives its room back when drained) and two `Notify`s.
//!
//! Semantics follow tokio's: `send` waits for room and fails once the receiver is gone,
//! `try_send` never waits, `recv` returns `None` once every sender is gone and the queue is
//! drained, and `recv` is cancel-safe (a message is taken only when it is returned).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Room kept once drained: none. A session's queues are empty nearly all the time, and eight
/// slots kept in each of its busy ones cost an idle pool of 2,000 about 1 MB; a drained queue
/// gives its room back and the next message allocates again (one allocation per burst).
const KEPT: usize = 0;

/// The message could not be sent: the receiver is gone.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why `try_send` gave the message back.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds `capacity` messages.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Rung when a message arrives or the last sender leaves (one receiver: `notify_one`).
    readable: Notify,
    /// Rung when room frees up (`notify_one`) or the receiver leaves (`notify_waiters`).
    writable: Notify,
}

impl<T> Shared<T> {
    /// The state; a panic while it was held cannot leave it inconsistent (every change is a
    /// single push, pop or counter step), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Makes a channel holding at most `capacity` (at least 1) messages.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        capacity: capacity.max(1),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// The sending end; clone it for more senders.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving end (one per channel).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `value`, waiting for room; gives it back when the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = value;
        loop {
            let room = self.shared.writable.notified();
            tokio::pin!(room);
            // Registered before the check, so room freed in between is not missed.
            room.as_mut().enable();
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => return Err(SendError(v)),
                Err(TrySendError::Full(v)) => value = v,
            }
            room.await;
        }
    }

    /// Queues `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Err(TrySendError::Closed(value));
        }
        if state.queue.len() >= self.shared.capacity {
            return Err(TrySendError::Full(value));
        }
        state.queue.push_back(value);
        drop(state);
        self.shared.readable.notify_one();
        Ok(())
    }

    /// True once the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.shared.lock().receiver_alive
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.readable.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.take() {
                Ok(value) => return Some(value),
                Err(Empty::Closed) => return None,
                Err(Empty::Open) => {}
            }
            // A ring with nobody waiting is kept as a permit, so one sent between the check
            // above and this wait still wakes it.
            self.shared.readable.notified().await;
        }
    }

    /// The next message if one is already waiting (never waits).
    pub fn try_recv(&mut self) -> Option<T> {
        self.take().ok()
    }

    fn take(&mut self) -> Result<T, Empty> {
        let mut state = self.shared.lock();
        let Some(value) = state.queue.pop_front() else {
            return Err(if state.senders == 0 {
                Empty::Closed
            } else {
                Empty::Open
            });
        };
        if state.queue.is_empty() && state.queue.capacity() > KEPT {
            state.queue.shrink_to(KEPT);
        }
        drop(state);
        self.shared.writable.notify_one();
        Ok(value)
    }
}

/// Why nothing was taken.
enum Empty {
    /// Senders remain: something may come.
    Open,
    /// Every sender is gone.
    Closed,
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let left = {
            let mut state = self.shared.lock();
            state.receiver_alive = false;
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock: a message's own drop may use other channels.
        drop(left);
        self.shared.writable.notify_waiters();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("chan::Sender")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("chan::Receiver")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_arrive_in_order_and_none_follows_the_last_sender() {
        let (tx, mut rx) = channel(4);
        let tx2 = tx.clone();
        tx.send(1).await.unwrap();
        tx2.send(2).await.unwrap();
        drop(tx);
        tx2.try_send(3).unwrap();
        drop(tx2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn try_recv_takes_what_waits_and_frees_room_for_a_waiting_sender() {
        let (tx, mut rx) = channel(1);
        assert_eq!(rx.try_recv(), None, "empty, senders alive");
        tx.send(1).await.unwrap();
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        assert_eq!(rx.try_recv(), Some(1));
        blocked.await.unwrap().unwrap();
        assert_eq!(rx.try_recv(), Some(2));
        drop(tx);
        assert_eq!(rx.try_recv(), None, "empty, senders gone");
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_try_send_and_holds_send_until_room_frees() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        let waiting = tokio::spawn(async move {
            tx.send(3).await.unwrap();
            tx
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(rx.recv().await, Some(1));
        let tx = waiting.await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_gone_receiver_fails_sends_and_wakes_a_waiting_sender() {
        let (tx, rx) = channel(1);
        tx.send("first").await.unwrap();
        let blocked = tx.clone();
        let waiting = tokio::spawn(async move { blocked.send("second").await });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(SendError("second")));
        assert!(tx.is_closed());
        assert!(matches!(
            tx.try_send("third"),
            Err(TrySendError::Closed("third"))
        ));
        assert_eq!(tx.send("fourth").await, Err(SendError("fourth")));
    }

    #[tokio::test]
    async fn a_receive_given_up_in_a_select_loses_nothing() {
        let (tx, mut rx) = channel(4);
        tokio::select! {
            biased;
            _ = rx.recv() => panic!("nothing was sent"),
            () = tokio::task::yield_now() => {}
        }
        tx.send(7).await.unwrap();
        assert_eq!(rx.recv().await, Some(7));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_message_from_another_task() {
        let (tx, mut rx) = channel::<u32>(4);
        let receiving = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.send(9).await.unwrap();
        assert_eq!(receiving.await.unwrap(), Some(9));
    }

    #[tokio::test]
    async fn a_drained_queue_gives_back_the_room_of_a_burst() {
        let (tx, mut rx) = channel(1000);
        for i in 0..1000 {
            tx.try_send(i).unwrap();
        }
        assert!(tx.shared.lock().queue.capacity() >= 1000);
        for i in 0..1000 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(tx.shared.lock().queue.capacity(), KEPT);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_senders_on_two_threads_deliver_everything_once() {
        let (tx, mut rx) = channel(3);
        let mut tasks = Vec::new();
        for sender in 0..8u64 {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..500u64 {
                    tx.send(sender * 1000 + i).await.unwrap();
                }
            }));
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(v) = rx.recv().await {
            seen.push(v);
        }
        for task in tasks {
            task.await.unwrap();
        }
        seen.sort_unstable();
        let expected: Vec<u64> = (0..8u64)
            .flat_map(|s| (0..500u64).map(move |i| s * 1000 + i))
            .collect();
        assert_eq!(seen, expected);
    }
}
