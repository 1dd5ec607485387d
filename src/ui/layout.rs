//! Where each pane of the console goes for a terminal size: shared by the views (to draw)
//! and by `update` (mouse hits, page sizes), so neither reaches into the other.

use ratatui::layout::{Constraint, Layout, Rect};

use super::model::{Model, Pane};

/// Below this the console only asks for a bigger terminal.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 12;
/// From this width the detail pane sits beside the table and logs, full height.
pub const WIDE: u16 = 120;

/// Where each pane goes. A pane with zero height or width is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub header: Rect,
    pub table: Rect,
    pub detail: Rect,
    pub logs: Rect,
    pub footer: Rect,
}

/// The layout for a terminal of `area`: header (3 rows; 4 with the node list when
/// clustered), body, footer (1 row). Wide
/// terminals put the detail pane on the right at full body height (room for a QR), the table
/// above the logs on the left; narrow ones put the table on top and detail beside logs below.
/// The focused logs pane grows.
pub fn layout(area: Rect, model: &Model) -> Areas {
    let header_rows = if model.nodes.is_empty() { 3 } else { 4 };
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(header_rows),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let logs_focused = model.focus == Pane::Logs;
    let (table, detail, logs) = if area.width >= WIDE {
        let [left, detail] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(body);
        let (t, l) = if logs_focused { (2, 3) } else { (3, 2) };
        let [table, logs] =
            Layout::vertical([Constraint::Fill(t), Constraint::Fill(l)]).areas(left);
        (table, detail, logs)
    } else {
        let table_share = if logs_focused { 35 } else { 48 };
        let [table, bottom] = Layout::vertical([
            Constraint::Percentage(table_share),
            Constraint::Percentage(100 - table_share),
        ])
        .areas(body);
        if logs_focused {
            (table, Rect::default(), bottom)
        } else {
            let [detail, logs] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(bottom);
            (table, detail, logs)
        }
    };
    Areas {
        header,
        table,
        detail,
        logs,
        footer,
    }
}

/// Data rows that fit in a table pane of `area` (borders and the header row excluded).
pub fn visible_rows(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(3))
}
