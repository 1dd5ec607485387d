//! The header: fleet totals and rates, sessions per state (glyph, name, number), and a bar of
//! the fleet split by state; clustered, a fourth line lists the live nodes with heartbeats.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::super::fmt;
use super::super::logs::time_of_day;
use super::super::model::{FleetStats, Model};
use super::super::theme::state_glyph;
use crate::session::status::StateName;

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, now: Instant) {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let stats = FleetStats::compute(model.statuses(), now);
    let width = usize::from(area.width);

    let mut top = vec![
        Span::styled(" wasp ", theme.header),
        Span::styled(format!(" {} sessions", stats.total), theme.text),
        Span::styled("  connects/min ", theme.dim),
        Span::styled(stats.connects_per_min.to_string(), theme.text),
        Span::styled("  conflicts/h ", theme.dim),
        Span::styled(stats.conflicts_per_hour.to_string(), theme.text),
        Span::styled("  uptime ", theme.dim),
        Span::styled(fmt::percent(stats.uptime_pct), theme.text),
    ];
    // The WhatsApp Web version the fleet dials with (every session shares it).
    if let Some(version) = model
        .statuses()
        .map(|s| &s.client_version)
        .find(|v| !v.is_empty())
    {
        top.push(Span::styled("  wa ", theme.dim));
        top.push(Span::styled(version.clone(), theme.text));
    }
    if !model.marks().is_empty() {
        top.push(Span::styled(
            format!("  {} marked", model.marks().len()),
            theme.marked,
        ));
    }
    if model.settings().read_only {
        top.push(Span::styled("  [read-only]", theme.message));
    }
    if let Some(down) = model.unreachable() {
        top.push(Span::styled(
            format!(
                "  daemon unreachable since {} UTC: {}",
                time_of_day(down.since),
                down.why
            ),
            theme.error,
        ));
    }

    let present: Vec<StateName> = StateName::ALL
        .into_iter()
        .filter(|s| stats.count(*s) > 0)
        .collect();
    let long = counts_line(&stats, &present, ascii, true, model);
    let counts = if long.width() <= width {
        long
    } else {
        counts_line(&stats, &present, ascii, false, model)
    };

    let mut lines = vec![Line::from(top), counts, bar(&stats, &present, width, model)];
    if !model.nodes().is_empty() {
        lines.push(nodes_line(model, width));
    }
    frame.render_widget(Paragraph::new(lines).style(theme.text), area);
}

fn counts_line(
    stats: &FleetStats,
    present: &[StateName],
    ascii: bool,
    named: bool,
    model: &Model,
) -> Line<'static> {
    let theme = model.theme();
    let mut spans = vec![Span::raw(" ")];
    for state in present {
        let style = theme.state(*state);
        let text = if named {
            format!(
                "{} {} {}",
                state_glyph(*state, ascii),
                state.as_str(),
                stats.count(*state)
            )
        } else {
            format!("{}{}", state_glyph(*state, ascii), stats.count(*state))
        };
        spans.push(Span::styled(text, style));
        spans.push(Span::raw(if named { "  " } else { " " }));
    }
    if present.is_empty() {
        spans.push(Span::styled("no sessions yet", theme.dim));
    }
    Line::from(spans)
}

/// Clustered: every live node, the sessions it holds and its heartbeat's age; this node is
/// marked. When that is wider than the header: `node-a* 30/1s` per node.
fn nodes_line(model: &Model, width: usize) -> Line<'static> {
    let theme = model.theme();
    let build = |long: bool| {
        let mut spans = vec![Span::styled(" nodes", theme.dim)];
        for (i, node) in model.nodes().iter().enumerate() {
            spans.push(Span::styled(if i == 0 { "  " } else { " · " }, theme.dim));
            let age = fmt::short(node.heartbeat_age);
            let (here, figures) = match (long, node.this) {
                (true, this) => (
                    if this { " (this)" } else { "" },
                    format!(" {} sessions, beat {age} ago", node.sessions),
                ),
                (false, this) => (
                    if this { "*" } else { "" },
                    format!(" {}/{age}", node.sessions),
                ),
            };
            spans.push(Span::styled(format!("{}{here}", node.node), theme.text));
            spans.push(Span::styled(figures, theme.dim));
        }
        Line::from(spans)
    };
    let long = build(true);
    if long.width() <= width {
        long
    } else {
        build(false)
    }
}

/// A bar `width` cells wide split by state (largest remainder; every present state gets a
/// cell). Coloured blocks, or each state's glyph when the theme says so (mono).
fn bar(stats: &FleetStats, present: &[StateName], width: usize, model: &Model) -> Line<'static> {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let width = width.saturating_sub(2);
    if stats.total == 0 || width < present.len() {
        return Line::default();
    }
    // Each present state keeps one cell; the rest is shared by count.
    let spare = width - present.len();
    let mut cells: Vec<(StateName, usize, usize)> = present
        .iter()
        .map(|s| {
            let share = stats.count(*s) * spare;
            (*s, 1 + share / stats.total, share % stats.total)
        })
        .collect();
    let used: usize = cells.iter().map(|c| c.1).sum();
    let mut by_remainder: Vec<usize> = (0..cells.len()).collect();
    by_remainder.sort_by(|a, b| cells[*b].2.cmp(&cells[*a].2));
    for i in by_remainder.into_iter().take(width.saturating_sub(used)) {
        cells[i].1 += 1;
    }
    let mut spans = vec![Span::raw(" ")];
    for (state, n, _) in cells {
        let fill = if theme.bar_glyphs {
            state_glyph(state, ascii)
        } else if ascii {
            "#"
        } else {
            "█"
        };
        spans.push(Span::styled(fill.repeat(n), theme.state(state)));
    }
    Line::from(spans)
}
