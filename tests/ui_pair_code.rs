//! The console's pairing by phone number without a terminal: `P` asks for the number, Enter
//! sends one `Order::PairCode`, the pool's answer opens a dialog that shows the code with its
//! countdown, and read-only consoles refuse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::ui_support::*;
use crossterm::event::KeyCode;
use wasp::session::status::StateName;
use wasp::ui::model::{Confirm, Mode};
use wasp::ui::{LogRing, Model, Msg, Order, PoolUpdate, Request, Settings, update};
use wasp::wa::pair_code::LinkCode;

fn pairing_model(settings: Settings) -> (Model, std::time::Instant) {
    let now = t0();
    let mut model = Model::new(settings, LogRing::new(100));
    update(&mut model, Msg::Resize(80, 24), now);
    let batch = vec![
        session("new-1", StateName::Pairing, now),
        session("on-1", StateName::Online, now),
    ];
    update(&mut model, Msg::Statuses(batch), now);
    model.select("new-1");
    (model, now)
}

fn flash_of(model: &Model) -> String {
    model.flash().map(|f| f.text.clone()).unwrap_or_default()
}

fn screen(model: &Model, now: std::time::Instant) -> String {
    let terminal = draw(model, now);
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

#[test]
fn p_asks_for_the_number_and_sends_one_code_request() {
    let (mut model, now) = pairing_model(settings());
    assert!(update(&mut model, key('P'), now).is_empty());
    assert!(matches!(model.mode(), Mode::Confirm(Confirm::PairPhone { id, .. }) if id == "new-1"));
    assert!(screen(&model, now).contains("Phone (with country code)"));

    // A number the server would refuse stays in the dialog with the reason.
    assert!(type_text(&mut model, "0123", now).is_empty());
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert!(
        flash_of(&model).contains("no leading 0"),
        "{}",
        flash_of(&model)
    );
    assert!(matches!(
        model.mode(),
        Mode::Confirm(Confirm::PairPhone { .. })
    ));

    for _ in 0..4 {
        update(&mut model, code(KeyCode::Backspace), now);
    }
    // Keys bound elsewhere (`q`) would be text here; a phone number is digits.
    type_text(&mut model, "+15551234567", now);
    let sent = update(&mut model, code(KeyCode::Enter), now);
    assert_eq!(
        sent,
        vec![Request {
            session: "new-1".into(),
            order: Order::PairCode {
                phone: "+15551234567".into(),
            },
        }]
    );
    assert_eq!(*model.mode(), Mode::Normal);

    // The pool's answer: the code, spaced out, with its countdown, until Esc.
    let code_text = LinkCode::from_bytes([1, 2, 3, 4, 5]);
    let shown = code_text.shown();
    update(
        &mut model,
        Msg::Pool(PoolUpdate::PairCode {
            session: "new-1".into(),
            code: code_text,
            expires_at: now + Duration::from_secs(150),
        }),
        now,
    );
    let text = screen(&model, now);
    let spaced: String = shown.chars().map(|c| format!("{c} ")).collect();
    assert!(text.contains(spaced.trim_end()), "{text}");
    assert!(text.contains("valid for 2m30s"), "{text}");
    let later = screen(&model, now + Duration::from_secs(151));
    assert!(later.contains("expired"), "{later}");
    assert!(update(&mut model, code(KeyCode::Esc), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(!screen(&model, now).contains(spaced.trim_end()));
}

#[test]
fn the_dialog_cancels_and_read_only_consoles_refuse() {
    let (mut model, now) = pairing_model(settings());
    update(&mut model, key('P'), now);
    type_text(&mut model, "1555", now);
    assert!(update(&mut model, code(KeyCode::Esc), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(flash_of(&model).contains("cancelled"));

    let (mut model, now) = pairing_model(Settings {
        read_only: true,
        ..settings()
    });
    assert!(update(&mut model, key('P'), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(
        flash_of(&model).contains("read-only"),
        "{}",
        flash_of(&model)
    );
}
