//! Keys never show after a real exchange of messages: a wasp session and two simulated
//! phones exchange texts over real sockets (sessions started from bundles, ratchets
//! advanced both ways, one lost session healed through retry receipts), then every key
//! keys.db holds (peer identities, session records, one-time pre-keys and sender keys) and
//! the session's own private keys are looked for, in every printable form, in the logs
//! (text, JSON and the console's log ring, at TRACE), in the Debug of what the pool hands
//! out, in every HTTP answer and on the drawn console. None is found; the same search finds
//! them in keys.db itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/leaks.rs"]
mod leaks;

use std::time::Instant;

use fleet::{collect, fleet_with, receive};
use leaks::{Capture, find_leak, leak_needles};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use wasp::net::messages::{MessageEventKind, MessageStatus};
use wasp::store::keys::KeyStore;
use wasp::store::signal::{SignalKind, SignalWrite};
use wasp::store::{CredentialStoreExt, FileStore};
use wasp::ui::{LogRing, Model, Msg, Settings, update};
use wasp::wa::creds::Credentials;

const TOKEN: &str = "redaction-test-token";

/// Every 32-byte stretch of a stored value (a record holds several keys one after the
/// other; a public key alone is one stretch).
fn stretches(value: &[u8]) -> Vec<[u8; 32]> {
    (0..value.len().saturating_sub(31))
        .step_by(8)
        .map(|at| <[u8; 32]>::try_from(&value[at..at + 32]).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_real_exchange_no_stored_key_shows_in_logs_debug_http_or_console() {
    let logs = Capture::default();
    let ring = LogRing::new(20_000);
    // wasp's own events only: the simulator (the "server") runs in this process too.
    let filter = Targets::new()
        .with_target("wasp", LevelFilter::TRACE)
        .with_target("wasp::sim", LevelFilter::OFF);
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(logs.layers())
        .with(ring.layer());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let fleet = fleet_with(1, Some(TOKEN)).await;
    let a_phone = fleet.online("s0").await;
    let (p, q) = ("15557770020", "15557770021");
    fleet.sim.create_account(p).unwrap();
    fleet.sim.create_account(q).unwrap();
    let handle = fleet.started.running.handle.clone();
    let mut events = handle.message_events();
    let mut shown: Vec<String> = Vec::new();

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(fleet.send("s0", p, &format!("to p {i}")).await);
    }
    let mut delivered = 0;
    collect(&mut events, |e| {
        shown.push(format!("{e:?}"));
        if let MessageEventKind::Status {
            status: MessageStatus::Delivered,
            ..
        } = &e.kind
        {
            delivered += 1;
        }
        delivered >= ids.len()
    })
    .await;
    for (peer, text) in [(p, "from p"), (q, "from q"), (p, "again p")] {
        fleet.sim.send_text(peer, &a_phone, text).unwrap();
    }
    shown.push(format!("{:?}", receive(&mut events, "s0", 3).await));

    // P's session is lost; P's next text heals it through retry receipts.
    let keys = KeyStore::in_data_dir(fleet._dir.path());
    let drop = vec![SignalWrite::Delete {
        kind: SignalKind::Session,
        name: format!("{p}.0"),
    }];
    let store = KeyStore::in_data_dir(fleet._dir.path());
    tokio::task::spawn_blocking(move || store.signal_apply("s0", &drop))
        .await
        .unwrap()
        .unwrap();
    fleet.sim.send_text(p, &a_phone, "after the loss").unwrap();
    let healed = receive(&mut events, "s0", 1).await;
    assert_eq!(healed[0].1, "after the loss");
    assert!(
        handle.metrics.decrypt_failures.get() >= 1,
        "a retry happened"
    );

    // What the pool hands out, as Debug.
    let statuses = handle.board.snapshot();
    shown.push(format!("{statuses:?}"));
    shown.push(format!("{keys:?}"));
    // Every HTTP answer a client could ask for.
    let base = fleet.http.clone().unwrap();
    let mut paths: Vec<String> = [
        "/healthz",
        "/readyz",
        "/sessions",
        "/sessions/s0",
        "/sessions/s0/messages",
        "/metrics",
        "/cluster",
    ]
    .map(String::from)
    .to_vec();
    paths.extend(ids.iter().map(|id| format!("/sessions/s0/messages/{id}")));
    for path in &paths {
        let answer = common::request(&base, "GET", path, Some(TOKEN), "").await;
        assert!(answer.status < 500, "{path}: {}", answer.body);
        shown.push(format!("{path}: {}", answer.body));
    }
    // The console, drawn from the real statuses and the captured log ring.
    let now = Instant::now();
    let mut model = Model::new(Settings::default(), ring.clone());
    update(&mut model, Msg::Resize(200, 60), now);
    update(&mut model, Msg::Statuses(statuses), now);
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
    terminal
        .draw(|f| wasp::ui::view::draw(f, &model, now))
        .unwrap();
    let screen = terminal.backend().to_string();
    assert!(screen.contains("s0"), "the console drew the session");
    shown.push(screen);
    shown.extend(ring.snapshot().iter().map(|l| format!("{l:?}")));

    // Every key keys.db holds for the session, and the session's private keys.
    let db = rusqlite::Connection::open(fleet._dir.path().join("keys.db")).unwrap();
    let mut secrets: Vec<[u8; 32]> = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    let mut rows = db
        .prepare("SELECT kind, value FROM signal WHERE session = 's0'")
        .unwrap();
    for row in rows
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap()
    {
        let (kind, value) = row.unwrap();
        kinds.insert(kind);
        secrets.extend(stretches(&value));
    }
    assert!(
        kinds.contains("session") && kinds.contains("identity"),
        "{kinds:?}"
    );
    let mut prekeys = db
        .prepare("SELECT private FROM prekeys WHERE session = 's0'")
        .unwrap();
    let before = secrets.len();
    for row in prekeys.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
        secrets.extend(stretches(&row.unwrap()));
    }
    assert!(secrets.len() - before >= 800, "the pre-keys were read");
    let creds = FileStore::new(fleet._dir.path())
        .load_json::<Credentials>("s0")
        .unwrap()
        .unwrap()
        .value;
    secrets.extend([
        *creds.noise.private.expose(),
        *creds.identity.private.expose(),
        *creds.signed_pre_key.key_pair.private.expose(),
        *creds.adv_secret.expose(),
    ]);
    let needles = leak_needles(&secrets);

    let db_bytes = std::fs::read(fleet._dir.path().join("keys.db")).unwrap();
    let wal = std::fs::read(fleet._dir.path().join("keys.db-wal")).unwrap_or_default();
    assert!(
        find_leak(&db_bytes, &needles).is_some() || find_leak(&wal, &needles).is_some(),
        "the search would find a leak"
    );
    let logs = logs.0.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&logs).contains("retry"),
        "the capture saw the retry path"
    );
    if let Some(leak) = find_leak(&logs, &needles) {
        panic!("key material {leak:?} appears in the logs");
    }
    for text in &shown {
        if let Some(leak) = find_leak(text.as_bytes(), &needles) {
            panic!("key material {leak:?} appears in {text}");
        }
    }
}
