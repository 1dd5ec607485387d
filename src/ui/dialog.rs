//! What the console's small dialogs share: opening one for the selected session, and the
//! one-line text field they type into.

use std::time::Instant;

use crossterm::event::KeyCode;

use super::keymap::{Action, Key};
use super::model::{Mode, Model};

/// Opens the dialog `open` makes for the selected session; refused in read-only mode (naming
/// `what` is disabled) or with no session selected.
pub(super) fn for_selected(
    model: &mut Model,
    what: &str,
    now: Instant,
    open: impl FnOnce(String) -> Mode,
) {
    if model.settings.read_only {
        model.refuse(format!("read-only mode: {what} is disabled"), now);
        return;
    }
    match model.selected.clone() {
        Some(id) => model.mode = open(id),
        None => model.refuse("no session selected", now),
    }
}

/// In a dialog that takes text: the character a key types, if it types one.
fn typed(key: Key) -> Option<char> {
    match key.code {
        KeyCode::Char(c) if key.types_text() => Some(c),
        _ => None,
    }
}

/// What a key did to a dialog's one-line text field.
pub(super) enum LineKey {
    /// The text changed: a character typed or erased, or the whole line cleared.
    Edited,
    /// Not an edit: the action the key stands for in the dialog.
    Action(Action),
    /// Neither.
    Nothing,
}

/// One key into a dialog's text field: typing, Backspace and clear-input edit `line`; any other
/// key is handed back as its action.
pub(super) fn edit_line(line: &mut String, key: Key, action: Option<Action>) -> LineKey {
    if let Some(c) = typed(key) {
        line.push(c);
        return LineKey::Edited;
    }
    match action {
        _ if key.code == KeyCode::Backspace => {
            line.pop();
            LineKey::Edited
        }
        Some(Action::ClearInput) => {
            line.clear();
            LineKey::Edited
        }
        Some(action) => LineKey::Action(action),
        None => LineKey::Nothing,
    }
}
