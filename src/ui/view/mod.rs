//! The console's views: pure functions of the model and `now` that draw one frame. Styles come
//! only from the theme; times are shown relative to `now`, so frames are reproducible.

pub mod compose;
pub mod confirm;
pub mod detail;
pub mod footer;
pub mod header;
pub mod help;
pub mod logs;
pub mod messages;
pub mod pair_code;
pub mod qr;
pub mod table;
pub mod widgets;

use std::time::Instant;

use ratatui::Frame;
use ratatui::widgets::Paragraph;

use super::layout::{MIN_HEIGHT, MIN_WIDTH, layout};
use super::model::{Confirm, Mode, Model};

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
        Mode::Confirm(pairing @ (Confirm::PairPhone { .. } | Confirm::PairCode { .. })) => {
            pair_code::draw(frame, area, model, pairing, now)
        }
        Mode::Confirm(confirm) => confirm::draw(frame, area, model, confirm),
        Mode::Compose(c) => compose::draw(frame, area, model, c),
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
