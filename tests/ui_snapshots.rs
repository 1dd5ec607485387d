//! Screens of the console drawn on a `TestBackend` and compared with insta snapshots. Every
//! time on screen is relative to a fixed `now`, so the frames are reproducible.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::time::Duration;

use crossterm::event::KeyCode;
use ratatui::style::Color;
use ui_support::Step::{Select, Send, Type};
use ui_support::*;
use wasp::session::status::StateName;
use wasp::ui::model::Mode;
use wasp::ui::qr::{self, QrMatrix};
use wasp::ui::{Msg, Settings, update};

#[test]
fn fleet_at_80x24() {
    let now = t0();
    let model = fleet(60, now, settings(), 80, 24);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn fleet_at_160x48() {
    let now = t0();
    let mut model = fleet(60, now, settings(), 160, 48);
    model.select("s0011");
    update(&mut model, Msg::Tick, now);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn session_in_backoff_counts_down() {
    let now = t0();
    let mut model = fleet(60, now, settings(), 80, 24);
    model.select("s0001");
    update(&mut model, Msg::Tick, now);
    let s = model.status("s0001").unwrap();
    assert_eq!(s.state(), StateName::Backoff);
    let retry_in = s.retry_at().unwrap() - now;
    let screen = draw(&model, now).backend().to_string();
    insta::assert_snapshot!(screen);
    assert!(screen.contains(&format!("retry in {}s", retry_in.as_secs())));

    // Five seconds later the same frame shows five seconds less.
    let later = now + Duration::from_secs(5);
    update(&mut model, Msg::Tick, later);
    let screen = draw(&model, later).backend().to_string();
    assert!(
        screen.contains(&format!("retry in {}s", retry_in.as_secs() - 5)),
        "{screen}"
    );
}

#[test]
fn qr_inline_in_the_detail_pane_at_160x48() {
    let now = t0();
    let mut model = fleet(60, now, settings(), 160, 48);
    model.select("s0002");
    update(&mut model, Msg::Tick, now);
    assert_eq!(model.status("s0002").unwrap().state(), StateName::Pairing);
    let terminal = draw(&model, now);
    insta::assert_snapshot!(terminal.backend());

    // The code on screen is the session's QR text, module for module, black on white.
    let text = model.status("s0002").unwrap().qr().unwrap().text.as_str();
    let matrix = QrMatrix::encode(text).unwrap();
    let fit = qr::fit(matrix.width(), 62, 40, false, false).unwrap();
    let expected = qr::render(&matrix, fit, false);
    let buffer = terminal.backend().buffer();
    let screen: Vec<String> = buffer
        .content()
        .chunks(160)
        .map(|row| row.iter().map(|c| c.symbol()).collect())
        .collect();
    let (top, left) = screen
        .iter()
        .enumerate()
        .find_map(|(y, line)| {
            line.find(&expected[2])
                .map(|x| (y - 2, line[..x].chars().count()))
        })
        .expect("the QR is on screen");
    for (dy, line) in expected.iter().enumerate() {
        for (dx, ch) in line.chars().enumerate() {
            let cell = &buffer[((left + dx) as u16, (top + dy) as u16)];
            assert_eq!(cell.symbol(), ch.to_string());
            assert_eq!((cell.fg, cell.bg), (Color::Black, Color::White));
        }
    }
}

#[test]
fn qr_full_screen_at_80x24_is_compact() {
    let now = t0();
    let steps = vec![Select("s0002"), Send(code(KeyCode::Enter))];
    let model = fleet_after(60, now, settings(), (80, 24), steps);
    assert_eq!(model.mode(), &Mode::Qr);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn qr_at_80x24_inline_is_a_hint_to_go_full_screen() {
    let now = t0();
    let mut model = fleet(60, now, settings(), 80, 24);
    model.select("s0002");
    update(&mut model, Msg::Tick, now);
    let screen = draw(&model, now).backend().to_string();
    assert!(screen.contains("enter: full-screen QR to scan"), "{screen}");
    assert!(screen.contains("(inline it needs 57x29 cells)"), "{screen}");
}

#[test]
fn qr_in_ascii_full_screen() {
    let now = t0();
    let ascii = Settings {
        ascii: true,
        ..settings()
    };
    let steps = vec![Select("s0002"), Send(code(KeyCode::Enter))];
    let model = fleet_after(60, now, ascii, (120, 64), steps);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn help_overlay() {
    let now = t0();
    let model = fleet_after(60, now, settings(), (100, 52), vec![Send(key('?'))]);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn wipe_confirmation() {
    let now = t0();
    let steps = vec![Select("s0007"), Send(key('W')), Type("s00")];
    let model = fleet_after(60, now, settings(), (80, 24), steps);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn bulk_confirmation_shows_the_count() {
    let now = t0();
    let model = fleet_after(60, now, settings(), (80, 24), vec![Type("     r")]);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn filtered_view() {
    let now = t0();
    let steps = vec![Type("/state=backoff"), Send(code(KeyCode::Enter))];
    let model = fleet_after(60, now, settings(), (80, 24), steps);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn filter_being_typed_with_a_typo() {
    let now = t0();
    let steps = vec![Type("/conflicts>0 state=bakoff")];
    let model = fleet_after(60, now, settings(), (80, 24), steps);
    insta::assert_snapshot!(draw(&model, now).backend());
}

/// The mono theme: no colour anywhere, state still readable by glyph; the snapshot includes
/// the style runs (bold, reversed, dim).
#[test]
fn mono_theme() {
    let now = t0();
    let model = fleet(60, now, mono(), 80, 24);
    let terminal = draw(&model, now);
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert!(
            matches!(cell.fg, Color::Reset) && matches!(cell.bg, Color::Reset),
            "coloured cell {cell:?}"
        );
    }
    insta::assert_snapshot!(format!("{buffer:?}"));
}

#[test]
fn ascii_fleet_at_80x24() {
    let now = t0();
    let ascii = Settings {
        ascii: true,
        ..settings()
    };
    let model = fleet(60, now, ascii, 80, 24);
    let screen = draw(&model, now).backend().to_string();
    assert!(screen.is_ascii(), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn logs_focused_and_filtered() {
    let now = t0();
    let model = fleet_after(60, now, settings(), (80, 24), vec![Type("lvv")]);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn read_only_refuses_with_a_message() {
    let now = t0();
    let read_only = Settings {
        read_only: true,
        ..settings()
    };
    let mut model = fleet(60, now, read_only, 80, 24);
    let requests = update(&mut model, key('r'), now);
    assert!(requests.is_empty());
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn coloured_states_in_the_dark_theme() {
    let now = t0();
    let model = fleet(60, now, settings(), 80, 24);
    let terminal = draw(&model, now);
    let buffer = terminal.backend().buffer();
    // The first data row is the first failed session: its state cell is red and bold.
    let row = 5;
    let cell = &buffer[(4, row)];
    assert_eq!(cell.symbol(), "✗");
    assert_eq!(cell.fg, Color::Red);
}

#[test]
fn clustered_fleet_lists_the_nodes_with_heartbeats() {
    let now = t0();
    let mut model = fleet(60, now, settings(), 120, 30);
    cluster(&mut model, now);
    insta::assert_snapshot!(draw(&model, now).backend());
}

#[test]
fn move_dialog_asks_for_the_node() {
    let now = t0();
    let mut model = fleet(60, now, settings(), 80, 24);
    cluster(&mut model, now);
    model.select("s0007");
    update(&mut model, key('M'), now);
    type_text(&mut model, "node-", now);
    insta::assert_snapshot!(draw(&model, now).backend());
}
