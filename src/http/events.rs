//! `GET /events`: a server-sent event stream of status changes (`status`, a session's new row)
//! and log lines (`log`, the JSON object headless runs print), so another process can follow
//! the pool live. Both come through bounded buffers; a follower that falls behind gets a
//! `lagged` event saying how many events of which kind it missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::json::{Clock, SessionRow};
use super::state::AppState;
use crate::logging::FeedItem;
use crate::net::board::BoardEvent;

pub(super) async fn stream(
    State(app): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let statuses = futures::stream::unfold(app.pool.board.subscribe(), |mut rx| async move {
        let event = match rx.recv().await {
            Ok(BoardEvent::Status(status)) => {
                let row = SessionRow::new(&status, &Clock::now());
                let data = serde_json::to_string(&row).unwrap_or_default();
                Event::default().event("status").data(data)
            }
            Err(RecvError::Lagged(n)) => lagged("status", n),
            Err(RecvError::Closed) => return None,
        };
        Some((event, rx))
    });
    let logs = futures::stream::unfold(app.logs.follow(), |mut follower| async move {
        let event = match follower.next().await? {
            FeedItem::Line(line) => Event::default().event("log").data(&*line),
            FeedItem::Missed(n) => lagged("log", n),
        };
        Some((event, follower))
    });
    let events = futures::stream::select(statuses, logs).map(Ok);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `lagged`: `{"missed": n, "of": "status" | "log"}`.
fn lagged(of: &str, missed: u64) -> Event {
    let data = serde_json::json!({ "missed": missed, "of": of });
    Event::default().event("lagged").data(data.to_string())
}
