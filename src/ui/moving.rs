//! The console's move (clustered): `M` opens a dialog for the selected session that takes a
//! node's name as typed text; Enter sends `Order::Move` for a live node other than the owner.

use std::time::Instant;

use super::dialog::{self, LineKey, edit_line};
use super::keymap::{Action, Key, Section};
use super::link::{Order, Request};
use super::model::{Confirm, Mode, Model};

/// A key in the move dialog.
pub(super) fn on_key(
    model: &mut Model,
    key: Key,
    action: Option<Action>,
    now: Instant,
) -> Vec<Request> {
    let Mode::Confirm(Confirm::Move { id, typed: node }) = &mut model.mode else {
        return Vec::new();
    };
    let LineKey::Action(action) = edit_line(node, key, action) else {
        return Vec::new();
    };
    match action {
        Action::Cancel => {
            model.mode = Mode::Normal;
            model.say("move cancelled", now);
        }
        Action::Confirm => {
            let (id, node) = (id.clone(), node.trim().to_string());
            return move_to(model, id, node, now);
        }
        _ => {}
    }
    Vec::new()
}

/// Opens the move dialog for the selected session (clustered only: the node list is known).
pub(super) fn ask(model: &mut Model, now: Instant) {
    if model.nodes.is_empty() && !model.settings.read_only {
        model.refuse("moving needs [cluster]: this wasp runs alone", now);
        return;
    }
    dialog::for_selected(model, "move", now, |id| {
        Mode::Confirm(Confirm::Move {
            id,
            typed: String::new(),
        })
    });
}

/// The move dialog confirmed: a request when `node` is a live node other than the owner.
fn move_to(model: &mut Model, id: String, node: String, now: Instant) -> Vec<Request> {
    let cancel = model
        .settings
        .keymap
        .control_hint(Section::Dialog, Action::Cancel);
    if !model.nodes.iter().any(|n| n.node == node) {
        let live: Vec<&str> = model.nodes.iter().map(|n| n.node.as_str()).collect();
        let what = if node.is_empty() {
            "type a node's name".to_string()
        } else {
            format!("no live node named {node}")
        };
        model.refuse(
            format!("{what} (live: {}), or {cancel}", live.join(", ")),
            now,
        );
        return Vec::new();
    }
    let owner = model.sessions.get(&id).and_then(|s| s.owner.as_deref());
    if owner == Some(node.as_str()) {
        model.refuse(
            format!("{id} already runs on {node}; type another node, or {cancel}"),
            now,
        );
        return Vec::new();
    }
    model.mode = Mode::Normal;
    model.say(format!("move of {id} to {node} sent"), now);
    vec![Request {
        session: id,
        order: Order::Move { node },
    }]
}
