//! Key sequences -> model changes and pool requests, without a terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::ui_support::*;
use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use wasp::session::Command;
use wasp::session::status::StateName;
use wasp::ui::model::{Confirm, Mode, Pane, SortKey};
use wasp::ui::{Action, Keymap, LogRing, Model, Msg, Order, PoolUpdate, Request, Settings, update};

/// A small model of hand-made sessions, one per state of interest, laid out at 80x24.
fn small(settings: Settings) -> (Model, std::time::Instant) {
    let now = t0();
    let mut model = Model::new(settings, LogRing::new(100));
    update(&mut model, Msg::Resize(80, 24), now);
    let batch = vec![
        session("conf-1", StateName::Conflict, now),
        session("on-1", StateName::Online, now),
        session("on-2", StateName::Online, now),
        session("stop-1", StateName::Stopped, now),
        session("back-1", StateName::Backoff, now),
    ];
    update(&mut model, Msg::Statuses(batch), now);
    (model, now)
}

/// `small`, with a user keymap file of `text` over the defaults.
fn with_keymap(text: &str) -> (Model, std::time::Instant) {
    let mut keymap = Keymap::defaults();
    keymap.overlay(text, "mine.toml").unwrap();
    small(Settings {
        keymap,
        ..settings()
    })
}

fn request(session: &str, command: Command) -> Request {
    Request::run(session, command)
}

#[test]
fn reconnect_on_a_conflict_session_sends_exactly_one_reconnect() {
    let (mut model, now) = small(settings());
    model.select("conf-1");
    let sent = update(&mut model, key('r'), now);
    assert_eq!(sent, vec![request("conf-1", Command::ReconnectNow)]);
    // Pressing again before the pool answers sends nothing more.
    let again = update(&mut model, key('r'), now + Duration::from_secs(1));
    assert!(again.is_empty(), "{again:?}");
    // Once the session's state changes, a new reconnect may be sent.
    let mut connecting = session("conf-1", StateName::Connecting, now);
    connecting.since = now + Duration::from_secs(2);
    update(
        &mut model,
        Msg::Statuses(vec![connecting]),
        now + Duration::from_secs(2),
    );
    let later = update(&mut model, key('r'), now + Duration::from_secs(3));
    assert_eq!(later, vec![request("conf-1", Command::ReconnectNow)]);
}

#[test]
fn wipe_without_the_typed_id_does_nothing() {
    let (mut model, now) = small(settings());
    model.select("on-1");
    assert!(update(&mut model, key('W'), now).is_empty());
    assert!(matches!(model.mode(), Mode::Confirm(Confirm::Wipe { .. })));
    // Enter with nothing typed, then with a wrong id: still nothing, dialog still open.
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert!(type_text(&mut model, "on-2", now).is_empty());
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert!(matches!(model.mode(), Mode::Confirm(_)));
    // Esc cancels without a request.
    assert!(update(&mut model, code(KeyCode::Esc), now).is_empty());
    assert_eq!(model.mode(), &Mode::Normal);
}

#[test]
fn wipe_with_the_typed_id_wipes_that_session_only() {
    let (mut model, now) = small(settings());
    model.select("on-1");
    update(&mut model, key('W'), now);
    type_text(&mut model, "on-1", now);
    let sent = update(&mut model, code(KeyCode::Enter), now);
    assert_eq!(
        sent,
        vec![request("on-1", Command::WipeCredentials { backup: true })]
    );
    assert_eq!(model.mode(), &Mode::Normal);

    // Tab turns the last backup off.
    model.select("on-2");
    update(&mut model, key('W'), now);
    update(&mut model, code(KeyCode::Tab), now);
    type_text(&mut model, "on-2", now);
    let sent = update(&mut model, code(KeyCode::Enter), now);
    assert_eq!(
        sent,
        vec![request("on-2", Command::WipeCredentials { backup: false })]
    );
}

#[test]
fn bulk_actions_confirm_with_the_count_and_send_one_request_per_marked_row() {
    let (mut model, now) = small(settings());
    update(&mut model, code(KeyCode::Home), now);
    let first_three: Vec<String> = model.rows()[..3].to_vec();
    for _ in 0..3 {
        update(&mut model, key(' '), now);
    }
    assert_eq!(model.marks().len(), 3);
    assert!(update(&mut model, key('r'), now).is_empty());
    match model.mode() {
        Mode::Confirm(Confirm::Bulk { action, ids }) => {
            assert_eq!(*action, Action::Run(Command::ReconnectNow));
            assert_eq!(ids.len(), 3);
        }
        other => panic!("expected the bulk confirmation, got {other:?}"),
    }
    let sent = update(&mut model, key('y'), now);
    let mut sessions: Vec<String> = sent.iter().map(|r| r.session.clone()).collect();
    sessions.sort();
    let mut expected = first_three;
    expected.sort();
    assert_eq!(sessions, expected);
    assert!(
        sent.iter()
            .all(|r| r.command() == Some(Command::ReconnectNow))
    );
    assert!(model.marks().is_empty());
}

#[test]
fn a_cancelled_bulk_action_sends_nothing_and_keeps_the_marks() {
    let (mut model, now) = small(settings());
    update(&mut model, key('a'), now);
    assert_eq!(model.marks().len(), 5);
    update(&mut model, key('d'), now);
    assert!(update(&mut model, key('n'), now).is_empty());
    assert_eq!(model.marks().len(), 5);
}

#[test]
fn bulk_wipe_asks_for_the_count() {
    let (mut model, now) = small(settings());
    update(&mut model, key('a'), now);
    update(&mut model, key('W'), now);
    type_text(&mut model, "on-1", now);
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    for _ in 0..4 {
        update(&mut model, code(KeyCode::Backspace), now);
    }
    type_text(&mut model, "5", now);
    let sent = update(&mut model, code(KeyCode::Enter), now);
    assert_eq!(sent.len(), 5);
}

#[test]
fn start_stop_starts_what_is_stopped_and_stops_what_runs() {
    let (mut model, now) = small(settings());
    model.select("stop-1");
    assert_eq!(
        update(&mut model, key('x'), now),
        vec![request("stop-1", Command::Connect)]
    );
    model.select("on-1");
    assert_eq!(
        update(&mut model, key('x'), now),
        vec![request("on-1", Command::Disconnect)]
    );
}

#[test]
fn the_other_operator_keys_map_to_their_actions() {
    let (mut model, now) = small(settings());
    model.select("back-1");
    for (k, command) in [
        ('c', Command::ResetCooldown),
        ('p', Command::Pair),
        ('d', Command::Disconnect),
    ] {
        assert_eq!(
            update(&mut model, key(k), now),
            vec![request("back-1", command)]
        );
    }
}

#[test]
fn read_only_mode_sends_nothing() {
    let read_only = Settings {
        read_only: true,
        ..settings()
    };
    let (mut model, now) = small(read_only);
    model.select("conf-1");
    for k in ['r', 'c', 'p', 'd', 'x', 'W'] {
        assert!(update(&mut model, key(k), now).is_empty(), "key {k}");
        assert_eq!(model.mode(), &Mode::Normal, "key {k}");
    }
    assert!(
        model
            .flash()
            .is_some_and(|f| f.error && f.text.contains("read-only"))
    );
}

#[test]
fn filter_by_state_and_restore_on_esc() {
    let (mut model, now) = small(settings());
    update(&mut model, key('/'), now);
    type_text(&mut model, "state=online", now);
    update(&mut model, code(KeyCode::Enter), now);
    assert_eq!(model.rows(), ["on-1", "on-2"]);
    assert_eq!(model.selected(), Some("on-1"));

    // Typing a new filter then Esc goes back to the one before.
    update(&mut model, key('/'), now);
    update(
        &mut model,
        Msg::Key(crossterm::event::KeyEvent::new(
            KeyCode::Char('u'),
            KeyModifiers::CONTROL,
        )),
        now,
    );
    type_text(&mut model, "x", now);
    assert!(model.rows().is_empty());
    update(&mut model, code(KeyCode::Esc), now);
    assert_eq!(model.rows(), ["on-1", "on-2"]);

    // Esc in the table clears it.
    update(&mut model, code(KeyCode::Esc), now);
    assert_eq!(model.rows().len(), 5);
}

#[test]
fn numeric_filters() {
    let now = t0();
    let mut model = fleet(200, now, settings(), 80, 24);
    update(&mut model, key('/'), now);
    type_text(&mut model, "conflicts>0", now);
    update(&mut model, code(KeyCode::Enter), now);
    assert!(!model.rows().is_empty());
    assert!(
        model
            .rows()
            .iter()
            .all(|id| model.status(id).unwrap().conflicts_1h > 0)
    );
}

#[test]
fn sort_cycles_and_reverses() {
    let (mut model, now) = small(settings());
    assert_eq!(model.rows()[0], "conf-1", "trouble first");
    update(&mut model, key('s'), now);
    assert_eq!(model.sort(), (SortKey::Id, false));
    assert_eq!(model.rows()[0], "back-1");
    update(&mut model, key('S'), now);
    assert_eq!(model.rows()[0], "stop-1");
}

#[test]
fn selection_follows_the_session_when_rows_reorder() {
    let (mut model, now) = small(settings());
    model.select("on-2");
    let mut failed = session("on-2", StateName::Failed, now);
    failed.since = now + Duration::from_secs(1);
    update(&mut model, Msg::Statuses(vec![failed]), now);
    assert_eq!(model.selected(), Some("on-2"));
    assert_eq!(model.rows()[0], "on-2");
}

#[test]
fn help_opens_and_closes() {
    let (mut model, now) = small(settings());
    update(&mut model, key('?'), now);
    assert!(matches!(model.mode(), Mode::Help { .. }));
    update(&mut model, code(KeyCode::Esc), now);
    assert_eq!(model.mode(), &Mode::Normal);
}

#[test]
fn quit_key_and_ctrl_c_quit() {
    let (mut model, now) = small(settings());
    update(&mut model, key('q'), now);
    assert!(model.should_quit());
    let (mut model, now) = small(settings());
    update(
        &mut model,
        Msg::Key(crossterm::event::KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL,
        )),
        now,
    );
    assert!(model.should_quit());
}

#[test]
fn a_user_keymap_changes_keys_and_help() {
    let (mut model, now) = with_keymap(
        "[[table]]\non = [\"R\"]\nrun = \"reconnect\"\ndesc = \"Reconnect (rebound)\"\n",
    );
    model.select("conf-1");
    assert!(update(&mut model, key('r'), now).is_empty());
    assert_eq!(
        update(&mut model, key('R'), now),
        vec![request("conf-1", Command::ReconnectNow)]
    );
    update(&mut model, key('?'), now);
    let screen = draw(&model, now).backend().to_string();
    assert!(screen.contains("Reconnect (rebound)"), "{screen}");
}

#[test]
fn a_user_keymap_that_moves_reconnect_and_dialog_keys_moves_every_hint() {
    let (mut model, now) = with_keymap(
        "[[table]]\non = [\"e\"]\nrun = \"reconnect\"\n\n\
         [[table]]\non = [\"P\"]\nrun = \"pair\"\n\n\
         [[dialog]]\non = [\"o\", \"f2\"]\nrun = \"confirm\"\n\n\
         [[dialog]]\non = [\"i\", \"f3\"]\nrun = \"cancel\"\n",
    );
    model.select("conf-1");
    let footer = |model: &Model| {
        let screen = draw(model, now).backend().to_string();
        screen.lines().last().unwrap_or_default().to_string()
    };
    let hints = footer(&model);
    assert!(hints.contains("e reconnect"), "{hints}");
    assert!(!hints.contains("r reconnect"), "{hints}");

    // The old key does nothing; the new one reconnects.
    assert!(update(&mut model, key('r'), now).is_empty());
    assert_eq!(
        update(&mut model, key('e'), now),
        vec![request("conf-1", Command::ReconnectNow)]
    );

    // The bulk dialog names the user's confirm and cancel keys, and only they act.
    update(&mut model, key('a'), now);
    update(&mut model, key('d'), now);
    let screen = draw(&model, now).backend().to_string();
    assert!(screen.contains("o sends · i cancels"), "{screen}");
    assert!(update(&mut model, key('y'), now).is_empty());
    assert!(matches!(model.mode(), Mode::Confirm(_)));
    assert_eq!(update(&mut model, key('o'), now).len(), 5);

    // The wipe dialog types characters, so it names the keys that type nothing.
    model.select("on-1");
    update(&mut model, key('W'), now);
    let screen = draw(&model, now).backend().to_string();
    assert!(screen.contains("f2 wipes · f3 cancels"), "{screen}");
    update(&mut model, code(KeyCode::F(3)), now);
    assert_eq!(model.mode(), &Mode::Normal);

    // The filter being typed, and a refusal that names a key.
    update(&mut model, key('/'), now);
    let hints = footer(&model);
    assert!(hints.contains("f2 keeps · f3 restores"), "{hints}");
    update(&mut model, code(KeyCode::F(3)), now);
    update(&mut model, code(KeyCode::Enter), now);
    let flash = model.flash().map(|f| f.text.clone()).unwrap_or_default();
    assert!(flash.contains("(P starts pairing)"), "{flash}");
}

#[test]
fn logs_follow_freeze_and_filters() {
    let now = t0();
    let mut model = fleet(20, now, settings(), 80, 24);
    update(&mut model, key('l'), now);
    assert_eq!(model.focus(), Pane::Logs);

    // Freeze: lines pushed afterwards do not show until thawed.
    update(&mut model, key('z'), now);
    model.ring().push(
        "12:01:00",
        tracing::Level::INFO,
        None,
        "t",
        "after the freeze",
    );
    assert!(
        !draw(&model, now)
            .backend()
            .to_string()
            .contains("after the freeze")
    );
    update(&mut model, key('z'), now);
    assert!(
        draw(&model, now)
            .backend()
            .to_string()
            .contains("after the freeze")
    );

    // Scrolling up stops following; End follows again.
    update(&mut model, key('k'), now);
    assert!(!model.logs_view().follow);
    update(&mut model, code(KeyCode::End), now);
    assert!(model.logs_view().follow);

    // Only the selected session's lines.
    update(&mut model, code(KeyCode::Esc), now);
    model.select("s0006");
    update(&mut model, key('l'), now);
    update(&mut model, key('o'), now);
    let screen = draw(&model, now).backend().to_string();
    assert!(screen.contains("stream error: conflict"), "{screen}");
    assert!(!screen.contains("keepalive answered"), "{screen}");
}

#[test]
fn a_mouse_click_selects_the_row() {
    let (mut model, now) = small(settings());
    // Header 3 rows, table border, column header: the third data row is on screen row 7.
    let click = MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 10,
        row: 7,
        modifiers: KeyModifiers::NONE,
    };
    update(&mut model, Msg::Mouse(click), now);
    assert_eq!(model.selected(), Some(model.rows()[2].as_str()));
}

#[test]
fn paging_keeps_the_selection_on_screen() {
    let now = t0();
    let mut model = fleet(300, now, settings(), 80, 24);
    for _ in 0..5 {
        update(&mut model, code(KeyCode::PageDown), now);
    }
    let index = model
        .rows()
        .iter()
        .position(|r| Some(r.as_str()) == model.selected())
        .unwrap();
    assert!(
        index >= model.offset() && index < model.offset() + 7,
        "{index} {}",
        model.offset()
    );
    let screen = draw(&model, now).backend().to_string();
    assert!(screen.contains(model.selected().unwrap()));
    update(&mut model, code(KeyCode::End), now);
    assert_eq!(model.selected(), model.rows().last().map(String::as_str));
}

fn flash_of(model: &Model) -> String {
    model.flash().map(|f| f.text.clone()).unwrap_or_default()
}

#[test]
fn move_is_refused_when_the_console_is_not_clustered() {
    let (mut model, now) = small(settings());
    model.select("on-1");
    assert!(update(&mut model, key('M'), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(
        flash_of(&model).contains("needs [cluster]"),
        "{}",
        flash_of(&model)
    );
}

#[test]
fn move_asks_for_a_live_node_and_sends_one_move() {
    let (mut model, now) = small(settings());
    cluster(&mut model, now);
    model.select("on-1");
    let owner = model.status("on-1").and_then(|s| s.owner.clone()).unwrap();
    let other = if owner == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    assert!(update(&mut model, key('M'), now).is_empty());
    assert!(matches!(model.mode(), Mode::Confirm(Confirm::Move { id, .. }) if id == "on-1"));

    // Keys that are bound elsewhere (`q`, `r`) are text in the dialog.
    assert!(type_text(&mut model, "node-q", now).is_empty());
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert!(
        flash_of(&model).contains("no live node named node-q"),
        "{}",
        flash_of(&model)
    );
    assert!(
        flash_of(&model).contains("node-a, node-b"),
        "{}",
        flash_of(&model)
    );
    assert!(matches!(model.mode(), Mode::Confirm(Confirm::Move { .. })));

    // Its own owner is not a move.
    update(&mut model, code(KeyCode::Backspace), now);
    update(&mut model, code(KeyCode::Backspace), now);
    type_text(&mut model, &owner["node".len()..], now);
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert!(
        flash_of(&model).contains("already runs on"),
        "{}",
        flash_of(&model)
    );

    update(
        &mut model,
        Msg::Key(crossterm::event::KeyEvent::new(
            KeyCode::Char('u'),
            KeyModifiers::CONTROL,
        )),
        now,
    );
    type_text(&mut model, other, now);
    let sent = update(&mut model, code(KeyCode::Enter), now);
    assert_eq!(
        sent,
        vec![Request {
            session: "on-1".into(),
            order: Order::Move { node: other.into() },
        }]
    );
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(flash_of(&model).contains(&format!("to {other} sent")));

    // The pool's answer is shown.
    update(
        &mut model,
        Msg::Pool(PoolUpdate::Answered(format!(
            "on-1: move to {other} accepted"
        ))),
        now,
    );
    assert!(flash_of(&model).contains("accepted"));
}

#[test]
fn move_dialog_cancels_and_read_only_refuses() {
    let (mut model, now) = small(settings());
    cluster(&mut model, now);
    model.select("on-2");
    update(&mut model, key('M'), now);
    type_text(&mut model, "node-b", now);
    assert!(update(&mut model, code(KeyCode::Esc), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(flash_of(&model).contains("move cancelled"));

    let (mut model, now) = small(Settings {
        read_only: true,
        ..settings()
    });
    cluster(&mut model, now);
    model.select("on-2");
    assert!(update(&mut model, key('M'), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(flash_of(&model).contains("read-only"));
}
