//! The help overlay, built from the keymap (so rebinding a key changes the help), plus the
//! fixed keys of dialogs.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::super::keymap::Section;
use super::super::model::Model;
use super::{centered, pane};

const DIALOG_KEYS: [(&str, &str); 5] = [
    (
        "filter",
        "type the filter; enter keeps it, esc restores the previous one, ctrl-u clears",
    ),
    (
        "wipe",
        "type the session id (or the count); tab: backup first; enter wipes",
    ),
    (
        "bulk",
        "y sends one request per marked row (staggered by the pool); n cancels",
    ),
    ("QR", "esc or enter closes the full-screen QR"),
    ("help", "up/down scroll; esc or ? closes"),
];

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, scroll: u16) {
    let theme = model.theme();
    let keymap = &model.settings().keymap;
    let mut lines: Vec<Line> = Vec::new();
    for section in [Section::Table, Section::Logs, Section::Global] {
        lines.push(Line::from(Span::styled(section.title(), theme.title)));
        for b in keymap.section(section) {
            let keys = if b.keys.is_empty() {
                "(unbound)".to_string()
            } else {
                b.keys
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<14} "), theme.key),
                Span::styled(b.desc.clone(), theme.text),
            ]));
        }
        lines.push(Line::default());
    }
    lines.push(Line::from(Span::styled("Dialogs", theme.title)));
    for (what, how) in DIALOG_KEYS {
        lines.push(Line::from(vec![
            Span::styled(format!("  {what:<14} "), theme.key),
            Span::styled(how, theme.text),
        ]));
    }
    if model.settings().read_only {
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            "read-only mode: reconnect, reset, wipe, pair, disconnect and start/stop are disabled",
            theme.message,
        )));
    }
    let popup = centered(area, 96, area.height.saturating_sub(2));
    let block = pane(model, Line::from(" Help · esc closes "), true);
    let inner = block.inner(popup);
    let max_scroll = (lines.len() as u16).saturating_sub(inner.height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((scroll.min(max_scroll), 0)),
        popup,
    );
}
