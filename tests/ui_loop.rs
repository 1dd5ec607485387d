//! The event loop on a `TestBackend` with made-up input and a paused clock: coalescing of
//! status storms, keys drawn in the next frame, the 1 s tick, requests reaching the pool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::channel::mpsc::{UnboundedSender, unbounded};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasp::session::status::{Phase, Status};
use wasp::ui::{LogRing, Model, OperatorAction, Settings, run_loop, sample_fleet};

type Events = UnboundedSender<std::io::Result<Event>>;

fn press(events: &Events, code: KeyCode) {
    let key = KeyEvent::new(code, KeyModifiers::NONE);
    events.unbounded_send(Ok(Event::Key(key))).unwrap();
}

fn type_text(events: &Events, text: &str) {
    for c in text.chars() {
        press(events, KeyCode::Char(c));
    }
}

/// Fails the test (rather than hanging it) when the loop has not finished after a minute of
/// virtual time.
async fn within_a_minute<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("the loop finished within a minute of virtual time")
}

fn clock() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_updates_and_a_key_cost_one_frame() {
    let now = clock();
    let (status_tx, status_rx) = mpsc::channel(64);
    for chunk in sample_fleet(5000, now).chunks(100) {
        status_tx.send(chunk.to_vec()).await.unwrap();
    }
    let (events, event_rx) = unbounded();
    press(&events, KeyCode::Char('/'));
    type_text(&events, "s0042");
    press(&events, KeyCode::Enter);
    let (request_tx, _request_rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let mut model = Model::new(Settings::default(), LogRing::new(10));

    let stop = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    };
    let (stats, ()) = within_a_minute(async {
        tokio::join!(
            run_loop(
                &mut terminal,
                &mut model,
                event_rx,
                status_rx,
                request_tx,
                cancel.clone()
            ),
            stop
        )
    })
    .await;
    let stats = stats.unwrap();
    assert_eq!((stats.status_batches, stats.statuses), (50, 5000));
    // The first frame (empty), then one frame for the 50 batches and the 7 keys together.
    assert_eq!(stats.frames, 2);
    let screen = terminal.backend().to_string();
    assert!(screen.contains("5000 sessions"), "{screen}");
    assert!(screen.contains("Sessions 1/5000"), "{screen}");
    assert!(screen.contains("s0042"), "{screen}");
}

#[tokio::test(start_paused = true)]
async fn status_churn_alone_is_drawn_once_per_frame_gap() {
    let now = clock();
    let (status_tx, status_rx) = mpsc::channel(1024);
    for i in 0..1000 {
        let mut s = Status::new(format!("s{}", i % 10), "x", now);
        s.phase = Phase::Online { since: now };
        s.attempt = i;
        status_tx.send(vec![s]).await.unwrap();
    }
    let (_events, event_rx) = unbounded();
    let (request_tx, _request_rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut model = Model::new(Settings::default(), LogRing::new(10));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    };
    let (stats, ()) = within_a_minute(async {
        tokio::join!(
            run_loop(
                &mut terminal,
                &mut model,
                event_rx,
                status_rx,
                request_tx,
                cancel.clone()
            ),
            stop
        )
    })
    .await;
    let stats = stats.unwrap();
    assert_eq!(stats.status_batches, 1000);
    assert_eq!(stats.frames, 2, "initial frame + one for the whole storm");
    assert_eq!(model.len(), 10);
    assert_eq!(
        model.status("s9").unwrap().attempt,
        999,
        "the newest status wins"
    );
}

#[tokio::test(start_paused = true)]
async fn countdowns_tick_every_second() {
    let now = clock();
    let mut s = Status::new("b1", "Backoff line", now);
    s.attempt = 2;
    s.max_attempts = 20;
    s.phase = Phase::Backoff {
        retry_at: now + Duration::from_secs(45),
    };
    let (status_tx, status_rx) = mpsc::channel(4);
    status_tx.send(vec![s]).await.unwrap();
    let (_events, event_rx) = unbounded();
    let (request_tx, _request_rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut model = Model::new(Settings::default(), LogRing::new(10));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        cancel.cancel();
    };
    let (stats, ()) = within_a_minute(async {
        tokio::join!(
            run_loop(
                &mut terminal,
                &mut model,
                event_rx,
                status_rx,
                request_tx,
                cancel.clone()
            ),
            stop
        )
    })
    .await;
    // First frame, the status, then three ticks.
    assert_eq!(stats.unwrap().frames, 5);
    let screen = terminal.backend().to_string();
    assert!(screen.contains("retry in 42s"), "{screen}");
}

#[tokio::test(start_paused = true)]
async fn requests_reach_the_pool_in_order_even_through_a_full_channel() {
    let now = clock();
    let batch: Vec<Status> = (1..=5)
        .map(|i| {
            let mut s = Status::new(format!("c{i}"), "x", now);
            s.phase = Phase::Conflict;
            s
        })
        .collect();
    let (status_tx, status_rx) = mpsc::channel(4);
    status_tx.send(batch).await.unwrap();
    let (events, event_rx) = unbounded();
    let (request_tx, mut request_rx) = mpsc::channel(1);
    let cancel = CancellationToken::new();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut model = Model::new(Settings::default(), LogRing::new(10));
    let pool = async {
        // Once the statuses are in: mark all, reconnect, confirm.
        tokio::time::sleep(Duration::from_millis(100)).await;
        type_text(&events, "ary");
        let mut got = Vec::new();
        while got.len() < 5 {
            let request = request_rx.recv().await.unwrap();
            got.push(request);
        }
        cancel.cancel();
        got
    };
    let (stats, got) = within_a_minute(async {
        tokio::join!(
            run_loop(
                &mut terminal,
                &mut model,
                event_rx,
                status_rx,
                request_tx,
                cancel.clone()
            ),
            pool
        )
    })
    .await;
    assert_eq!(stats.unwrap().requests_sent, 5);
    let sessions: Vec<&str> = got.iter().map(|r| r.session.as_str()).collect();
    assert_eq!(sessions, ["c1", "c2", "c3", "c4", "c5"]);
    assert!(got.iter().all(|r| r.action == OperatorAction::Reconnect));
}

#[tokio::test(start_paused = true)]
async fn quit_ends_the_loop() {
    let (_status_tx, status_rx) = mpsc::channel::<Vec<Status>>(4);
    let (events, event_rx) = unbounded();
    press(&events, KeyCode::Char('q'));
    let (request_tx, _request_rx) = mpsc::channel(1);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut model = Model::new(Settings::default(), LogRing::new(10));
    let stats = within_a_minute(run_loop(
        &mut terminal,
        &mut model,
        event_rx,
        status_rx,
        request_tx,
        CancellationToken::new(),
    ))
    .await
    .unwrap();
    assert!(model.should_quit());
    assert_eq!(stats.frames, 1);
}
