//! Webhook delivery against a real local receiver (issue 13): with a receiver that fails about
//! half the requests with 500 and sometimes hangs past the timeout, every event arrives once,
//! in order per session, each signature verifying; a receiver answering 400 for one session
//! fills the dead-letter list with exactly that session's events and loses nothing else, and
//! an operator's redelivery brings them; events queued while the receiver is down survive a
//! restart (a fresh key database handle, as a new process opens it) and are delivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use std::sync::RwLock;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use wasp::config::{Config, MessagesConfig, SessionConfig, WebhookConfig, WebhookUrl};
use wasp::net::board::StatusBoard;
use wasp::net::handle::{OutboxAccess, PoolHandle};
use wasp::net::hooks::Hooks;
use wasp::net::messages::{MessageEvent, MessageEventKind, MessageStatus, ReceivedMessage};
use wasp::net::metrics::Metrics;
use wasp::session::policy::Policy;
use wasp::store::keys::KeyStore;
use wasp::webhook::{self, Settings, Targets, WebhookSecret, WebhookSetup};

use crate::common::receiver::{Hit, Mode, Receiver};

const SECRET: &str = "webhook-test-secret";
const WAIT: Duration = Duration::from_secs(120);

/// The pool side the webhook follows: its targets and key database.
struct FakePool {
    handle: PoolHandle,
    hooks: Arc<Hooks>,
    keys: Arc<KeyStore>,
}

fn fake_pool(dir: &std::path::Path) -> FakePool {
    let hooks = Arc::new(Hooks::default());
    let keys = Arc::new(KeyStore::in_data_dir(dir));
    let (req_tx, _req_rx) = mpsc::channel(1);
    let handle = PoolHandle::new(
        Arc::new(StatusBoard::new()),
        Arc::new(Metrics::new()),
        req_tx,
    )
    .with_hooks(hooks.clone())
    .with_outbox(OutboxAccess {
        keys: keys.clone(),
        config: watch::channel(MessagesConfig::default()).1,
    });
    FakePool {
        handle,
        hooks,
        keys,
    }
}

fn config(url: &str, sessions: &[&str]) -> Config {
    Config {
        webhook: Some(WebhookConfig {
            url: Some(WebhookUrl::parse(url).unwrap()),
            timeout: Duration::from_secs(1),
            retry_base: Duration::from_millis(10),
            retry_cap: Duration::from_millis(100),
            ..WebhookConfig::default()
        }),
        sessions: sessions
            .iter()
            .map(|id| SessionConfig::new(*id, Policy::default()))
            .collect(),
        ..Config::default()
    }
}

fn start(pool: &FakePool, config: &Config) -> (webhook::Webhooks, CancellationToken) {
    pool.hooks.set(Targets::of(config));
    let settings = Settings {
        config: config.webhook.clone().unwrap(),
        secret: Some(WebhookSecret::new(SECRET)),
    };
    let setup = WebhookSetup {
        hooks: pool.hooks.clone(),
        settings: Arc::new(RwLock::new(settings)),
        keys: pool.keys.clone(),
        metrics: pool.handle.metrics.clone(),
        board: pool.handle.board.clone(),
    };
    let cancel = CancellationToken::new();
    (webhook::start(setup, &pool.handle, cancel.clone()), cancel)
}

/// Received message number `n` of `session`.
fn message(session: &str, n: usize) -> MessageEvent {
    MessageEvent {
        session: session.to_string(),
        kind: MessageEventKind::Received(ReceivedMessage {
            id: format!("{session}-{n}"),
            chat: "15550001111@s.whatsapp.net".into(),
            sender: "15550001111@s.whatsapp.net".into(),
            from_me: false,
            text: Some(format!("text {n}")),
            kind: "conversation".into(),
            bytes: 8,
            timestamp: 1_700_000_000 + n as u64,
        }),
    }
}

/// A delivery receipt for our message number `n` of `session`.
fn receipt(session: &str, n: usize) -> MessageEvent {
    MessageEvent {
        session: session.to_string(),
        kind: MessageEventKind::Status {
            id: format!("out-{session}-{n}"),
            chat: "15550001111@s.whatsapp.net".into(),
            status: MessageStatus::Delivered,
        },
    }
}

/// Queues `n` events for each session, alternating messages and receipts, as the
/// messengers do (each with the row it reports, here alone), and wakes the deliverer.
async fn publish(pool: &FakePool, sessions: &[&str], n: usize) {
    let mut rows = Vec::new();
    for i in 0..n {
        for s in sessions {
            let event = if i % 2 == 0 {
                message(s, i)
            } else {
                receipt(s, i)
            };
            rows.push(pool.hooks.delivery(&event).expect("every event is wanted"));
        }
    }
    let keys = pool.keys.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::task::spawn_blocking(move || keys.webhook_enqueue(&rows, now))
        .await
        .unwrap()
        .unwrap();
    pool.hooks.queued();
}

/// The id of each accepted event, per session, in arrival order.
fn ids_by_session(hits: &[Hit]) -> HashMap<String, Vec<String>> {
    let mut by: HashMap<String, Vec<String>> = HashMap::new();
    for hit in hits {
        by.entry(hit.session.clone())
            .or_default()
            .push(hit.body["id"].as_str().unwrap().to_string());
    }
    by
}

fn expected_ids(session: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("{session}-{i}")
            } else {
                format!("out-{session}-{i}")
            }
        })
        .collect()
}

async fn wait_depth_zero(keys: &Arc<KeyStore>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while keys.webhook_depth().unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a metric reaches `want`: it moves just after the row it counts is written, so
/// an empty queue alone does not mean it has been counted yet.
async fn wait_count(what: &str, count: impl Fn() -> u64, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while count() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} of {want}",
            count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_hanging_receiver_gets_every_event_once_in_order_and_signed() {
    const N: usize = 40;
    let sessions = ["a", "b", "c"];
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(SECRET, Mode::Flaky).await;
    let pool = fake_pool(dir.path());
    let (webhooks, cancel) = start(&pool, &config(&receiver.url, &sessions));
    publish(&pool, &sessions, N).await;

    let hits = receiver
        .wait_for(WAIT, |h| h.len() >= N * sessions.len())
        .await;
    wait_depth_zero(&pool.keys).await;
    let by = ids_by_session(&receiver.hits());
    for s in sessions {
        assert_eq!(
            by[s],
            expected_ids(s, N),
            "session {s}: once each, in order"
        );
    }
    assert_eq!(hits.len(), N * sessions.len(), "nothing twice");
    let (requests, bad, failed, hung) = receiver.counts();
    assert_eq!(bad, 0, "every signature verifies");
    assert!(
        failed > 20 && hung > 2,
        "the receiver did fail: {failed} 500s, {hung} hangs"
    );
    assert!(requests >= (N * sessions.len()) as u64 + failed + hung);
    let m = &pool.handle.metrics;
    let all = (N * sessions.len()) as u64;
    wait_count("delivered", || m.webhook_delivered.get(), all).await;
    assert_eq!(m.webhook_delivered.get(), all);
    assert_eq!(m.webhook_retried.get(), failed + hung);
    assert_eq!((m.webhook_dead.get(), m.webhook_lost.get()), (0, 0));
    cancel.cancel();
    webhooks.stopped(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_400_fills_the_dead_letters_and_loses_nothing_else() {
    const N: usize = 20;
    let sessions = ["good", "bad"];
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(SECRET, Mode::Refuse(400, vec!["bad".into()])).await;
    let pool = fake_pool(dir.path());
    let (webhooks, cancel) = start(&pool, &config(&receiver.url, &sessions));
    publish(&pool, &sessions, N).await;

    receiver.wait_for(WAIT, |h| h.len() >= N).await;
    wait_depth_zero(&pool.keys).await;
    let by = ids_by_session(&receiver.hits());
    assert_eq!(by["good"], expected_ids("good", N));
    assert!(!by.contains_key("bad"));
    let (dead, count) = pool.keys.webhook_dead(1000).unwrap();
    assert_eq!(count, N as u64);
    assert!(dead.iter().all(|d| d.session == "bad" && d.attempts == 1));
    assert!(dead[0].reason.contains("400"), "{}", dead[0].reason);
    let metrics = &pool.handle.metrics;
    wait_count("dead", || metrics.webhook_dead.get(), N as u64).await;
    assert_eq!(metrics.webhook_dead.get(), N as u64);

    // The operator fixes the receiver and redelivers: every dead event arrives, in order.
    receiver.set_mode(Mode::Accept);
    assert_eq!(pool.keys.webhook_redeliver(None, 0).unwrap(), N as u64);
    receiver.wait_for(WAIT, |h| h.len() >= 2 * N).await;
    let by = ids_by_session(&receiver.hits());
    assert_eq!(by["bad"], expected_ids("bad", N));
    assert_eq!(pool.keys.webhook_dead(10).unwrap().1, 0);
    cancel.cancel();
    webhooks.stopped(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_while_the_receiver_is_down_are_delivered_after_a_restart() {
    const N: usize = 30;
    let sessions = ["x", "y"];
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here: every try fails to connect.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    {
        let pool = fake_pool(dir.path());
        let (webhooks, cancel) = start(&pool, &config(&closed, &sessions));
        publish(&pool, &sessions, N).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while pool.keys.webhook_depth().unwrap() < (N * sessions.len()) as u64 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "events never queued"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while pool.handle.metrics.webhook_retried.get() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "no try was made");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        webhooks.stopped(Duration::from_secs(5)).await;
    }
    // A new process: a new handle on the same keys.db, the receiver now up.
    let receiver = Receiver::start(SECRET, Mode::Accept).await;
    let pool = fake_pool(dir.path());
    assert_eq!(
        pool.keys.webhook_depth().unwrap(),
        (N * sessions.len()) as u64
    );
    let (webhooks, cancel) = start(&pool, &config(&receiver.url, &sessions));
    receiver
        .wait_for(WAIT, |h| h.len() >= N * sessions.len())
        .await;
    wait_depth_zero(&pool.keys).await;
    let by = ids_by_session(&receiver.hits());
    for s in sessions {
        assert_eq!(by[s], expected_ids(s, N), "session {s}");
    }
    assert_eq!(receiver.hits().len(), N * sessions.len());
    cancel.cancel();
    webhooks.stopped(Duration::from_secs(5)).await;
}
