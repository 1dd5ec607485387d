//! The console's message dialog: `m` opens it for the selected session (number and text), or
//! for the marked rows (one test message from each, to the number typed, `STAGGER` apart).
//! Enter checks what was typed the way the HTTP API does and sends `Order::Send`; a bad number,
//! an empty text or an unpaired session is refused in one sentence and the dialog stays.

use std::time::{Duration, Instant};

use super::dialog::{LineKey, edit_line};
use super::keymap::{Action, Key, Section};
use super::link::{Order, Request};
use super::model::{Mode, Model};
use crate::net::messages::{MAX_TEXT_BYTES, parse_recipient};

/// Between two marked sessions' test messages.
pub const STAGGER: Duration = Duration::from_secs(3);

/// The text a test message from marked rows starts with (editable).
pub const TEST_TEXT: &str = "wasp test message";

/// Which field of the message dialog takes the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    To,
    Text,
}

/// The message dialog: from the selected session, or one test message from each marked one.
#[derive(Debug, Clone, PartialEq)]
pub struct Compose {
    pub ids: Vec<String>,
    pub to: String,
    pub text: String,
    pub field: Field,
}

/// `m`: opens the dialog for the marked rows, else the selected one.
pub(super) fn open(model: &mut Model, now: Instant) {
    if model.settings.read_only {
        model.refuse("read-only mode: message is disabled", now);
        return;
    }
    let marked: Vec<String> = model
        .marks
        .iter()
        .filter(|id| model.sessions.contains_key(*id))
        .cloned()
        .collect();
    let (ids, text) = if marked.is_empty() {
        let Some(id) = model.selected.clone() else {
            model.refuse("no session selected", now);
            return;
        };
        if let Some(why) = unpaired(model, &id) {
            model.refuse(why, now);
            return;
        }
        (vec![id], String::new())
    } else {
        (marked, TEST_TEXT.to_string())
    };
    model.mode = Mode::Compose(Compose {
        ids,
        to: String::new(),
        text,
        field: Field::To,
    });
}

/// Why `id` cannot send, when it cannot.
fn unpaired(model: &Model, id: &str) -> Option<String> {
    let paired = model.sessions.get(id).is_some_and(|s| s.account.paired);
    (!paired).then(|| {
        let pair = model
            .settings
            .keymap
            .hint(Section::Table, Action::Run(crate::session::Command::Pair));
        format!("{id} is not paired: pair it before sending ({pair} starts pairing)")
    })
}

/// A key in the dialog.
pub(super) fn on_key(
    model: &mut Model,
    key: Key,
    action: Option<Action>,
    now: Instant,
) -> Vec<Request> {
    let Mode::Compose(compose) = &mut model.mode else {
        return Vec::new();
    };
    let field = match compose.field {
        Field::To => &mut compose.to,
        Field::Text => &mut compose.text,
    };
    let LineKey::Action(action) = edit_line(field, key, action) else {
        return Vec::new();
    };
    match action {
        Action::ToggleBackup | Action::Up | Action::Down => {
            compose.field = match compose.field {
                Field::To => Field::Text,
                Field::Text => Field::To,
            };
        }
        Action::Cancel => {
            model.mode = Mode::Normal;
            model.say("message not sent", now);
        }
        Action::Confirm => {
            let compose = compose.clone();
            return send(model, compose, now);
        }
        _ => {}
    }
    Vec::new()
}

/// Enter: checks the number and the text, then one request per paired session.
fn send(model: &mut Model, compose: Compose, now: Instant) -> Vec<Request> {
    let to = compose.to.trim();
    if to.is_empty() {
        model.refuse(
            "type the number to send to (digits, country code first)",
            now,
        );
        return Vec::new();
    }
    if parse_recipient(to).is_none() {
        model.refuse(
            format!("{to:?} is not a phone number or JID (digits, country code first)"),
            now,
        );
        return Vec::new();
    }
    if compose.text.trim().is_empty() {
        model.refuse("type the text to send", now);
        return Vec::new();
    }
    if compose.text.len() > MAX_TEXT_BYTES {
        model.refuse(
            format!(
                "the text is {} bytes long; the limit is {MAX_TEXT_BYTES}",
                compose.text.len()
            ),
            now,
        );
        return Vec::new();
    }
    let (ready, not_paired): (Vec<String>, Vec<String>) = compose
        .ids
        .iter()
        .cloned()
        .partition(|id| unpaired(model, id).is_none());
    if ready.is_empty() {
        let why = match not_paired.as_slice() {
            [one] => unpaired_sentence(model, one),
            many => format!("none of the {} marked sessions is paired", many.len()),
        };
        model.refuse(why, now);
        return Vec::new();
    }
    let requests: Vec<Request> = ready
        .iter()
        .zip(0u32..)
        .map(|(id, i)| Request {
            session: id.clone(),
            order: Order::Send {
                to: to.to_string(),
                text: compose.text.clone(),
                after: STAGGER * i,
            },
        })
        .collect();
    model.mode = Mode::Normal;
    let text = match (requests.len(), not_paired.len()) {
        (1, 0) if compose.ids.len() == 1 => format!("sending from {} to {to}", ready[0]),
        (n, 0) => format!(
            "test message to {to} from {n} sessions, {}s apart",
            STAGGER.as_secs()
        ),
        (n, k) => format!(
            "test message to {to} from {n} sessions, {}s apart; {k} not paired: {}",
            STAGGER.as_secs(),
            not_paired.join(", ")
        ),
    };
    if compose.ids.len() > 1 {
        model.marks.clear();
    }
    model.say(text, now);
    requests
}

fn unpaired_sentence(model: &Model, id: &str) -> String {
    unpaired(model, id).unwrap_or_else(|| format!("{id} cannot send"))
}
