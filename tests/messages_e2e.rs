//! Messages end to end through the simulator as a relay, over real sockets: a wasp session
//! and a simulated account's phone exchange 100 texts each way (each decrypted in order, each
//! of ours delivered, our own phone decrypting the device-sent copies), and two wasp sessions
//! of one pool do the same, one of them offline while the other sends (queued, delivered in
//! order at its next login, none twice). A device added to the recipient's account after
//! wasp cached its device list is found through the ack's `phash` and gets its copy; a lost
//! session for one peer heals through retry receipts without touching another peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::relay_peer;

use std::collections::HashSet;
use std::time::Duration;

use crate::common::board;
use crate::fleet::{WAIT, collect, fleet, receive};
use tokio_util::sync::CancellationToken;
use wasp::net::messages::{MessageEvent, MessageEventKind, MessageStatus};
use wasp::runner;
use wasp::session::Command;
use wasp::session::status::StateName;

const N: usize = 100;

fn texts(prefix: &str) -> Vec<String> {
    (0..N).map(|i| format!("{prefix} {i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_a_simulated_phone_exchange_100_texts_each_way() {
    let fleet = fleet(1).await;
    let a_phone = fleet.online("s0").await;
    let (p_jid, _) = fleet.sim.create_account("15557770001").unwrap();
    let mut events = fleet.started.running.handle.message_events();

    let mut ids = Vec::new();
    for text in texts("to P") {
        ids.push(fleet.send("s0", "15557770001", &text).await);
    }
    let mut delivered = HashSet::new();
    collect(&mut events, |e| {
        if let MessageEventKind::Status {
            id,
            status: MessageStatus::Delivered,
            ..
        } = &e.kind
        {
            assert!(delivered.insert(id.clone()), "delivered once: {id}");
        }
        delivered.len() == N
    })
    .await;
    assert_eq!(delivered, ids.iter().cloned().collect::<HashSet<_>>());
    let inbox = fleet.sim.messages("15557770001").unwrap();
    let got: Vec<(String, String)> = inbox
        .iter()
        .map(|m| (m.id.clone(), m.text.clone().unwrap_or_default()))
        .collect();
    let want: Vec<(String, String)> = ids.iter().cloned().zip(texts("to P")).collect();
    assert_eq!(got, want, "P's phone decrypted every text once, in order");
    // Our own phone decrypted the device-sent copies, with P as the destination.
    let own = fleet.sim.messages(&a_phone).unwrap();
    let copies: Vec<(Option<String>, String)> = own
        .iter()
        .map(|m| (m.to.clone(), m.text.clone().unwrap_or_default()))
        .collect();
    let want: Vec<(Option<String>, String)> = texts("to P")
        .into_iter()
        .map(|t| (Some(p_jid.clone()), t))
        .collect();
    assert_eq!(copies, want, "device-sent copies on our own phone");

    let mut sent = Vec::new();
    for text in texts("from P") {
        sent.push(fleet.sim.send_text("15557770001", &a_phone, &text).unwrap());
    }
    let got = receive(&mut events, "s0", N).await;
    let want: Vec<(String, String)> = sent.into_iter().zip(texts("from P")).collect();
    assert_eq!(got, want, "A decrypted all 100 in order");
    let receipts = fleet.sim.phone_receipts("15557770001");
    assert!(
        receipts.get("delivered").copied().unwrap_or(0) >= N as u64,
        "A sent delivery receipts: {receipts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_exchange_texts_also_while_one_is_offline() {
    let fleet = fleet(2).await;
    let b_phone = fleet.online("s1").await;
    let a_phone = fleet.online("s0").await;
    let mut events = fleet.started.running.handle.message_events();

    let mut ids = Vec::new();
    for text in texts("A to B") {
        ids.push(fleet.send("s0", &b_phone, &text).await);
    }
    let got = receive(&mut events, "s1", N).await;
    let want: Vec<(String, String)> = ids.iter().cloned().zip(texts("A to B")).collect();
    assert_eq!(got, want, "B decrypted all of A's texts in order");

    let mut ids = Vec::new();
    for text in texts("B to A") {
        ids.push(fleet.send("s1", &a_phone, &text).await);
    }
    let got = receive(&mut events, "s0", N).await;
    let want: Vec<(String, String)> = ids.iter().cloned().zip(texts("B to A")).collect();
    assert_eq!(got, want, "A decrypted all of B's texts in order");

    // B goes offline; A's texts wait in the simulator's queue for B's next login.
    let handle = fleet.started.running.handle.clone();
    handle.act("s1", Command::Disconnect).await.unwrap();
    board::wait_for(&handle.board, "s1", "stopped", WAIT, |s| {
        s.state() == StateName::Stopped
    })
    .await;
    let mut ids = Vec::new();
    for text in texts("while offline") {
        ids.push(fleet.send("s0", &b_phone, &text).await);
    }
    handle.act("s1", Command::Connect).await.unwrap();
    let got = receive(&mut events, "s1", N).await;
    let want: Vec<(String, String)> = ids.iter().cloned().zip(texts("while offline")).collect();
    assert_eq!(got, want, "queued texts arrive in order, none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_chatter_makes_traffic_both_ways() {
    let fleet = fleet(1).await;
    let mut events = fleet.started.running.handle.message_events();
    let cancel = CancellationToken::new();
    tokio::spawn(runner::demo_chatter(
        fleet.started.running.handle.clone(),
        fleet.sim.clone(),
        Duration::from_millis(30),
        cancel.clone(),
    ));
    let (mut received, mut delivered) = (false, false);
    collect(&mut events, |e| {
        match &e.kind {
            MessageEventKind::Received(m) if m.text.is_some() => received = true,
            MessageEventKind::Status {
                status: MessageStatus::Delivered,
                ..
            } => delivered = true,
            _ => {}
        }
        received && delivered
    })
    .await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_heals_through_a_retry_receipt_and_other_peers_are_untouched() {
    use wasp::store::keys::KeyStore;
    use wasp::store::signal::{SignalKind, SignalWrite};

    let fleet = fleet(1).await;
    let a_phone = fleet.online("s0").await;
    fleet.sim.create_account("15557770002").unwrap();
    fleet.sim.create_account("15557770003").unwrap();
    let mut events = fleet.started.running.handle.message_events();
    for (peer, text) in [("15557770002", "hello P"), ("15557770003", "hello Q")] {
        fleet.sim.send_text(peer, &a_phone, text).unwrap();
    }
    receive(&mut events, "s0", 2).await;

    // P's session disappears from A's key store (as a corrupted row would be dropped).
    let keys = KeyStore::in_data_dir(fleet._dir.path());
    let drop = vec![SignalWrite::Delete {
        kind: SignalKind::Session,
        name: "15557770002.0".into(),
    }];
    tokio::task::spawn_blocking(move || keys.signal_apply("s0", &drop))
        .await
        .unwrap()
        .unwrap();
    let healed = fleet
        .sim
        .send_text("15557770002", &a_phone, "after the loss")
        .unwrap();
    let other = fleet
        .sim
        .send_text("15557770003", &a_phone, "Q goes on")
        .unwrap();
    let mut got = receive(&mut events, "s0", 2).await;
    got.sort();
    let mut want = vec![
        (healed, "after the loss".to_string()),
        (other, "Q goes on".to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "P's text came through the resend; Q's as usual");
    assert!(
        fleet.started.running.handle.metrics.decrypt_failures.get() >= 1,
        "the loss was noticed and a retry receipt sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_added_after_the_usync_gets_its_copy_through_the_phash_check() {
    let fleet = fleet(1).await;
    fleet.online("s0").await;
    let p = "15557770010";
    fleet.sim.create_account(p).unwrap();
    let metrics = fleet.started.running.handle.metrics.clone();
    let mut events = fleet.started.running.handle.message_events();
    let delivered = |want: String| {
        move |e: &MessageEvent| {
            matches!(&e.kind, MessageEventKind::Status {
                id,
                status: MessageStatus::Delivered,
                ..
            } if *id == want)
        }
    };
    let first = fleet.send("s0", p, "before the new device").await;
    collect(&mut events, delivered(first.clone())).await;
    assert_eq!(metrics.device_list_refreshes.get(), 0, "the lists agreed");

    // P pairs a second device. Nothing tells A, whose cached list for P is now stale.
    let mut p1 = relay_peer::Peer::new(&fleet.sim, p).await;
    let second = fleet.send("s0", p, "after the new device").await;
    p1.pump_until(|peer| peer.texts.iter().any(|(id, _)| *id == second))
        .await;
    assert_eq!(
        p1.texts,
        [(second.clone(), "after the new device".to_string())],
        "the new device got the second text (the first was before its time)"
    );
    assert_eq!(metrics.device_list_refreshes.get(), 1, "one refresh");
    let phone: Vec<_> = fleet
        .sim
        .messages(p)
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.text.unwrap_or_default()))
        .collect();
    assert_eq!(
        phone,
        [
            (first, "before the new device".to_string()),
            (second.clone(), "after the new device".to_string())
        ],
        "P's phone got each text once"
    );
    // The third text goes to both of P's devices at once, without another refresh.
    let third = fleet.send("s0", p, "to both").await;
    p1.pump_until(|peer| peer.texts.iter().any(|(id, _)| *id == third))
        .await;
    collect(&mut events, delivered(third)).await;
    assert_eq!(metrics.device_list_refreshes.get(), 1);
    assert_eq!(fleet.sim.stats().messages_refused, 0);
}
