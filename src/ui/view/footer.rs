//! The footer: the filter being typed, a message, or the keys valid in the focused pane.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::super::keymap::{Action, Section};
use super::super::model::{Mode, Model};
use super::widgets::{clip, cursor};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model) {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let width = usize::from(area.width);
    if let Mode::Filter { input, error, .. } = model.mode() {
        let mut spans = vec![
            Span::styled(
                format!(
                    " {} ",
                    model.settings().keymap.hint(Section::Table, Action::Filter)
                ),
                theme.key,
            ),
            Span::styled(format!("{input}{}", cursor(model)), theme.text),
        ];
        match error {
            Some(e) => spans.push(Span::styled(format!("  {e}"), theme.error)),
            None => spans.push(Span::styled(
                format!(
                    "  {} keeps · {} restores · {} clears",
                    dialog_key(model, Action::Confirm),
                    dialog_key(model, Action::Cancel),
                    dialog_key(model, Action::ClearInput),
                ),
                theme.dim,
            )),
        }
        frame.render_widget(Line::from(spans), area);
        return;
    }
    if let Some(flash) = model.flash() {
        let style = if flash.error {
            theme.error
        } else {
            theme.message
        };
        frame.render_widget(
            Line::from(Span::styled(
                clip(&format!(" {}", flash.text), width, ascii),
                style,
            )),
            area,
        );
        return;
    }
    frame.render_widget(hints(model, width), area);
}

/// `key label` pairs of the focused pane then the global keys, as many as fit.
fn hints(model: &Model, width: usize) -> Line<'static> {
    let theme = model.theme();
    let keymap = &model.settings().keymap;
    let section = model.focus().section();
    let read_only = model.settings().read_only;
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    let help = keymap
        .key_for(section, Action::Help)
        .map(|k| format!("{k} help"));
    let reserve = help.as_ref().map_or(0, |h| h.chars().count() + 2);
    let bindings = keymap
        .section(section)
        .iter()
        .chain(keymap.section(Section::Global))
        .filter(|b| b.action.in_footer() && b.action != Action::Help && model.offers(b.action))
        .filter(|b| !(read_only && b.action.is_operator()));
    let mut shown = Vec::new();
    for b in bindings {
        let Some(key) = b.keys.first() else {
            continue;
        };
        if shown.contains(&b.action) {
            continue;
        }
        shown.push(b.action);
        let key = key.to_string();
        let label = b.action.label();
        let len = key.chars().count() + 1 + label.chars().count() + 2;
        if used + len + reserve > width {
            break;
        }
        used += len;
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::styled(format!(" {label}  "), theme.dim));
    }
    if let Some(help) = help {
        let (key, label) = help.split_once(' ').unwrap_or((&help, ""));
        spans.push(Span::styled(key.to_string(), theme.key));
        spans.push(Span::styled(format!(" {label}"), theme.dim));
    }
    if read_only && used + reserve + 12 <= width {
        spans.push(Span::styled("  read-only", theme.message));
    }
    Line::from(spans)
}

/// The key that does `action` in a dialog taking text.
fn dialog_key(model: &Model, action: Action) -> String {
    model
        .settings()
        .keymap
        .control_hint(Section::Dialog, action)
}
