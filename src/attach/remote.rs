//! The remote pool behind the console's `PoolLink`: follows `GET /events?form=full` (the whole
//! fleet, then each change; log lines into the console's ring), reconnects by itself with a
//! short capped backoff and says "unreachable since" meanwhile, and turns operator requests into
//! POSTs; message and receipt events feed the pane (`messages`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{Client, segment};
use super::messages;
use super::sse::{SseEvent, SseParser};
use crate::http::Clock;
use crate::http::wire::WireStatus;
use crate::session::Command;
use crate::session::status::Status;
use crate::ui::{LogRing, Order, PoolLink, PoolUpdate, Request};

/// The console's stream.
pub const EVENTS_PATH: &str = "/events?form=full";
/// First and longest wait between two reconnects.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(3);
/// Most body frames already waiting that join one batch.
const DRAIN_FRAMES: usize = 4096;

/// Starts following `client`'s pool; everything ends with `cancel`.
pub fn link(client: Arc<Client>, ring: LogRing, cancel: CancellationToken) -> PoolLink {
    let (tx, updates) = mpsc::channel(64);
    let (requests, rx) = mpsc::channel(256);
    tokio::spawn(follow(client.clone(), tx.clone(), ring, cancel.clone()));
    tokio::spawn(super::nodes::follow_nodes(
        client.clone(),
        tx.clone(),
        cancel.clone(),
    ));
    tokio::spawn(send_requests(client, rx, tx, cancel));
    PoolLink { updates, requests }
}

/// How one connection to the event stream ended.
enum Ended {
    /// Cancelled, or the console is gone: stop for good.
    Stop,
    /// The stream broke or could not be opened; the sentence says why.
    Lost(String),
}

async fn follow(
    client: Arc<Client>,
    tx: mpsc::Sender<PoolUpdate>,
    ring: LogRing,
    cancel: CancellationToken,
) {
    let mut down: Option<SystemTime> = None;
    let mut wait = RETRY_FIRST;
    loop {
        let why = match follow_once(&client, &tx, &ring, &cancel, &mut down).await {
            Ended::Stop => return,
            Ended::Lost(why) => why,
        };
        if down.is_none() {
            tracing::warn!(target = %client.target, %why, "the pool is unreachable");
            wait = RETRY_FIRST;
        }
        let since = *down.get_or_insert_with(SystemTime::now);
        if tx
            .send(PoolUpdate::Unreachable { since, why })
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// One connection: the snapshot (which ends an outage: `down` is cleared), then changes,
/// batched per chunk read (newest per session), until the stream ends.
async fn follow_once(
    client: &Client,
    tx: &mpsc::Sender<PoolUpdate>,
    ring: &LogRing,
    cancel: &CancellationToken,
    down: &mut Option<SystemTime>,
) -> Ended {
    let mut body = tokio::select! {
        _ = cancel.cancelled() => return Ended::Stop,
        opened = client.stream(EVENTS_PATH) => match opened {
            Ok(body) => body,
            Err(e) => return Ended::Lost(e.to_string()),
        },
    };
    let mut parser = SseParser::default();
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => return Ended::Stop,
            frame = body.frame() => frame,
        };
        if let Err(why) = take_frame(frame, &mut parser) {
            return Ended::Lost(why);
        }
        // Everything else already here joins this batch (each event is a chunk of its own).
        for _ in 0..DRAIN_FRAMES {
            let Some(frame) = body.frame().now_or_never() else {
                break;
            };
            if let Err(why) = take_frame(frame, &mut parser) {
                return Ended::Lost(why);
            }
        }
        let clock = Clock::now();
        let mut changed: BTreeMap<String, Status> = BTreeMap::new();
        let mut lines = Vec::new();
        for event in parser.by_ref() {
            match event.name.as_str() {
                "message" | "receipt" => {
                    lines.extend(messages::event_line(
                        &event.name,
                        &event.data,
                        Instant::now(),
                    ));
                }
                "snapshot" => {
                    let Some(fleet) = decode::<Vec<WireStatus>>(&event) else {
                        continue;
                    };
                    // The snapshot supersedes the changes read before it.
                    changed.clear();
                    let fleet = fleet.iter().map(|w| w.status(&clock)).collect();
                    if tx.send(PoolUpdate::Fleet(fleet)).await.is_err() {
                        return Ended::Stop;
                    }
                    if let Some(since) = down.take() {
                        tracing::info!(target = %client.target, since = ?since, "the pool is reachable again");
                    }
                }
                "statuses" => {
                    for wire in decode::<Vec<WireStatus>>(&event).unwrap_or_default() {
                        changed.insert(wire.id.clone(), wire.status(&clock));
                    }
                }
                "log" => push_log(ring, &event.data),
                _ => {}
            }
        }
        if !changed.is_empty()
            && tx
                .send(PoolUpdate::Changed(changed.into_values().collect()))
                .await
                .is_err()
        {
            return Ended::Stop;
        }
        if !lines.is_empty() && tx.send(PoolUpdate::Messages(lines)).await.is_err() {
            return Ended::Stop;
        }
    }
}

/// Feeds one body frame to the parser; the sentence when the stream ended or broke.
fn take_frame(
    frame: Option<Result<hyper::body::Frame<bytes::Bytes>, hyper::Error>>,
    parser: &mut SseParser,
) -> Result<(), String> {
    match frame {
        None => Err("the pool closed the event stream".into()),
        Some(Err(e)) => Err(format!("the event stream broke: {e}")),
        Some(Ok(frame)) => {
            if let Ok(data) = frame.into_data() {
                parser.push(&data);
            }
            Ok(())
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(event: &SseEvent) -> Option<T> {
    match serde_json::from_str(&event.data) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(event = %event.name, error = %e, "an event from the pool could not be read");
            None
        }
    }
}

/// A pool's JSON log line (`logging::JsonLines`) into the console's ring.
fn push_log(ring: &LogRing, line: &str) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    let text_of = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    // `2026-12-01T03:45:04.123456Z` -> `03:45:04`
    let time = text_of("time").get(11..19).unwrap_or_default().to_string();
    let level = text_of("level").parse().unwrap_or(tracing::Level::INFO);
    let session = value
        .get("session")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let mut text = text_of("message").to_string();
    if let Some(fields) = value.get("fields").and_then(|f| f.as_object()) {
        for (name, field) in fields {
            match field.as_str() {
                Some(s) => text.push_str(&format!(" {name}={s}")),
                None => text.push_str(&format!(" {name}={field}")),
            }
        }
    }
    ring.push(time, level, session, text_of("target"), text);
}

/// Operator requests as POSTs, in order; a pair request (which waits for its QR) runs beside
/// the others. Refusals come back to the console as one sentence.
async fn send_requests(
    client: Arc<Client>,
    mut rx: mpsc::Receiver<Request>,
    tx: mpsc::Sender<PoolUpdate>,
    cancel: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            request = rx.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let (client, tx) = (client.clone(), tx.clone());
        match &request.order {
            Order::Send { to, text, after } => {
                let (to, text, after) = (to.clone(), text.clone(), *after);
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(after) => {}
                    }
                    for update in messages::send(&client, &request.session, &to, &text).await {
                        if tx.send(update).await.is_err() {
                            return;
                        }
                    }
                });
                continue;
            }
            Order::Recent => {
                tokio::spawn(async move {
                    let lines = messages::kept(&client, &request.session).await;
                    let _ = tx.send(PoolUpdate::Messages(lines)).await;
                });
                continue;
            }
            Order::Run(_) | Order::Move { .. } | Order::PairCode { .. } => {}
        }
        let pairing = request.command() == Some(Command::Pair)
            || matches!(request.order, Order::PairCode { .. });
        let post = async move {
            let id = segment(&request.session);
            let answer = match &request.order {
                Order::Run(command) => {
                    let name = command.name();
                    // The console's wipe dialog had the id typed; the API wants it again.
                    let path = if command.is_destructive() {
                        format!("/sessions/{id}/{name}?confirm={id}")
                    } else {
                        format!("/sessions/{id}/{name}")
                    };
                    client
                        .post(&path)
                        .await
                        .map(|()| None)
                        .map_err(|e| format!("{name} {}: {e}", request.session))
                }
                Order::PairCode { phone } => {
                    let body = serde_json::json!({ "phone": phone }).to_string();
                    let path = format!("/sessions/{id}/pair");
                    match client.post_json_answer(&path, body).await {
                        Ok(answer) => {
                            let update = code_update(&request.session, &answer);
                            let _ = tx.send(update).await;
                            return;
                        }
                        Err(e) => Err(format!("pair {} by code: {e}", request.session)),
                    }
                }
                Order::Move { node } => {
                    let body = serde_json::json!({ "node": node }).to_string();
                    client
                        .post_json(&format!("/sessions/{id}/move"), body)
                        .await
                        .map(|()| Some(format!("{}: move to {node} accepted", request.session)))
                        .map_err(|e| format!("move {} to {node}: {e}", request.session))
                }
                // Handled above.
                Order::Send { .. } | Order::Recent => return,
            };
            let update = match answer {
                Ok(None) => return,
                Ok(Some(text)) => PoolUpdate::Answered(text),
                Err(text) => PoolUpdate::Refused(text),
            };
            let _ = tx.send(update).await;
        };
        if pairing {
            tokio::spawn(post);
        } else {
            post.await;
        }
    }
}

/// The console's update for the pool's answer to a pair-by-code request.
fn code_update(session: &str, answer: &serde_json::Value) -> PoolUpdate {
    let code = answer["code"]
        .as_str()
        .and_then(|c| crate::wa::pair_code::LinkCode::parse(c).ok());
    match code {
        Some(code) => {
            let left = Duration::from_secs(answer["expires_in_s"].as_u64().unwrap_or(0));
            PoolUpdate::PairCode {
                session: session.to_string(),
                code,
                expires_at: std::time::Instant::now() + left,
            }
        }
        None => PoolUpdate::Refused(format!(
            "pair {session} by code: the pool's answer has no code"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pool_log_line_lands_in_the_ring() {
        let ring = LogRing::new(10);
        push_log(
            &ring,
            r#"{"time":"2026-12-01T03:45:04.123456Z","level":"warn","session":"s1","target":"wasp::net","message":"dial failed","fields":{"attempt":3,"cause":"closed"}}"#,
        );
        let line = &ring.snapshot()[0];
        assert_eq!(line.time, "03:45:04");
        assert_eq!(line.level, tracing::Level::WARN);
        assert_eq!(line.session.as_deref(), Some("s1"));
        assert_eq!(line.text, "dial failed attempt=3 cause=closed");
    }
}
