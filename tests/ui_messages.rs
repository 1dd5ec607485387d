//! The console's messages without a terminal: `m` composes (number and text, Enter sends
//! `Order::Send`, bad input refused in one sentence), marked rows send one staggered test
//! message each, read-only refuses; the pane and the table's message columns as snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ui_support::*;
use wasp::session::status::{OutboxView, StateName, Status};
use wasp::ui::model::{Field, Mode};
use wasp::ui::{LogRing, MessageLine, Model, Msg, Order, PoolUpdate, Settings, Stage, Way, update};

const FRIEND: &str = "15550100001";

fn paired(id: &str, now: Instant) -> Status {
    let mut s = session(id, StateName::Online, now);
    s.account.paired = true;
    s.account.phone = Some(format!("1555000{}", &id[id.len() - 1..]));
    s
}

/// Three online sessions (two paired) and one pairing, at `w` x `h`.
fn small(settings: Settings, (w, h): (u16, u16)) -> (Model, Instant) {
    let now = t0();
    let mut model = Model::new(settings, LogRing::new(100));
    update(&mut model, Msg::Resize(w, h), now);
    let mut unpaired = session("on-3", StateName::Online, now);
    unpaired.account.paired = false;
    let batch = vec![
        paired("on-1", now),
        paired("on-2", now),
        unpaired,
        session("pair-1", StateName::Pairing, now),
    ];
    update(&mut model, Msg::Statuses(batch), now);
    (model, now)
}

fn refusal(model: &Model) -> String {
    let flash = model.flash().expect("a message in the footer");
    assert!(flash.error, "{} is not a refusal", flash.text);
    flash.text.clone()
}

#[test]
fn m_composes_a_message_and_enter_sends_it_through_the_pool() {
    let (mut model, now) = small(settings(), (80, 24));
    model.select("on-1");
    assert!(update(&mut model, key('m'), now).is_empty());
    assert!(matches!(model.mode(), Mode::Compose(c) if c.field == Field::To && c.ids == ["on-1"]));
    type_text(&mut model, FRIEND, now);
    update(&mut model, code(KeyCode::Tab), now);
    // `q`, `y`, `n` and spaces are text here, not quit / confirm / cancel.
    assert!(type_text(&mut model, "hi quy n", now).is_empty());
    update(&mut model, code(KeyCode::Backspace), now);
    let sent = update(&mut model, code(KeyCode::Enter), now);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].session, "on-1");
    assert_eq!(
        sent[0].order,
        Order::Send {
            to: FRIEND.into(),
            text: "hi quy ".into(),
            after: Duration::ZERO
        }
    );
    assert_eq!(*model.mode(), Mode::Normal);
    assert!(!model.should_quit());
}

#[test]
fn a_bad_number_an_empty_text_or_an_unpaired_session_is_refused_in_one_sentence() {
    let (mut model, now) = small(settings(), (80, 24));
    model.select("on-1");
    update(&mut model, key('m'), now);
    // Nothing typed.
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert!(
        refusal(&model).contains("type the number"),
        "{}",
        refusal(&model)
    );
    type_text(&mut model, "call me", now);
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert!(refusal(&model).contains("\"call me\" is not a phone number"));
    assert!(matches!(model.mode(), Mode::Compose(_)), "the dialog stays");
    update(
        &mut model,
        Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
        now,
    );
    type_text(&mut model, FRIEND, now);
    assert!(update(&mut model, code(KeyCode::Enter), now).is_empty());
    assert_eq!(refusal(&model), "type the text to send");
    // Esc cancels: nothing sent.
    assert!(update(&mut model, code(KeyCode::Esc), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);

    model.select("on-3");
    update(&mut model, key('m'), now);
    assert_eq!(
        *model.mode(),
        Mode::Normal,
        "no dialog for an unpaired session"
    );
    assert!(
        refusal(&model).starts_with("on-3 is not paired: pair it before sending"),
        "{}",
        refusal(&model)
    );
}

#[test]
fn marked_rows_send_one_test_message_each_staggered_to_the_number_typed() {
    let (mut model, now) = small(settings(), (80, 24));
    for id in ["on-1", "on-2", "on-3"] {
        model.select(id);
        update(&mut model, key(' '), now);
    }
    update(&mut model, key('m'), now);
    let Mode::Compose(c) = model.mode() else {
        panic!("no dialog: {:?}", model.mode());
    };
    assert_eq!(c.ids.len(), 3);
    assert_eq!(
        c.text, "wasp test message",
        "the test text is there already"
    );
    type_text(&mut model, FRIEND, now);
    let sent = update(&mut model, code(KeyCode::Enter), now);
    let got: Vec<(&str, Duration)> = sent
        .iter()
        .map(|r| match &r.order {
            Order::Send { to, text, after } => {
                assert_eq!((to.as_str(), text.as_str()), (FRIEND, "wasp test message"));
                (r.session.as_str(), *after)
            }
            other => panic!("not a send: {other:?}"),
        })
        .collect();
    // The unpaired one is left out and named.
    assert_eq!(
        got,
        [("on-1", Duration::ZERO), ("on-2", Duration::from_secs(3))]
    );
    let said = model.flash().unwrap().text.clone();
    assert!(said.contains("on-3") && said.contains("3s apart"), "{said}");
    assert!(model.marks().is_empty());
}

#[test]
fn a_read_only_console_refuses_m() {
    let (mut model, now) = small(
        Settings {
            read_only: true,
            ..settings()
        },
        (80, 24),
    );
    model.select("on-1");
    assert!(update(&mut model, key('m'), now).is_empty());
    assert_eq!(*model.mode(), Mode::Normal);
    assert_eq!(refusal(&model), "read-only mode: message is disabled");
}

fn line(id: &str, way: Way, stage: Stage, text: &str, at: Instant) -> MessageLine {
    MessageLine {
        session: "on-1".into(),
        id: id.into(),
        way,
        peer: format!("{FRIEND}@s.whatsapp.net"),
        text: Some(text.into()),
        stage,
        at,
    }
}

/// `on-1` with an hour of traffic, two messages out (one delivered by a receipt), one in.
fn with_traffic(model: &mut Model, now: Instant) {
    let mut s = paired("on-1", now);
    s.outbox = OutboxView {
        queued: 2,
        next_send_at: Some(now + Duration::from_secs(4)),
        sent_1h: 12,
        delivered_1h: 11,
        received_1h: 5,
        ..OutboxView::default()
    };
    update(model, Msg::Statuses(vec![s]), now);
    let ago = |s| now - Duration::from_secs(s);
    let lines = vec![
        line("A", Way::Out, Stage::Sent, "order #4411 is ready", ago(40)),
        line("B", Way::In, Stage::Received, "thanks!", ago(20)),
        line("C", Way::Out, Stage::Queued, "see you tomorrow", ago(3)),
    ];
    update(model, Msg::Pool(PoolUpdate::Messages(lines)), now);
    let receipt = MessageLine {
        text: None,
        ..line("A", Way::Out, Stage::Delivered, "", now)
    };
    update(model, Msg::Pool(PoolUpdate::Messages(vec![receipt])), now);
    model.select("on-1");
    update(model, Msg::Tick, now);
}

#[test]
fn the_detail_pane_shows_the_last_messages_with_their_status() {
    let (mut model, now) = small(settings(), (160, 36));
    with_traffic(&mut model, now);
    let screen = draw(&model, now).backend().to_string();
    insta::assert_snapshot!(screen);
    assert!(
        screen.contains("→ 15550100001 delivered order #4411 is ready"),
        "{screen}"
    );
    assert!(
        screen.contains("← 15550100001 received  thanks!"),
        "{screen}"
    );
    assert!(
        screen.contains("1h: sent 12 · dlvd 11 (91.7%) · in 5"),
        "{screen}"
    );
    assert!(
        screen.contains("outbox: 2 queued · next send in 4s"),
        "{screen}"
    );
}

#[test]
fn the_table_shows_queue_and_delivery_columns_when_there_is_traffic() {
    let (mut model, now) = small(settings(), (160, 30));
    with_traffic(&mut model, now);
    let screen = draw(&model, now).backend().to_string();
    insta::assert_snapshot!(screen);
    let header = screen.lines().find(|l| l.contains("cf1h")).unwrap();
    for title in ["queue", "dlv%", "sent", "dlvd", "recv", "next"] {
        assert!(header.contains(title), "{title} missing: {header}");
    }
    let row = screen.lines().find(|l| l.contains("▶")).unwrap();
    assert!(
        row.contains("92%") && row.contains("12") && row.contains("4s"),
        "{row}"
    );
}

#[test]
fn the_message_dialog_and_the_help_name_m() {
    let (mut model, now) = small(settings(), (80, 24));
    model.select("on-1");
    update(&mut model, key('m'), now);
    type_text(&mut model, FRIEND, now);
    let screen = draw(&model, now).backend().to_string();
    insta::assert_snapshot!(screen);
    assert!(screen.contains("From on-1 (Line on-1)") && screen.contains("To:   15550100001"));
    assert!(
        !screen.contains("queue"),
        "no traffic yet: no message columns"
    );
    update(&mut model, code(KeyCode::Esc), now);
    update(&mut model, key('?'), now);
    let help = draw(&model, now).backend().to_string();
    assert!(help.contains("Message: a text from the session"), "{help}");
}
