//! The console's views: pure functions of the model and `now` that draw one frame. Styles come
//! only from the theme; times are shown relative to `now`, so frames are reproducible.

pub mod confirm;
pub mod detail;
pub mod footer;
pub mod header;
pub mod help;
pub mod logs;
pub mod qr;
pub mod table;

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::border;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

use super::model::{Mode, Model, Pane};

/// Below this the console only asks for a bigger terminal.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 12;
/// From this width the detail pane sits beside the table and logs, full height.
pub const WIDE: u16 = 120;

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

/// Where each pane goes. A pane with zero height or width is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub header: Rect,
    pub table: Rect,
    pub detail: Rect,
    pub logs: Rect,
    pub footer: Rect,
}

/// The layout for a terminal of `area`: header (3 rows), body, footer (1 row). Wide
/// terminals put the detail pane on the right at full body height (room for a QR), the table
/// above the logs on the left; narrow ones put the table on top and detail beside logs below.
/// The focused logs pane grows.
pub fn layout(area: Rect, model: &Model) -> Areas {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let logs_focused = model.focus == Pane::Logs;
    if area.width >= WIDE {
        let [left, detail] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(body);
        let (t, l) = if logs_focused { (2, 3) } else { (3, 2) };
        let [table, logs] =
            Layout::vertical([Constraint::Fill(t), Constraint::Fill(l)]).areas(left);
        Areas {
            header,
            table,
            detail,
            logs,
            footer,
        }
    } else {
        let table_share = if logs_focused { 35 } else { 48 };
        let [table, bottom] = Layout::vertical([
            Constraint::Percentage(table_share),
            Constraint::Percentage(100 - table_share),
        ])
        .areas(body);
        if logs_focused {
            Areas {
                header,
                table,
                detail: Rect::default(),
                logs: bottom,
                footer,
            }
        } else {
            let [detail, logs] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(bottom);
            Areas {
                header,
                table,
                detail,
                logs,
                footer,
            }
        }
    }
}

/// Draws one whole frame.
pub fn draw(frame: &mut Frame, model: &Model, now: Instant) {
    let area = frame.area();
    let theme = model.theme();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "wasp needs at least {MIN_WIDTH}x{MIN_HEIGHT} (80x24 recommended); this terminal is {}x{}",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.text)
                .wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    if model.mode == Mode::Qr {
        qr::draw_full(frame, area, model, now);
        if model.settings().ascii {
            asciify(frame);
        }
        return;
    }
    let areas = layout(area, model);
    header::draw(frame, areas.header, model, now);
    table::draw(frame, areas.table, model, now);
    if !areas.detail.is_empty() {
        detail::draw(frame, areas.detail, model, now);
    }
    if !areas.logs.is_empty() {
        logs::draw(frame, areas.logs, model);
    }
    footer::draw(frame, areas.footer, model);
    match model.mode() {
        Mode::Help { scroll } => help::draw(frame, area, model, *scroll),
        Mode::Confirm(confirm) => confirm::draw(frame, area, model, confirm),
        Mode::Normal | Mode::Filter { .. } | Mode::Qr => {}
    }
    if model.settings().ascii {
        asciify(frame);
    }
}

/// ASCII mode's last pass: whatever text reached the frame (separators, a label typed with
/// accents), only ASCII leaves it.
fn asciify(frame: &mut Frame) {
    for cell in frame.buffer_mut().content.iter_mut() {
        let symbol = cell.symbol();
        if symbol.is_ascii() {
            continue;
        }
        let plain = match symbol {
            "·" => "-",
            "…" => "~",
            "▏" => "_",
            "—" | "–" => "-",
            _ => "?",
        };
        cell.set_symbol(plain);
    }
}

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
