//! The JSON of each event kind, shared by `GET /events` and the webhook bodies: `message` (a
//! received message), `receipt` (a sent message's new status) and `state` (a session's new
//! state), each with its session.

use serde_json::{Value, json};

use crate::net::messages::{MessageEvent, MessageEventKind, MessageStatus};
use crate::session::status::Status;

/// The event's name (`message` or `receipt`) and its JSON object.
pub fn message_json(event: &MessageEvent) -> (&'static str, Value) {
    match &event.kind {
        MessageEventKind::Received(m) => (
            "message",
            json!({
                "session": event.session,
                "id": m.id,
                "from": m.sender,
                "chat": m.chat,
                "from_me": m.from_me,
                "type": m.kind,
                "text": m.text,
                "time": m.timestamp,
            }),
        ),
        MessageEventKind::Status { id, chat, status } => {
            let (name, error) = match status {
                MessageStatus::Pending => ("queued", None),
                MessageStatus::Sent => ("sent", None),
                MessageStatus::Delivered => ("delivered", None),
                MessageStatus::Read => ("read", None),
                MessageStatus::Played => ("played", None),
                MessageStatus::Failed(why) => ("failed", Some(why.as_str())),
            };
            let mut data = json!({
                "session": event.session,
                "id": id,
                "chat": chat,
                "status": name,
            });
            if let Some(error) = error {
                data["error"] = json!(error);
            }
            ("receipt", data)
        }
    }
}

/// A session's state as a `state` event: `{"session", "state", "reason"}`.
pub fn state_json(status: &Status) -> Value {
    json!({
        "session": status.id,
        "state": status.state().as_str(),
        "reason": status.reason,
    })
}
