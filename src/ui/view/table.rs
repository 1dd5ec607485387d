//! The session table: one row per visible session (only the rows on screen are built, so 5,000
//! sessions cost what 30 do), columns chosen by the width available.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, HighlightSpacing, Row, Table, TableState};

use super::super::fmt;
use super::super::keymap::{Action, Section};
use super::super::layout::visible_rows;
use super::super::model::{Model, Pane, last_event};
use super::super::theme::state_glyph;
use super::widgets::{clip, pane};
use crate::session::status::{StateName, Status};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    Mark,
    State,
    Id,
    Label,
    Phone,
    Uptime,
    Timer,
    Attempt,
    Conflicts,
    Cause,
    Age,
    /// Clustered only: the node that runs the session.
    Node,
    /// Messages in the outbox, and when the send limits let the next go.
    Queued,
    NextSend,
    /// Over the last hour: server acks, delivered, received, delivered over sent.
    Sent,
    Delivered,
    Received,
    DeliveryPct,
}

impl Col {
    fn title(self) -> &'static str {
        match self {
            Col::Mark => "",
            Col::State => "state",
            Col::Id => "id",
            Col::Label => "label",
            Col::Phone => "phone",
            Col::Uptime => "uptime",
            Col::Timer => "timer",
            Col::Attempt => "try",
            Col::Conflicts => "cf1h",
            Col::Cause => "last cause",
            Col::Age => "event",
            Col::Node => "node",
            Col::Queued => "queue",
            Col::NextSend => "next",
            Col::Sent => "sent",
            Col::Delivered => "dlvd",
            Col::Received => "recv",
            Col::DeliveryPct => "dlv%",
        }
    }
}

/// The message columns by priority, each placed after its neighbour.
const MESSAGE_COLS: [(Col, u16, Col); 6] = [
    (Col::Queued, 5, Col::Age),
    (Col::DeliveryPct, 5, Col::Queued),
    (Col::Sent, 5, Col::Queued),
    (Col::Delivered, 5, Col::Sent),
    (Col::Received, 5, Col::Delivered),
    (Col::NextSend, 5, Col::Queued),
];

/// Columns and widths for an inner width; optional columns join as width allows. `node`:
/// the owner column's width when clustered. `traffic`: some row has messages, so the message
/// columns come, before the last cause, label and phone (a fleet without messages has none).
fn columns(width: u16, id_width: u16, node: Option<u16>, traffic: bool) -> Vec<(Col, u16)> {
    // One column goes to the selection marker.
    let width = width.saturating_sub(1);
    let mut cols = vec![
        (Col::Mark, 1),
        (Col::State, 13),
        (Col::Id, id_width.clamp(4, 16)),
        (Col::Uptime, 6),
        (Col::Timer, 6),
        (Col::Attempt, 5),
        (Col::Conflicts, 4),
        (Col::Age, 6),
    ];
    let used = |cols: &[(Col, u16)]| cols.iter().map(|c| c.1 + 1).sum::<u16>();
    // Optional columns by priority, each placed after its neighbour.
    // Clustered, the owner comes first (after the id), when it fits.
    let node = node.map(|w| (Col::Node, w.clamp(4, 12), Col::Id));
    let others = [
        (Col::Cause, 14, Col::Conflicts),
        (Col::Label, 18, Col::Id),
        (Col::Phone, 13, Col::Label),
    ];
    let optional: Vec<(Col, u16, Col)> = if traffic {
        MESSAGE_COLS.into_iter().chain(others).collect()
    } else {
        others.to_vec()
    };
    for (col, w, after) in node.into_iter().chain(optional) {
        if used(&cols) + w < width {
            let at = cols
                .iter()
                .position(|c| c.0 == after)
                .or_else(|| cols.iter().position(|c| c.0 == Col::Id))
                .map_or(cols.len(), |i| i + 1);
            cols.insert(at, (col, w));
        }
    }
    // The last-cause column takes what is left.
    let spare = width.saturating_sub(used(&cols));
    if let Some(c) = cols.iter_mut().find(|c| c.0 == Col::Cause) {
        c.1 += spare.min(16);
    }
    cols
}

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, now: Instant) {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let (sort, desc) = model.sort();
    let mut title = vec![Span::raw(" Sessions ")];
    let shown = model.rows().len();
    let total = model.len();
    title.push(Span::styled(
        if shown == total {
            format!("{total} ")
        } else {
            format!("{shown}/{total} ")
        },
        theme.text,
    ));
    let arrow = match (desc, ascii) {
        (false, false) => "↑",
        (true, false) => "↓",
        (false, true) => "^",
        (true, true) => "v",
    };
    title.push(Span::styled(
        format!("· sort {} {arrow} ", sort.name()),
        theme.dim,
    ));
    if !model.filter_text().is_empty() {
        title.push(Span::styled(
            format!("· filter {} ", model.filter_text()),
            theme.message,
        ));
    }
    let block = pane(model, Line::from(title), model.focus() == Pane::Table);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let page = visible_rows(area);
    let offset = model.offset().min(shown.saturating_sub(1));
    let ids = &model.rows()[offset..(offset + page).min(shown)];
    let id_width = ids.iter().map(|id| id.chars().count()).max().unwrap_or(4) as u16;
    let node_width = ids
        .iter()
        .filter_map(|id| model.status(id))
        .filter_map(|s| s.owner.as_ref())
        .map(|o| o.chars().count() as u16)
        .max();
    let traffic = ids
        .iter()
        .filter_map(|id| model.status(id))
        .any(|s| model.has_traffic(s));
    let cols = columns(inner.width, id_width, node_width, traffic);

    let header = Row::new(cols.iter().map(|(c, _)| Cell::from(c.title()))).style(theme.dim);
    let rows = ids.iter().filter_map(|id| model.status(id)).map(|s| {
        let marked = model.marks().contains(&s.id);
        let cells = cols
            .iter()
            .map(|(c, w)| cell(*c, *w, s, marked, model, now));
        let row = Row::new(cells);
        if marked { row.style(theme.marked) } else { row }
    });
    let widths = cols.iter().map(|(_, w)| Constraint::Length(*w));
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme.selected)
        .highlight_symbol(if ascii { ">" } else { "▶" })
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default()
        .with_selected(model.selected_index().and_then(|i| i.checked_sub(offset)));
    frame.render_stateful_widget(table, inner, &mut state);
    if shown == 0 {
        let text = if total == 0 {
            "no sessions yet".to_string()
        } else {
            let clear = model
                .settings()
                .keymap
                .hint(Section::Table, Action::ClearFilter);
            format!("no session matches the filter ({clear} clears it)")
        };
        let at = Rect::new(inner.x + 1, inner.y + 1, inner.width.saturating_sub(1), 1);
        frame.render_widget(Span::styled(text, theme.dim), at);
    }
}

fn cell<'a>(
    col: Col,
    width: u16,
    s: &'a Status,
    marked: bool,
    model: &Model,
    now: Instant,
) -> Cell<'a> {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let w = usize::from(width);
    match col {
        Col::Mark => Cell::from(if marked { "+" } else { " " }),
        Col::State => {
            // A degraded session (its end-to-end probe did not arrive) carries a marker.
            let marker = match (s.outbox.degraded, ascii) {
                (false, _) => "",
                (true, false) => " \u{26a0}",
                (true, true) => " !",
            };
            Cell::from(Span::styled(
                format!(
                    "{} {}{marker}",
                    state_glyph(s.state(), ascii),
                    s.state().as_str()
                ),
                theme.state(s.state()),
            ))
        }
        Col::Id => Cell::from(clip(&s.id, w, ascii)),
        Col::Label => Cell::from(clip(&s.label, w, ascii)),
        Col::Node => Cell::from(clip(s.owner.as_deref().unwrap_or("-"), w, ascii)),
        Col::Phone => Cell::from(
            s.account
                .phone
                .as_deref()
                .map_or_else(String::new, |p| clip(p, w, ascii)),
        ),
        Col::Uptime => Cell::from(right(&fmt::percent(s.uptime_now(now)), w)),
        Col::Timer => match timer(s, now) {
            Some(t) => Cell::from(Span::styled(right(&t, w), theme.state(s.state()))),
            None => Cell::from(right("-", w)).style(theme.dim),
        },
        Col::Attempt => {
            if s.attempt == 0 {
                Cell::from(right("-", w)).style(theme.dim)
            } else if s.max_attempts > 0 {
                Cell::from(right(&format!("{}/{}", s.attempt, s.max_attempts), w))
            } else {
                Cell::from(right(&s.attempt.to_string(), w))
            }
        }
        Col::Conflicts => {
            let style = if s.conflicts_1h > 0 {
                theme.state(StateName::Conflict)
            } else {
                Style::default()
            };
            Cell::from(right(&s.conflicts_1h.to_string(), w)).style(style)
        }
        Col::Cause => Cell::from(clip(&cause(s), w, ascii)),
        Col::Age => Cell::from(right(&fmt::age(last_event(s), now), w)),
        Col::Queued => count(s.outbox.queued, w, model),
        Col::NextSend => match s.outbox.next_send_at {
            Some(at) if s.outbox.queued > 0 => Cell::from(right(&fmt::countdown(at, now), w)),
            _ => Cell::from(right("-", w)).style(theme.dim),
        },
        Col::Sent => count(s.outbox.sent_1h, w, model),
        Col::Delivered => count(s.outbox.delivered_1h, w, model),
        Col::Received => count(s.outbox.received_1h, w, model),
        Col::DeliveryPct => match s.outbox.delivery_pct() {
            Some(p) => {
                let style = if p < 90.0 {
                    theme.state(StateName::Backoff)
                } else {
                    Style::default()
                };
                Cell::from(right(&format!("{p:.0}%"), w)).style(style)
            }
            None => Cell::from(right("-", w)).style(theme.dim),
        },
    }
}

/// A count, dim when zero.
fn count<'a>(n: u32, w: usize, model: &Model) -> Cell<'a> {
    let cell = Cell::from(right(&n.to_string(), w));
    if n == 0 {
        cell.style(model.theme().dim)
    } else {
        cell
    }
}

/// The countdown that matters for the state: retry, cooldown end, QR expiry.
pub fn timer(s: &Status, now: Instant) -> Option<String> {
    match s.state() {
        StateName::Backoff => s.retry_at().map(|t| fmt::countdown(t, now)),
        StateName::Pairing => s.qr().map(|q| fmt::countdown(q.expires_at, now)),
        _ => s
            .cooldown_until()
            .filter(|t| *t > now)
            .or(s.retry_at().filter(|t| *t > now))
            .map(|t| fmt::countdown(t, now)),
    }
}

/// `conflict 440`, `closed 428`, or the reason.
pub fn cause(s: &Status) -> String {
    match (&s.last_cause, s.last_code) {
        (Some(c), Some(code)) => format!("{c} {code}"),
        (Some(c), None) => c.clone(),
        (None, Some(code)) => code.to_string(),
        (None, None) => String::new(),
    }
}

fn right(text: &str, width: usize) -> String {
    format!("{text:>width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_the_width() {
        for width in [60u16, 78, 94, 140, 200] {
            let cols = columns(width, 10, None, false);
            let used: u16 = cols.iter().map(|c| c.1 + 1).sum::<u16>() - 1;
            assert!(used <= width, "{used} > {width}");
        }
        let narrow: Vec<_> = columns(78, 10, None, false)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert!(narrow.contains(&Col::Cause) && !narrow.contains(&Col::Phone));
        let wide: Vec<_> = columns(140, 10, None, false)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert!(wide.contains(&Col::Label) && wide.contains(&Col::Phone));
        assert!(
            !wide.contains(&Col::Node),
            "the owner column is for clusters only"
        );
    }

    #[test]
    fn with_message_traffic_the_queue_and_delivery_columns_come_before_the_cause() {
        for width in [60u16, 78, 94, 140, 200] {
            let cols = columns(width, 10, None, true);
            let used: u16 = cols.iter().map(|c| c.1 + 1).sum::<u16>() - 1;
            assert!(used <= width, "{used} > {width}");
        }
        let narrow: Vec<_> = columns(78, 10, None, true)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert!(
            narrow.contains(&Col::Queued) && narrow.contains(&Col::DeliveryPct),
            "{} columns",
            narrow.len()
        );
        let wide: Vec<_> = columns(140, 10, None, true)
            .into_iter()
            .map(|c| c.0)
            .collect();
        for col in MESSAGE_COLS.map(|c| c.0) {
            assert!(wide.contains(&col), "a wide table has every message column");
        }
        let quiet: Vec<_> = columns(78, 10, None, false)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert!(!quiet.contains(&Col::Queued), "no traffic: the old layout");
    }

    #[test]
    fn clustered_the_owner_column_comes_first_when_it_fits() {
        for width in [60u16, 78, 94, 140] {
            let cols = columns(width, 10, Some(6), false);
            let used: u16 = cols.iter().map(|c| c.1 + 1).sum::<u16>() - 1;
            assert!(used <= width, "{used} > {width}");
        }
        let narrow: Vec<_> = columns(78, 10, Some(6), false)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert!(narrow.contains(&Col::Node), "{} columns", narrow.len());
        assert!(
            !columns(60, 10, Some(6), false)
                .iter()
                .any(|c| c.0 == Col::Node)
        );
    }
}
