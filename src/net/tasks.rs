//! Ending tracked tasks: close the tracker and wait for what runs, within a budget (the pool
//! for its drivers, each driver for its dial, ping and query tasks).

use std::time::Duration;

use tokio_util::task::TaskTracker;

/// Closes `tracker` and waits up to `budget` for its tasks; false if some are still running.
pub async fn drain(tracker: &TaskTracker, budget: Duration) -> bool {
    tracker.close();
    tokio::time::timeout(budget, tracker.wait()).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_the_tasks_and_reports_a_straggler() {
        let tracker = TaskTracker::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        tracker.spawn(async move {
            let _ = done_rx.await;
        });
        assert!(!drain(&tracker, Duration::from_millis(100)).await);
        let _ = done_tx.send(());
        assert!(drain(&tracker, Duration::from_millis(100)).await);
    }
}
