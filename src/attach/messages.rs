//! Messages for an attached console: `message` and `receipt` events of the pool's stream as
//! pane lines, a message queued with `POST /sessions/{id}/messages` (answer `{"id", "status"}`),
//! and a session's kept messages read with `GET /sessions/{id}/messages`.

use std::time::Instant;

use serde_json::Value;

use super::client::{Client, segment};
use crate::ui::messages::{instant_of, wall_ms};
use crate::ui::{MessageLine, PoolUpdate, Stage, Way};

/// Kept messages read per direction when a session is first selected.
const READ_BACK: u32 = 10;

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The line of a `message` (received) or `receipt` (a sent one's new status) event.
pub fn event_line(name: &str, data: &str, now: Instant) -> Option<MessageLine> {
    let v: Value = serde_json::from_str(data).ok()?;
    let session = text(&v, "session")?;
    let id = text(&v, "id")?;
    let peer = text(&v, "chat")?;
    let line = match name {
        "message" => {
            let from_me = v.get("from_me").and_then(Value::as_bool).unwrap_or(false);
            MessageLine {
                session,
                id,
                way: if from_me { Way::Out } else { Way::In },
                peer,
                text: text(&v, "text"),
                stage: if from_me {
                    Stage::Sent
                } else {
                    Stage::Received
                },
                at: now,
            }
        }
        "receipt" => MessageLine {
            session,
            id,
            way: Way::Out,
            peer,
            text: None,
            stage: Stage::parse(&text(&v, "status")?, text(&v, "error").as_deref())?,
            at: now,
        },
        _ => return None,
    };
    Some(line)
}

/// Queues a message as the API does; the line for the pane and the answer, or the refusal.
pub async fn send(client: &Client, session: &str, to: &str, body: &str) -> Vec<PoolUpdate> {
    let path = format!("/sessions/{}/messages", segment(session));
    let json = serde_json::json!({ "to": to, "text": body }).to_string();
    match client.post_json_answer(&path, json).await {
        Ok(answer) => {
            let id = text(&answer, "id").unwrap_or_default();
            let status = text(&answer, "status").unwrap_or_else(|| "queued".into());
            let line = MessageLine {
                session: session.to_string(),
                id: id.clone(),
                way: Way::Out,
                peer: to.to_string(),
                text: Some(body.to_string()),
                stage: Stage::parse(&status, None).unwrap_or(Stage::Queued),
                at: Instant::now(),
            };
            vec![
                PoolUpdate::Messages(vec![line]),
                PoolUpdate::Answered(format!("{session}: message {id} to {to} {status}")),
            ]
        }
        Err(e) => vec![PoolUpdate::Refused(format!("message from {session}: {e}"))],
    }
}

/// The newest kept messages of `session`, both ways (none when they cannot be read).
pub async fn kept(client: &Client, session: &str) -> Vec<MessageLine> {
    let (now, now_ms) = (Instant::now(), wall_ms());
    let mut lines = Vec::new();
    for direction in ["out", "in"] {
        let path = format!(
            "/sessions/{}/messages?direction={direction}&limit={READ_BACK}",
            segment(session)
        );
        let answer = match client.get_json(&path).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(session, error = %e, "kept messages not read");
                continue;
            }
        };
        let kept = answer.get("messages").and_then(Value::as_array);
        for m in kept.into_iter().flatten() {
            if let Some(line) = kept_line(session, m, now, now_ms) {
                lines.push(line);
            }
        }
    }
    lines
}

/// One kept message of a listing: an outgoing one has `to` and `status`, a received one `from`.
fn kept_line(session: &str, m: &Value, now: Instant, now_ms: u64) -> Option<MessageLine> {
    let id = text(m, "id")?;
    let line = match text(m, "to") {
        Some(to) => MessageLine {
            session: session.to_string(),
            id,
            way: Way::Out,
            peer: to,
            text: text(m, "text"),
            stage: Stage::parse(&text(m, "status")?, text(m, "error").as_deref())?,
            at: instant_of(m.get("queued_at")?.as_u64()?, now, now_ms),
        },
        None => MessageLine {
            session: session.to_string(),
            id,
            way: Way::In,
            peer: text(m, "chat")?,
            text: text(m, "text"),
            stage: Stage::Received,
            at: instant_of(m.get("time")?.as_u64()?.saturating_mul(1000), now, now_ms),
        },
    };
    Some(line)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stream_events_and_listings_become_pane_lines() {
        let now = Instant::now();
        let got = event_line(
            "receipt",
            r#"{"session":"s1","id":"3EB0A","chat":"15550100001@s.whatsapp.net","status":"delivered"}"#,
            now,
        )
        .unwrap();
        assert_eq!((got.way, got.stage), (Way::Out, Stage::Delivered));
        let got = event_line(
            "message",
            r#"{"session":"s1","id":"X","from":"15550100002@s.whatsapp.net","chat":"15550100002@s.whatsapp.net","from_me":false,"type":"text","text":"hi","time":1}"#,
            now,
        )
        .unwrap();
        assert_eq!((got.way, got.text.as_deref()), (Way::In, Some("hi")));
        assert!(event_line("receipt", r#"{"session":"s1"}"#, now).is_none());
        assert!(event_line("status", "{}", now).is_none());

        let out: Value = serde_json::from_str(
            r#"{"id":"A","to":"15550100001@s.whatsapp.net","text":"t","status":"failed","error":"15550100001 is not on WhatsApp","queued_at":1000,"sent_at":null,"delivered_at":null,"read_at":null}"#,
        )
        .unwrap();
        let line = kept_line("s1", &out, now, 3000).unwrap();
        assert_eq!(
            line.stage,
            Stage::Failed("15550100001 is not on WhatsApp".into())
        );
        assert_eq!(now.duration_since(line.at).as_millis(), 2000);
    }
}
