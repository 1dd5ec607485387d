//! Messages end to end through the simulator as a relay, over real sockets: a wasp session
//! and a simulated account's phone exchange 100 texts each way (each decrypted in order, each
//! of ours delivered, our own phone decrypting the device-sent copies), and two wasp sessions
//! of one pool do the same, one of them offline while the other sends (queued, delivered in
//! order at its next login, none twice).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use wasp::config::{Config, SessionConfig};
use wasp::net::messages::{MessageEvent, MessageEventKind, MessageStatus};
use wasp::runner::{self, Started};
use wasp::session::Command;
use wasp::session::policy::Policy;
use wasp::session::status::StateName;
use wasp::sim::{Handle, Server, SimConfig};

use common::board;

const N: usize = 100;
const WAIT: Duration = Duration::from_secs(60);

fn policy() -> Policy {
    Policy {
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(400),
        ..Policy::default()
    }
}

struct Fleet {
    sim: Handle,
    started: Started,
    phone: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.phone.cancel();
        self.sim.shutdown();
    }
}

async fn fleet(n: usize) -> Fleet {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    // Tests send as fast as the relay takes them: no send limits worth the name.
    config.messages.per_minute = 60_000;
    config.messages.burst = 1_000;
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = dir.path().to_path_buf();
    config.policy = policy();
    config.sessions = (0..n)
        .map(|i| {
            let mut s = SessionConfig::new(format!("s{i}"), policy());
            s.autostart = true;
            s
        })
        .collect();
    let started = runner::start(&config, None).await.unwrap();
    let phone = CancellationToken::new();
    tokio::spawn(runner::virtual_phone(
        started.running.handle.board.clone(),
        sim.clone(),
        Duration::from_millis(10),
        Duration::from_millis(50),
        phone.clone(),
    ));
    let fleet = Fleet {
        sim,
        started,
        phone,
        _dir: dir,
    };
    for i in 0..n {
        fleet.online(&format!("s{i}")).await;
    }
    // A device without uploaded pre-keys gets no bundle, so senders leave it out (as the
    // real server makes them): wait for every session's first upload.
    let metrics = fleet.started.running.handle.metrics.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.prekeys_uploaded.get() < 812 * n as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pre-keys never uploaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet
}

impl Fleet {
    /// Waits until `id` is online and returns its phone.
    async fn online(&self, id: &str) -> String {
        let board = &self.started.running.handle.board;
        let status = board::wait_for(board, id, "online", WAIT, |s| {
            s.state() == StateName::Online && s.account.phone.is_some()
        })
        .await;
        status.account.phone.unwrap()
    }

    /// Sends, retrying while the session's messenger has not learnt of its login yet.
    async fn send(&self, session: &str, to: &str, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self
                .started
                .running
                .handle
                .send_text(session, to, text)
                .await
            {
                Ok(id) => return id.0,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "{session}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Collects events until `done` says enough; panics on a failed send or after `WAIT`.
async fn collect(
    events: &mut broadcast::Receiver<MessageEvent>,
    mut done: impl FnMut(&MessageEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("timed out waiting for message events")
            .expect("no event lost");
        if let MessageEventKind::Status {
            status: MessageStatus::Failed(why),
            ..
        } = &event.kind
        {
            panic!("a send failed: {why}");
        }
        if done(&event) {
            return;
        }
    }
}

/// Texts `session` received from `chat`, in order, until `n` arrived.
async fn receive(
    events: &mut broadcast::Receiver<MessageEvent>,
    session: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut got = Vec::new();
    collect(events, |e| {
        if e.session == session
            && let MessageEventKind::Received(m) = &e.kind
            && !m.from_me
        {
            got.push((m.id.clone(), m.text.clone().unwrap_or_default()));
        }
        got.len() >= n
    })
    .await;
    got
}

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

// Fails today: wasp sends the retry receipt with keys at count 2 (the phone's pkmsg names a
// one-time key wasp already used), but the simulated phone sends nothing after it; to be
// settled with the relay's owner (msg-core) before it is switched on.
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
