//! `GET /events`: a server-sent event stream of status changes (`status`, a session's new row,
//! sent only when the row shows something new: not for a change the row does not carry),
//! log lines (`log`, the JSON object headless runs print), received messages (`message`) and
//! status changes of sent ones (`receipt`), so another process can follow the pool live. Both come through bounded buffers; a follower that falls behind gets a
//! `lagged` event saying how many events of which kind it missed.
//!
//! `?form=full` is the stream a console follows (`wasp attach`): a `snapshot` event first (every
//! session, whole `WireStatus`es), `message` and `receipt` events as above, then `statuses` events (every change waiting when the stream
//! is read, newest per session, as an array of whole `WireStatus`es), and a fresh
//! `snapshot` instead of `lagged` when it fell behind on statuses. The QR text is in it only for
//! a request with the token; a request with a wrong token is refused (401) rather than served
//! read-only, so a mistyped token file is noticed at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::json::{Clock, SessionRow};
use super::state::{AppState, error};
use super::wire::WireStatus;
use crate::logging::FeedItem;
use crate::net::board::BoardEvent;
use crate::net::messages::MessageEvent;

/// Most sessions in one `statuses` event.
const BATCH_MAX: usize = 1024;

/// `?form=full` asks for the console's stream.
#[derive(serde::Deserialize)]
pub(super) struct EventsQuery {
    form: Option<String>,
}

pub(super) async fn events(
    State(app): State<AppState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    if query.form.as_deref() != Some("full") {
        return stream(app).await.into_response();
    }
    // Both streams end when the pool stops, so a follower notices a restart.
    let offered = headers.contains_key(header::AUTHORIZATION);
    let admitted = app.access.operator(&headers);
    if offered && !admitted {
        return error(
            StatusCode::UNAUTHORIZED,
            "the bearer token is not this pool's: check the token file",
        );
    }
    full_stream(app, admitted).into_response()
}

/// The console's stream: a snapshot, then whole statuses; QR text only when `with_qr`.
fn full_stream(app: AppState, with_qr: bool) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before the snapshot, so no change falls between the two.
    let rx = app.pool.board.subscribe();
    let first = snapshot(&app, with_qr);
    let board_app = app.clone();
    let statuses = futures::stream::unfold(rx, move |mut rx| {
        let app = board_app.clone();
        async move {
            let first = match rx.recv().await {
                Ok(BoardEvent::Status(status)) => status,
                Err(RecvError::Lagged(_)) => return Some((snapshot(&app, with_qr), rx)),
                Err(RecvError::Closed) => return None,
            };
            // Every change already waiting goes in the same event, newest per session.
            let mut batch = std::collections::BTreeMap::new();
            batch.insert(first.id.clone(), first);
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(BoardEvent::Status(status)) => {
                        batch.insert(status.id.clone(), status);
                    }
                    Err(TryRecvError::Lagged(_)) => return Some((snapshot(&app, with_qr), rx)),
                    Err(_) => break,
                }
            }
            let clock = Clock::now();
            let wire: Vec<WireStatus> = batch
                .values()
                .map(|s| WireStatus::new(s, &clock, with_qr))
                .collect();
            let data = serde_json::to_string(&wire).unwrap_or_default();
            Some((Event::default().event("statuses").data(data), rx))
        }
    });
    let statuses = futures::stream::iter([first]).chain(statuses);
    let events = futures::stream::select(statuses, log_events(&app));
    let events = futures::stream::select(events, message_events(&app))
        .take_until(stopped(&app))
        .map(Ok);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `snapshot`: every session now, as a JSON array of `WireStatus`.
fn snapshot(app: &AppState, with_qr: bool) -> Event {
    let clock = Clock::now();
    let all: Vec<WireStatus> = app
        .pool
        .board
        .snapshot()
        .iter()
        .map(|s| WireStatus::new(s, &clock, with_qr))
        .collect();
    let data = serde_json::to_string(&all).unwrap_or_default();
    Event::default().event("snapshot").data(data)
}

/// `log` events from the live feed (`lagged` when lines were missed).
fn log_events(app: &AppState) -> impl Stream<Item = Event> + use<> {
    futures::stream::unfold(app.logs.follow(), |mut follower| async move {
        let event = match follower.next().await? {
            FeedItem::Line(line) => Event::default().event("log").data(&*line),
            FeedItem::Missed(n) => lagged("log", n),
        };
        Some((event, follower))
    })
}

async fn stream(app: AppState) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let follow = (app.pool.board.subscribe(), SentRows::default());
    let statuses = futures::stream::unfold(follow, |(mut rx, mut sent)| async move {
        let event = loop {
            match rx.recv().await {
                Ok(BoardEvent::Status(status)) => {
                    let row = SessionRow::new(&status, &Clock::now());
                    if let Some(data) = sent.news(row) {
                        break Event::default().event("status").data(data);
                    }
                }
                Err(RecvError::Lagged(n)) => break lagged("status", n),
                Err(RecvError::Closed) => return None,
            }
        };
        Some((event, (rx, sent)))
    });
    let events = futures::stream::select(statuses, log_events(&app));
    let events = futures::stream::select(events, message_events(&app))
        .take_until(stopped(&app))
        .map(Ok);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The last `status` row one follower got, per session. A status can change where the row does
/// not show it (a frame arrived, the same round trip again, a new QR): that sends nothing.
#[derive(Default)]
struct SentRows(HashMap<String, SessionRow>);

impl SentRows {
    /// The JSON of `row` when it shows something its session's last row did not, else `None`.
    fn news(&mut self, row: SessionRow) -> Option<String> {
        if self
            .0
            .get(&row.id)
            .is_some_and(|last| row.shows_same_as(last))
        {
            return None;
        }
        let data = serde_json::to_string(&row).unwrap_or_default();
        self.0.insert(row.id.clone(), row);
        Some(data)
    }
}

/// `message` (a received message) and `receipt` (a sent message's new status) events, each
/// with its session (`lagged` of `message` when some were missed).
fn message_events(app: &AppState) -> impl Stream<Item = Event> + use<> {
    futures::stream::unfold(app.pool.message_events(), |mut rx| async move {
        let event = match rx.recv().await {
            Ok(event) => message_event(&event),
            Err(RecvError::Lagged(n)) => lagged("message", n),
            Err(RecvError::Closed) => return None,
        };
        Some((event, rx))
    })
}

fn message_event(event: &MessageEvent) -> Event {
    let (name, data) = crate::webhook::event::message_json(event);
    Event::default().event(name).data(data.to_string())
}

/// Resolves when the pool has stopped.
fn stopped(app: &AppState) -> impl std::future::Future<Output = ()> + use<> {
    let pool = app.pool.clone();
    async move { pool.stopped().await }
}

/// `lagged`: `{"missed": n, "of": "status" | "log" | "message"}`.
fn lagged(of: &str, missed: u64) -> Event {
    let data = serde_json::json!({ "missed": missed, "of": of });
    Event::default().event("lagged").data(data.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::session::status::Status;

    #[test]
    fn a_row_goes_out_only_when_it_shows_something_new() {
        let t0 = Instant::now();
        let clock = Clock::now();
        let mut sent = SentRows::default();
        let mut s = Status::new("a", "a", t0);
        assert!(
            sent.news(SessionRow::new(&s, &clock)).is_some(),
            "the first row"
        );
        // A frame arrived and the round trip is the same to the millisecond: nothing to show.
        s.liveness.last_frame_at = Some(t0 + Duration::from_secs(1));
        s.liveness.last_rtt = Some(Duration::from_micros(3_100));
        let first_rtt = sent.news(SessionRow::new(&s, &clock));
        assert!(first_rtt.is_some(), "a round trip shows first");
        s.liveness.last_frame_at = Some(t0 + Duration::from_secs(2));
        s.liveness.last_rtt = Some(Duration::from_micros(3_400));
        assert_eq!(sent.news(SessionRow::new(&s, &clock)), None);
        // The uptime moved with the clock only: nothing either.
        s.uptime_pct = 42.0;
        assert_eq!(sent.news(SessionRow::new(&s, &clock)), None);
        // A stall and a new attempt are news; another session's first row too.
        s.liveness.stalled = true;
        let stalled = sent.news(SessionRow::new(&s, &clock)).unwrap();
        assert!(stalled.contains("\"stalled\":true"), "{stalled}");
        s.attempt = 1;
        assert!(sent.news(SessionRow::new(&s, &clock)).is_some());
        let other = Status::new("b", "b", t0);
        assert!(sent.news(SessionRow::new(&other, &clock)).is_some());
    }
}
