//! The detail pane of the selected session: state and its countdown, liveness, counters,
//! credentials and backups, the network path (proxy or direct), the QR while pairing (when it fits), the messages (counts, the
//! newest in and out with their status), then the timeline.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::super::fmt;
use super::super::keymap::{Action, Section};
use super::super::model::Model;
use super::super::qr::{self as qrcode, QrStyle};
use super::super::theme::state_glyph;
use super::table::cause;
use super::widgets::{clip, pane};
use super::{messages, qr};
use crate::session::status::{StateName, Status};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, now: Instant) {
    let theme = model.theme();
    let Some(s) = model.selected_status() else {
        let block = pane(model, Line::from(" Detail "), false);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Span::styled("no session selected", theme.dim), inner);
        return;
    };
    let title = if s.label.is_empty() || s.label == s.id {
        format!(" {} ", s.id)
    } else {
        format!(" {} · {} ", s.id, s.label)
    };
    let block = pane(model, Line::from(title), false);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let mut lines = summary(s, model, now);
    let pairing = s.state() == StateName::Pairing && s.qr().is_some();
    if pairing {
        let used = lines.len() as u16;
        let room = Rect::new(
            inner.x,
            inner.y + used.min(inner.height),
            inner.width,
            inner.height.saturating_sub(used),
        );
        if let Some(drawn) = qr::draw_inline(frame, room, model) {
            // The QR is drawn; the timeline takes whatever is left below it.
            let below = Rect::new(
                inner.x,
                room.y + drawn,
                inner.width,
                room.height.saturating_sub(drawn),
            );
            let timeline = timeline(s, model, now, usize::from(below.height));
            frame.render_widget(Paragraph::new(timeline), below);
            frame.render_widget(Paragraph::new(lines), inner);
            return;
        }
        lines.extend(qr_hint(model, inner));
    }
    lines.push(Line::default());
    let left = usize::from(inner.height).saturating_sub(lines.len());
    // The messages take up to half of what is left (all they need when the timeline is short).
    // A session that never had a message shows no messages section.
    let wanted = if model.has_traffic(s) {
        1 + usize::from(s.outbox.queued > 0) + model.messages(&s.id).len().max(1)
    } else {
        0
    };
    let share = wanted.min((left / 2).max(left.saturating_sub(1 + s.timeline.len().max(1))));
    let width = usize::from(inner.width);
    lines.extend(messages::lines(s, model, now, width, share));
    if share > 0 && left > share + 1 {
        lines.push(Line::default());
    }
    let left = usize::from(inner.height).saturating_sub(lines.len());
    lines.extend(timeline(s, model, now, left));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Why the QR is not inline, and what to do (two lines).
fn qr_hint(model: &Model, inner: Rect) -> Vec<Line<'static>> {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let width = usize::from(inner.width);
    let enter = model
        .settings()
        .keymap
        .key_for(Section::Table, Action::ShowQr)
        .map_or_else(|| "enter".to_string(), |k| k.to_string());
    let text = match model.qr_cache().map(|c| &c.matrix) {
        Some(Ok(m)) => {
            let style = if ascii {
                QrStyle::Ascii
            } else {
                QrStyle::HalfBlock
            };
            let (c, r) = qrcode::cells(m.width(), style, qrcode::QUIET_MIN);
            vec![
                format!("{enter}: full-screen QR to scan"),
                format!("(inline it needs {c}x{r} cells)"),
            ]
        }
        Some(Err(e)) => vec![format!("QR cannot be drawn: {e}")],
        None => vec!["QR not ready".to_string()],
    };
    text.into_iter()
        .map(|t| Line::from(Span::styled(clip(&t, width, ascii), theme.message)))
        .collect()
}

/// The state, its timer, liveness, counters and credentials: short lines that fit the 42
/// columns of the detail pane on an 80x24 terminal.
fn summary(s: &Status, model: &Model, now: Instant) -> Vec<Line<'static>> {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let mut lines = Vec::new();

    let mut state = vec![
        Span::styled(
            format!("{} {}", state_glyph(s.state(), ascii), s.state().as_str()),
            theme.state(s.state()),
        ),
        Span::styled(format!(" for {}", fmt::age(s.since, now)), theme.text),
    ];
    if !s.reason.is_empty() {
        state.push(Span::styled(format!(" · {}", s.reason), theme.text));
    }
    lines.push(Line::from(state));

    let timer = match s.state() {
        StateName::Backoff => Some(format!(
            "retry in {} · attempt {}{} · {}",
            s.retry_at()
                .map_or_else(|| "?".into(), |t| fmt::countdown(t, now)),
            s.attempt,
            if s.max_attempts > 0 {
                format!("/{}", s.max_attempts)
            } else {
                String::new()
            },
            or_dash(cause(s)),
        )),
        StateName::Cooldown | StateName::Conflict | StateName::LoggedOut => s
            .cooldown_until()
            .filter(|t| *t > now)
            .map(|t| {
                format!(
                    "cooldown {} left · {}",
                    fmt::countdown(t, now),
                    or_dash(cause(s))
                )
            })
            .or_else(|| s.last_cause.as_ref().map(|_| format!("last {}", cause(s)))),
        StateName::Pairing => s.qr().map(|q| {
            format!(
                "QR ref {}/{} · {} left",
                q.index,
                q.count,
                fmt::countdown(q.expires_at, now)
            )
        }),
        StateName::Online => s
            .last_reconnect
            .map(|d| format!("last reconnect took {}", fmt::millis(d))),
        _ => s.last_cause.as_ref().map(|_| format!("last {}", cause(s))),
    };
    if let Some(text) = timer {
        lines.push(Line::from(Span::styled(text, theme.state(s.state()))));
    }
    if s.state() == StateName::Pairing {
        return lines;
    }

    let live = &s.liveness;
    lines.push(Line::from(Span::styled(
        format!(
            "ping {} · frame {} · misses {}{}",
            live.last_rtt.map_or_else(|| "-".into(), fmt::millis),
            live.last_frame_at
                .map_or_else(|| "-".into(), |t| format!("{} ago", fmt::age(t, now))),
            live.misses,
            if live.stalled { " · STALLED" } else { "" }
        ),
        theme.text,
    )));
    lines.push(Line::from(Span::styled(
        format!(
            "conflicts {} · drops {} (1h) · uptime {}",
            s.conflicts_1h,
            s.disconnects_1h,
            fmt::percent(s.uptime_now(now))
        ),
        theme.text,
    )));
    let creds = if s.account.paired {
        format!(
            "paired{} · backups {}{}",
            s.account
                .phone
                .as_ref()
                .map_or_else(String::new, |p| format!(" {p}")),
            s.backups.count,
            s.backups.last_at.map_or_else(String::new, |t| {
                format!(" ({} ago)", fmt::short(now.saturating_duration_since(t)))
            })
        )
    } else {
        format!("not paired · backups {}", s.backups.count)
    };
    lines.push(Line::from(Span::styled(creds, theme.text)));
    // The network path: the proxy (password hidden) or a direct connection.
    let path = s
        .proxy
        .as_ref()
        .map_or_else(|| "direct".to_string(), |p| format!("via {p}"));
    lines.push(Line::from(Span::styled(path, theme.text)));
    lines
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

/// The newest `max` timeline entries, newest first.
fn timeline(s: &Status, model: &Model, now: Instant, max: usize) -> Vec<Line<'static>> {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    if max == 0 {
        return Vec::new();
    }
    let mut lines = vec![Line::from(Span::styled("timeline", theme.dim))];
    for e in s.timeline.iter().rev().take(max - 1) {
        let mut text = e.cause.clone();
        if let Some(code) = e.code {
            text.push_str(&format!(" {code}"));
        }
        if !e.detail.is_empty() {
            text.push_str(&format!(" · {}", e.detail));
        }
        lines.push(Line::from(vec![
            Span::styled(format!("{:>6} ", fmt::age(e.at, now)), theme.dim),
            Span::styled(
                format!("{} {:<11} ", state_glyph(e.state, ascii), e.state.as_str()),
                theme.state(e.state),
            ),
            Span::styled(text, theme.text),
        ]));
    }
    if s.timeline.is_empty() {
        lines.push(Line::from(Span::styled(
            "  (no transitions yet)",
            theme.dim,
        )));
    }
    lines
}
