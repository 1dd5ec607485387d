//! What one idle session costs in memory, for `wasp bench idle` and for the tests that keep it
//! small. Each session runs three long-lived tasks (driver, connection, messenger): the size
//! of each task's future is noted when it is spawned, so the bench can report it.
//!
//! Each tokio mpsc channel allocates its first block of 32 slots when it is made, so the
//! size of the type it carries, times 32, is held for the session's whole life even when
//! nothing is ever sent; the large payloads travel boxed so these stay small (issue 15's
//! per-session RSS target).

use std::sync::atomic::{AtomicUsize, Ordering};

/// The future sizes of the last session tasks spawned, in bytes.
static DRIVER: AtomicUsize = AtomicUsize::new(0);
static CONN: AtomicUsize = AtomicUsize::new(0);
static MESSENGER: AtomicUsize = AtomicUsize::new(0);

/// The long-lived tasks of one session.
#[derive(Debug, Clone, Copy)]
pub enum Task {
    Driver,
    Conn,
    Messenger,
}

/// Notes the size of `future` as the size of `task`'s future; returns it unchanged.
pub fn noted<F>(task: Task, future: F) -> F {
    let slot = match task {
        Task::Driver => &DRIVER,
        Task::Conn => &CONN,
        Task::Messenger => &MESSENGER,
    };
    slot.store(std::mem::size_of_val(&future), Ordering::Relaxed);
    future
}

/// The noted sizes, as JSON (0 for a task never spawned in this process).
pub fn report() -> serde_json::Value {
    serde_json::json!({
        "driver_future_bytes": DRIVER.load(Ordering::Relaxed),
        "conn_future_bytes": CONN.load(Ordering::Relaxed),
        "messenger_future_bytes": MESSENGER.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use crate::net::conn::{Command, ConnEvent};
    use crate::net::driver::{Background, DriverMsg};
    use crate::net::messages::MessengerMsg;

    #[test]
    fn the_types_sessions_queue_stay_small() {
        let sizes = [
            ("conn::Command", size_of::<Command>()),
            ("ConnEvent", size_of::<ConnEvent>()),
            ("driver::Background", size_of::<Background>()),
            ("DriverMsg", size_of::<DriverMsg>()),
            ("MessengerMsg", size_of::<MessengerMsg>()),
        ];
        eprintln!("{sizes:?}");
        for (name, size) in sizes {
            assert!(size <= 48, "{name} is {size} bytes: box its large variants");
        }
    }
}
