//! Drawing the pairing QR: inline in the detail pane when it fits with square modules, and
//! full screen (Enter), which falls back to compact sextants when half blocks cannot fit.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::super::fmt;
use super::super::keymap::{Action, Section};
use super::super::model::Model;
use super::super::qr::{self as code, QrFit, QrMatrix, QrStyle};
use super::widgets::clip;

/// Draws the selected session's QR centred at the top of `room`, if it fits; returns the rows
/// it took.
pub fn draw_inline(frame: &mut Frame, room: Rect, model: &Model) -> Option<u16> {
    let matrix = model.qr_cache()?.matrix.as_ref().ok()?;
    let fit = code::fit(
        matrix.width(),
        room.width,
        room.height,
        model.settings().ascii,
        false,
    )?;
    let at = Rect::new(
        room.x + (room.width - fit.cols) / 2,
        room.y,
        fit.cols,
        fit.rows,
    );
    paint(frame, at, matrix, fit, model);
    Some(fit.rows)
}

/// The full-screen QR view of the selected session.
pub fn draw_full(frame: &mut Frame, area: Rect, model: &Model, now: Instant) {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::default().style(theme.text), area);
    let Some(status) = model.selected_status() else {
        return;
    };
    let mut info = format!(" {} ", status.id);
    match &status.qr() {
        Some(q) if status.state() == crate::session::status::StateName::Pairing => {
            info.push_str(&format!(
                "· scan with WhatsApp > Linked devices · ref {}/{} · {} left ",
                q.index,
                q.count,
                fmt::countdown(q.expires_at, now)
            ))
        }
        _ => info.push_str(&format!("· {} (no QR now) ", status.state().as_str())),
    }
    let close = model
        .settings()
        .keymap
        .control_hint(Section::Dialog, Action::Cancel);
    info.push_str(&format!("· {close} closes"));
    let top = Rect::new(area.x, area.y, area.width, 1);
    frame.render_widget(
        Line::from(Span::styled(
            clip(&info, usize::from(area.width), ascii),
            theme.title,
        )),
        top,
    );
    let room = Rect::new(
        area.x,
        area.y + 1,
        area.width,
        area.height.saturating_sub(1),
    );
    let Some(matrix) = model.qr_cache().and_then(|c| c.matrix.as_ref().ok()) else {
        return;
    };
    match code::fit(matrix.width(), room.width, room.height, ascii, !ascii) {
        Some(fit) => {
            let at = Rect::new(
                room.x + (room.width - fit.cols) / 2,
                room.y + (room.height - fit.rows) / 2,
                fit.cols,
                fit.rows,
            );
            paint(frame, at, matrix, fit, model);
            if fit.style == QrStyle::Sextant && room.height > fit.rows {
                let (c, r) = code::cells(matrix.width(), QrStyle::HalfBlock, code::QUIET_MIN);
                let note = format!(
                    "compact QR: if it shows boxes or will not scan, enlarge to {c}x{}",
                    r + 1
                );
                let y = area.y + area.height - 1;
                frame.render_widget(
                    Line::from(Span::styled(
                        clip(&note, usize::from(area.width), ascii),
                        theme.dim,
                    )),
                    Rect::new(area.x, y, area.width, 1),
                );
            }
        }
        None => {
            let style = if ascii {
                QrStyle::Ascii
            } else {
                QrStyle::HalfBlock
            };
            let (c, r) = code::cells(matrix.width(), style, code::QUIET_MIN);
            let text = format!(
                "This QR (version {}, {} modules) needs {c}x{} cells; the terminal is {}x{}. Enlarge it, or fetch the QR text from GET /sessions/{}.",
                matrix.version(),
                matrix.width(),
                r + 1,
                area.width,
                area.height,
                status.id
            );
            frame.render_widget(
                Paragraph::new(text)
                    .style(theme.message)
                    .wrap(Wrap { trim: true }),
                room,
            );
        }
    }
}

/// Paints the rendered QR into `at` with the theme's QR colours.
fn paint(frame: &mut Frame, at: Rect, matrix: &QrMatrix, fit: QrFit, model: &Model) {
    let colours = model.theme().qr;
    let lines = code::render(matrix, fit, colours.invert());
    let buf = frame.buffer_mut();
    let style = colours.style();
    let solid = fit.style == QrStyle::Ascii && colours.dark.is_some() && colours.light.is_some();
    for (dy, line) in lines.iter().enumerate() {
        let y = at.y + dy as u16;
        if !solid {
            buf.set_string(at.x, y, line, style);
            continue;
        }
        // ASCII with colours: paint each module as a solid cell so `#` texture cannot confuse
        // the scanner.
        for (dx, ch) in line.chars().enumerate() {
            let x = at.x + dx as u16;
            let module = if ch == '#' {
                colours.dark
            } else {
                colours.light
            };
            let cell_style = Style::default()
                .fg(module.unwrap_or_default())
                .bg(module.unwrap_or_default());
            buf.set_string(x, y, ch.to_string(), cell_style);
        }
    }
}
