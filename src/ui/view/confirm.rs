//! Confirmation dialogs: wipe (type the session id, or the count of marked sessions) and bulk
//! actions on marked rows (shows the count); clustered, the move (type the node's name).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::super::keymap::{Action, Section};
use super::super::model::{Confirm, Model};
use super::widgets::{dialog, named, text_field};

/// Ids listed before "and N more".
const LISTED: usize = 4;

pub(super) fn listing(ids: &[String]) -> String {
    let mut text = ids
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > LISTED {
        text.push_str(&format!(" and {} more", ids.len() - LISTED));
    }
    text
}

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, confirm: &Confirm) {
    let theme = model.theme();
    let keymap = &model.settings().keymap;
    let (title, lines) = match confirm {
        Confirm::Wipe { ids, typed, backup } => {
            let word = Confirm::wipe_word(ids);
            let toggle = keymap.control_hint(Section::Dialog, Action::ToggleBackup);
            let confirm = keymap.control_hint(Section::Dialog, Action::Confirm);
            let cancel = keymap.control_hint(Section::Dialog, Action::Cancel);
            let what = match ids.as_slice() {
                [one] => format!("Wipe the credentials of {}?", named(model, one)),
                many => format!(
                    "Wipe the credentials of {} marked sessions: {}?",
                    many.len(),
                    listing(many)
                ),
            };
            let lines = vec![
                Line::from(Span::styled(what, theme.title)),
                Line::from(Span::styled(
                    "Key material is removed; the session must be paired again.",
                    theme.text,
                )),
                Line::from(vec![
                    Span::styled("Backup first: ", theme.text),
                    Span::styled(if *backup { "yes" } else { "NO" }, theme.key),
                    Span::styled(format!("  ({toggle} toggles)"), theme.dim),
                ]),
                Line::default(),
                text_field(model, format!("Type {word} to confirm: "), typed),
                Line::from(Span::styled(
                    format!("{confirm} wipes · {cancel} cancels"),
                    theme.dim,
                )),
            ];
            (" Wipe credentials ", lines)
        }
        Confirm::Move { id, typed } => {
            let owner = model
                .status(id)
                .and_then(|s| s.owner.clone())
                .unwrap_or_else(|| "no node".to_string());
            let live: Vec<String> = model
                .nodes()
                .iter()
                .map(|n| format!("{} ({})", n.node, n.sessions))
                .collect();
            let lines = vec![
                Line::from(Span::styled(
                    format!("Move {id} (now on {owner}) to another node?"),
                    theme.title,
                )),
                Line::from(Span::styled(
                    "Its owner hands it over; only the named node claims it.",
                    theme.text,
                )),
                Line::from(vec![
                    Span::styled("Live nodes (sessions): ", theme.text),
                    Span::styled(live.join(", "), theme.dim),
                ]),
                Line::default(),
                text_field(model, "Node: ", typed),
                Line::from(Span::styled(
                    format!(
                        "{} moves · {} cancels",
                        keymap.control_hint(Section::Dialog, Action::Confirm),
                        keymap.control_hint(Section::Dialog, Action::Cancel),
                    ),
                    theme.dim,
                )),
            ];
            (" Move to a node ", lines)
        }
        Confirm::Bulk { action, ids } => {
            let verb = match action {
                Action::StartStop => "Start or stop".to_string(),
                other => {
                    let v = other.verb().replace('-', " ");
                    let mut c = v.chars();
                    c.next()
                        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
                }
            };
            let lines = vec![
                Line::from(Span::styled(
                    format!("{verb} {} marked sessions?", ids.len()),
                    theme.title,
                )),
                Line::from(Span::styled(listing(ids), theme.text)),
                Line::from(Span::styled(
                    "One request per session; the pool staggers them through its connect rate limit.",
                    theme.text,
                )),
                Line::default(),
                Line::from(Span::styled(
                    format!(
                        "{} sends · {} cancels (rows stay marked)",
                        keymap.hint(Section::Dialog, Action::Confirm),
                        keymap.hint(Section::Dialog, Action::Cancel),
                    ),
                    theme.dim,
                )),
            ];
            (" Bulk action ", lines)
        }
        // Drawn by `view/pair_code.rs`.
        Confirm::PairPhone { .. } | Confirm::PairCode { .. } => return,
    };
    dialog(frame, area, model, title, lines);
}
