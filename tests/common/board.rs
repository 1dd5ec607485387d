//! Waiting on the status board: woken by its change notifications, bounded by a deadline,
//! panicking with what the board holds when the deadline passes.

use std::time::Duration;

use tokio::time::Instant;
use wasp::net::board::StatusBoard;
use wasp::session::status::Status;

/// Waits until `pred` holds for session `id`; returns that status.
pub async fn wait_for(
    board: &StatusBoard,
    id: &str,
    what: &str,
    within: Duration,
    pred: impl Fn(&Status) -> bool,
) -> Status {
    wait_until(board, within, || board.get(id).filter(|s| pred(s)))
        .await
        .unwrap_or_else(|| panic!("{id} never reached {what}: {:?}", board.get(id)))
}

/// Waits until `pred` holds for the whole board (every session, ordered by id).
pub async fn wait_for_all(
    board: &StatusBoard,
    what: &str,
    within: Duration,
    pred: impl Fn(&[Status]) -> bool,
) -> Vec<Status> {
    wait_until(board, within, || {
        Some(board.snapshot()).filter(|all| pred(all))
    })
    .await
    .unwrap_or_else(|| {
        let all: Vec<_> = board
            .snapshot()
            .into_iter()
            .map(|s| (s.id.clone(), s.state(), s.reason.clone()))
            .collect();
        panic!("the board never reached {what}: {all:?}")
    })
}

/// Re-checks `probe` after every board change until it answers or `within` passes.
async fn wait_until<T>(
    board: &StatusBoard,
    within: Duration,
    probe: impl Fn() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    let mut changes = board.watch();
    loop {
        changes.borrow_and_update();
        if let Some(found) = probe() {
            return Some(found);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // The board is gone or the deadline passed: one last look.
            _ => return probe(),
        }
    }
}
