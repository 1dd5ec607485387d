//! The help overlay, built from the keymap (so rebinding a key changes the help), dialog keys
//! included.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::super::keymap::{Action, Section};
use super::super::model::Model;
use super::widgets::{centered, pane};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, scroll: u16) {
    let theme = model.theme();
    let keymap = &model.settings().keymap;
    let mut lines: Vec<Line> = Vec::new();
    for section in [
        Section::Table,
        Section::Logs,
        Section::Global,
        Section::Dialog,
    ] {
        lines.push(Line::from(Span::styled(section.title(), theme.title)));
        for b in keymap
            .section(section)
            .iter()
            .filter(|b| model.offers(b.action))
        {
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
    if model.settings().read_only {
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            format!("read-only mode: {} are disabled", operator_labels(model)),
            theme.message,
        )));
    }
    let popup = centered(area, 96, area.height.saturating_sub(2));
    let close = keymap.control_hint(Section::Dialog, Action::Cancel);
    let block = pane(model, Line::from(format!(" Help · {close} closes ")), true);
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

/// The table's operator actions, as the footer names them: `reconnect, reset ... and start/stop`.
fn operator_labels(model: &Model) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for b in model.settings().keymap.section(Section::Table) {
        if b.action.is_operator() && model.offers(b.action) && !labels.contains(&b.action.label()) {
            labels.push(b.action.label());
        }
    }
    match labels.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => "operator actions".to_string(),
    }
}
