//! Building blocks every view uses: the themed pane border, centring and clipping text.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::super::model::Model;

const ASCII_BORDER: border::Set<'static> = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// A bordered pane with the theme's border (brighter when focused) and the ASCII border set
/// in ASCII mode.
pub(crate) fn pane<'a>(model: &Model, title: Line<'a>, focused: bool) -> Block<'a> {
    let theme = model.theme();
    let mut block = Block::bordered()
        .title(title)
        .title_style(theme.title)
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        })
        .style(theme.text);
    if model.settings().ascii {
        block = block.border_set(ASCII_BORDER);
    }
    block
}

/// A dialog: `lines` in a focused pane titled `title`, centred over whatever is below.
pub(crate) fn dialog(frame: &mut Frame, area: Rect, model: &Model, title: &str, lines: Vec<Line>) {
    let popup = centered(area, 72, lines.len() as u16 + 3);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane(model, Line::from(title), true))
            .wrap(Wrap { trim: false }),
        popup,
    );
}

/// The text cursor after what is being typed.
pub(crate) fn cursor(model: &Model) -> &'static str {
    if model.settings().ascii { "_" } else { "▏" }
}

/// A dialog's text field: its label, then what is typed so far and the cursor.
pub(crate) fn text_field<'a>(model: &Model, label: impl Into<String>, typed: &str) -> Line<'a> {
    let theme = model.theme();
    Line::from(vec![
        Span::styled(label.into(), theme.text),
        Span::styled(format!("{typed}{}", cursor(model)), theme.key),
    ])
}

/// A session as a dialog names it: its id, and its label in parentheses when it has one.
pub(crate) fn named(model: &Model, id: &str) -> String {
    let label = model
        .status(id)
        .map(|s| s.label.clone())
        .filter(|l| !l.is_empty() && l != id)
        .map_or_else(String::new, |l| format!(" ({l})"));
    format!("{id}{label}")
}

/// A rectangle of at most `w` x `h` centred in `area`.
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// Cuts `text` to `width` characters, ending with `…` (or `~` in ASCII) when cut.
pub(crate) fn clip(text: &str, width: usize, ascii: bool) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push(if ascii { '~' } else { '…' });
    out
}
