//! `GET /events`: a server-sent event stream of status changes and log lines, so another
//! process can follow the pool live. A follower that falls behind the bounded buffer gets a
//! `lagged` event saying how many events it missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::json::{Clock, SessionRow};
use super::routes::AppState;
use crate::net::board::BoardEvent;

pub(super) async fn stream(
    State(app): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = app.pool.board.subscribe();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(BoardEvent::Status(status)) => {
                let row = SessionRow::new(&status, &Clock::now());
                let data = serde_json::to_string(&row).unwrap_or_default();
                Event::default().event("status").data(data)
            }
            Ok(BoardEvent::Log(line)) => Event::default().event("log").data(line),
            Err(RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{n}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
