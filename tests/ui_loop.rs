//! The event loop on a `TestBackend` with made-up input and a paused clock: coalescing of
//! status storms, keys drawn in the next frame, the 1 s tick, requests reaching the pool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::ui_support::harness::{clock, press, rig, stop_after, type_keys};
use crossterm::event::KeyCode;
use wasp::session::Command;
use wasp::session::status::{Phase, Status};
use wasp::ui::{Order, sample_fleet};

#[tokio::test(start_paused = true)]
async fn a_storm_of_updates_and_a_key_cost_one_frame() {
    let now = clock();
    let (mut rig, hands) = rig(120, 40, 64, 16);
    for chunk in sample_fleet(5000, now).chunks(100) {
        hands.statuses.send(chunk.to_vec().into()).await.unwrap();
    }
    press(&hands.events, KeyCode::Char('/'));
    type_keys(&hands.events, "s0042");
    press(&hands.events, KeyCode::Enter);
    let (stats, ()) = rig
        .run(stop_after(hands.cancel.clone(), Duration::from_millis(500)))
        .await;
    assert_eq!((stats.status_batches, stats.statuses), (50, 5000));
    // The first frame (empty), then one frame for the 50 batches and the 7 keys together.
    assert_eq!(stats.frames, 2);
    let screen = rig.screen();
    assert!(screen.contains("5000 sessions"), "{screen}");
    assert!(screen.contains("Sessions 1/5000"), "{screen}");
    assert!(screen.contains("s0042"), "{screen}");
}

#[tokio::test(start_paused = true)]
async fn status_churn_alone_is_drawn_once_per_frame_gap() {
    let now = clock();
    let (mut rig, hands) = rig(80, 24, 1024, 16);
    for i in 0..1000 {
        let mut s = Status::new(format!("s{}", i % 10), "x", now);
        s.phase = Phase::Online { since: now };
        s.attempt = i;
        hands.statuses.send(vec![s].into()).await.unwrap();
    }
    let (stats, ()) = rig
        .run(stop_after(hands.cancel.clone(), Duration::from_millis(500)))
        .await;
    assert_eq!(stats.status_batches, 1000);
    assert_eq!(stats.frames, 2, "initial frame + one for the whole storm");
    assert_eq!(rig.model.len(), 10);
    assert_eq!(
        rig.model.status("s9").unwrap().attempt,
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
    let (mut rig, hands) = rig(80, 24, 4, 16);
    hands.statuses.send(vec![s].into()).await.unwrap();
    let (stats, ()) = rig
        .run(stop_after(
            hands.cancel.clone(),
            Duration::from_millis(3500),
        ))
        .await;
    // First frame, the status, then three ticks.
    assert_eq!(stats.frames, 5);
    let screen = rig.screen();
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
    let (mut rig, mut hands) = rig(80, 24, 4, 1);
    hands.statuses.send(batch.into()).await.unwrap();
    let pool = async {
        // Once the statuses are in: mark all, reconnect, confirm.
        tokio::time::sleep(Duration::from_millis(100)).await;
        type_keys(&hands.events, "ary");
        let mut got = Vec::new();
        while got.len() < 5 {
            let request = hands.requests.recv().await.unwrap();
            // The selected session's kept messages are read too; only the commands count here.
            if request.order != Order::Recent {
                got.push(request);
            }
        }
        hands.cancel.cancel();
        got
    };
    let (stats, got) = rig.run(pool).await;
    assert_eq!(stats.requests_sent, 5);
    let sessions: Vec<&str> = got.iter().map(|r| r.session.as_str()).collect();
    assert_eq!(sessions, ["c1", "c2", "c3", "c4", "c5"]);
    assert!(
        got.iter()
            .all(|r| r.command() == Some(Command::ReconnectNow))
    );
}

#[tokio::test(start_paused = true)]
async fn quit_ends_the_loop() {
    let (mut rig, hands) = rig(80, 24, 4, 1);
    press(&hands.events, KeyCode::Char('q'));
    let (stats, ()) = rig.run(async {}).await;
    assert!(rig.model.should_quit());
    assert_eq!(stats.frames, 1);
}
