//! Drawing the pairing-by-code dialogs: the phone number being typed, then the code, spaced
//! out and large enough to read aloud, with its countdown.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::super::fmt;
use super::super::keymap::{Action, Section};
use super::super::model::{Confirm, Model};
use super::widgets::{dialog, text_field};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, confirm: &Confirm, now: Instant) {
    let theme = model.theme();
    let keymap = &model.settings().keymap;
    let confirm_key = keymap.control_hint(Section::Dialog, Action::Confirm);
    let cancel_key = keymap.control_hint(Section::Dialog, Action::Cancel);
    let (title, lines) = match confirm {
        Confirm::PairPhone { id, typed } => {
            let lines = vec![
                Line::from(Span::styled(
                    format!("Pair {id} with a phone number?"),
                    theme.title,
                )),
                Line::from(Span::styled(
                    "The phone enters an 8-character code in Linked devices › Link with phone number.",
                    theme.text,
                )),
                Line::default(),
                text_field(model, "Phone (with country code): ", typed),
                Line::from(Span::styled(
                    format!("{confirm_key} asks for the code · {cancel_key} cancels"),
                    theme.dim,
                )),
            ];
            (" Pair by phone number ", lines)
        }
        Confirm::PairCode {
            id,
            code,
            expires_at,
        } => {
            let spaced: String = code
                .shown()
                .chars()
                .map(|c| format!("{c} "))
                .collect::<String>()
                .trim_end()
                .to_string();
            let left = if *expires_at > now {
                format!("valid for {}", fmt::countdown(*expires_at, now))
            } else {
                "expired: ask for a new code".to_string()
            };
            let lines = vec![
                Line::from(Span::styled(format!("Pairing code for {id}"), theme.title)),
                Line::default(),
                Line::from(Span::styled(format!("    {spaced}"), theme.key)),
                Line::default(),
                Line::from(Span::styled(left, theme.text)),
                Line::from(Span::styled(
                    "Enter it on the phone: Linked devices › Link with phone number.",
                    theme.text,
                )),
                Line::from(Span::styled(
                    format!("{confirm_key} or {cancel_key} closes"),
                    theme.dim,
                )),
            ];
            (" Pairing code ", lines)
        }
        _ => return,
    };
    dialog(frame, area, model, title, lines);
}
