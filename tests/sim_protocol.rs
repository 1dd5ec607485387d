//! The wasp client against the simulator over real sockets: pairing end to end, login,
//! keepalive and iq answers, each fault kind's cause and code (PROTOCOL.md section 7), the
//! 440 rule, faults for offline devices, slow handshakes, the fault plan, version refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::sim_client::{WAIT, closed, connect, login, next_node, pair_new, target};
use wasp::net::conn::ConnError;
use wasp::sim::{Fault, FaultPlan, Handle, Server, SimConfig};
use wasp::wa::creds::Credentials;
use wasp::wa::node::Node;
use wasp::wa::stanza::{self, Cause, Incoming};

async fn start() -> Handle {
    Server::start(SimConfig::default()).await.unwrap()
}

/// Polls the simulator's stats until `done` holds (bounded).
async fn until(sim: &Handle, what: &str, done: impl Fn(&wasp::sim::Stats) -> bool) {
    for _ in 0..1000 {
        if done(&sim.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what} never happened: {:?}", sim.stats());
}

#[tokio::test]
async fn pairing_then_login_then_ping() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    assert!(creds.is_paired());
    let (conn, _events) = login(&target(&sim), &creds).await;
    conn.ping(WAIT).await.unwrap();
    // Pre-key count and upload and passive iqs are answered: a new device has no
    // pre-keys on the server, and an upload of the wrong shape is refused (sim_strict.rs
    // checks the rest).
    let count = conn
        .query(stanza::prekey_count_query(&conn.next_id()), WAIT)
        .await
        .unwrap();
    assert_eq!(
        count.get_child("count").and_then(|c| c.get_attr("value")),
        Some("0")
    );
    let upload = Node::new("iq")
        .attr("type", "set")
        .attr("xmlns", "encrypt")
        .child(Node::new("registration").bytes(vec![0, 0, 1, 2]))
        .child(Node::new("list"));
    match conn.query(upload, WAIT).await {
        Err(ConnError::IqError { code, .. }) => assert_eq!(code, 400),
        other => panic!("expected a 400 iq error, got {other:?}"),
    }
    conn.query(stanza::passive_active(&conn.next_id()), WAIT)
        .await
        .unwrap();
    // A ping without the <ping/> child (newer clients) is answered too.
    let bare = Node::new("iq").attr("type", "get").attr("xmlns", "w:p");
    conn.query(bare, WAIT).await.unwrap();
    // Any other iq gets an iq error (501), never silence.
    let odd = Node::new("iq").attr("type", "get").attr("xmlns", "w:odd");
    match conn.query(odd, WAIT).await {
        Err(ConnError::IqError { code, .. }) => assert_eq!(code, 501),
        other => panic!("expected a 501 iq error, got {other:?}"),
    }
    let stats = sim.stats();
    assert_eq!((stats.pairings, stats.logins, stats.logged_in), (1, 1, 1));
    assert_eq!(stats.handshakes, 2);
    assert_eq!(stats.max_concurrent_per_device, 1);
}

fn failure(code: u16, expires_s: Option<u64>) -> Fault {
    Fault::Failure { code, expires_s }
}

#[tokio::test]
async fn each_fault_kind_gives_its_cause_and_code() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let jid = sim.devices()[0].clone();
    let cases = [
        (Fault::Restart, Cause::RestartRequired),
        (Fault::StreamError(503), Cause::Server(503)),
        (Fault::StreamError(500), Cause::Server(500)),
        (
            failure(402, Some(30)),
            Cause::TempBanned {
                expires_s: Some(30),
            },
        ),
        (failure(403, None), Cause::Locked),
        (failure(405, None), Cause::ClientOutdated),
        (failure(406, None), Cause::Banned),
        (Fault::End, Cause::Closed),
        (Fault::Drop, Cause::Closed),
        (Fault::Conflict, Cause::Conflict),
        (Fault::Logout, Cause::LoggedOut),
    ];
    for (fault, expected) in cases {
        let (_conn, mut events) = login(&target(&sim), &creds).await;
        let name = fault.name();
        assert_eq!(sim.fault(&jid, fault).await.unwrap(), 1);
        let cause = closed(&mut events).await;
        assert_eq!(cause, expected, "{name}");
        assert_eq!(cause.code(), expected.code(), "{name}");
    }
    // After logout the device is gone: its login is refused with 401.
    let (_conn, mut events) = connect(&target(&sim), &creds).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);
    let stats = sim.stats();
    assert_eq!(stats.faults_applied, 11);
    assert_eq!(stats.faults["failure"], 4);
    assert_eq!(stats.conflicts_sent, 1);
    assert!(sim.devices().is_empty());
}

#[tokio::test]
async fn stall_keeps_the_socket_but_stops_answering() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let (conn, _events) = login(&target(&sim), &creds).await;
    sim.fault(&sim.devices()[0], Fault::Stall).await.unwrap();
    until(&sim, "the stall", |s| s.faults.get("stall") == Some(&1)).await;
    // The ping goes unanswered (a 408 for the client) and the socket stays open.
    let err = conn.ping(Duration::from_millis(300)).await.unwrap_err();
    assert_eq!(err.cause().code(), 408);
    assert!(!conn.is_closed());
    assert_eq!(sim.stats().logged_in, 1);
}

#[tokio::test]
async fn a_second_login_kicks_the_first_with_440() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let (_first, mut first_events) = login(&target(&sim), &creds).await;
    let (second, _second_events) = login(&target(&sim), &creds).await;
    assert_eq!(closed(&mut first_events).await, Cause::Conflict);
    second.ping(WAIT).await.unwrap();
    let stats = sim.stats();
    assert_eq!(stats.conflicts_sent, 1);
    assert_eq!(stats.max_concurrent_per_device, 1);
    assert_eq!(stats.logged_in, 1);
    let device = stats.devices.values().next().unwrap();
    assert_eq!(
        (device.logins, device.conflicts_sent, device.max_concurrent),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn simultaneous_logins_of_one_device_leave_exactly_one() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let t = target(&sim);
    let (a, b, c) = tokio::join!(
        connect(&t, &creds),
        connect(&t, &creds),
        connect(&t, &creds)
    );
    let mut clients = [a, b, c];
    // Each login gets <success>; each one replaced by a later one then gets 440.
    for (_, events) in clients.iter_mut() {
        assert!(matches!(
            stanza::classify(next_node(events).await.unwrap()),
            Incoming::Success { .. }
        ));
    }
    let mut ends = Vec::new();
    for (conn, events) in clients.iter_mut() {
        ends.push(match conn.ping(WAIT).await {
            Ok(_) => None,
            Err(_) => Some(closed(events).await),
        });
    }
    ends.sort_by_key(|e| e.is_some());
    assert_eq!(ends, [None, Some(Cause::Conflict), Some(Cause::Conflict)]);
    let stats = sim.stats();
    assert_eq!(stats.max_concurrent_per_device, 1);
    assert_eq!((stats.conflicts_sent, stats.logged_in), (2, 1));
}

#[tokio::test]
async fn faults_for_an_offline_device_meet_its_next_login() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let jid = sim.devices()[0].clone();
    let t = target(&sim);
    // A failure replaces <success>.
    assert_eq!(sim.fault(&jid, failure(403, None)).await.unwrap(), 0);
    let (_c, mut events) = connect(&t, &creds).await;
    assert_eq!(closed(&mut events).await, Cause::Locked);
    assert_eq!(sim.stats().logins, 0);
    // Other faults follow <success>.
    sim.fault(&jid, Fault::StreamError(503)).await.unwrap();
    let (_c, mut events) = login(&t, &creds).await;
    assert_eq!(closed(&mut events).await, Cause::Server(503));
    // Logout forgets the device at once.
    sim.fault(&jid, Fault::Logout).await.unwrap();
    assert!(sim.devices().is_empty());
    let (_c, mut events) = connect(&t, &creds).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);
    // A device the simulator never paired is an error.
    assert!(sim.fault(&jid, Fault::Drop).await.is_err());
}

#[tokio::test]
async fn a_fault_for_all_reaches_every_logged_in_connection() {
    let sim = start().await;
    let t = target(&sim);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let creds = pair_new(&sim, None).await;
        sessions.push(login(&t, &creds).await);
    }
    assert_eq!(sim.fault("*", Fault::Restart).await.unwrap(), 3);
    for (_conn, events) in &mut sessions {
        assert_eq!(closed(events).await, Cause::RestartRequired);
    }
    until(&sim, "every logout", |s| s.logged_in == 0).await;
}

#[tokio::test]
async fn slow_handshakes_for_all_and_for_one_device() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let jid = sim.devices()[0].clone();
    let t = target(&sim);
    let slow = Fault::SlowHandshake(Duration::from_secs(60));
    // For all: the server hello is late, so a client's connect deadline passes (408).
    sim.fault("*", slow.clone()).await.unwrap();
    let ws = wasp::net::transport::dial(&t.ws_url, WAIT).await.unwrap();
    let handshake = wasp::net::conn::client_handshake(
        ws,
        wasp::net::conn::ClientHandshake {
            noise: &creds.noise,
            payload: wasp::wa::payload::login_payload(&creds, &Default::default()).unwrap(),
            trust: &t.trust,
            now_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            routing: None,
        },
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), handshake)
            .await
            .is_err()
    );
    sim.fault("*", Fault::SlowHandshake(Duration::ZERO))
        .await
        .unwrap();
    let (_c, events) = login(&t, &creds).await;
    drop(events);
    // For one device: the answer to its login is late.
    sim.fault(&jid, slow).await.unwrap();
    let (_c, mut events) = connect(&t, &creds).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.recv())
            .await
            .is_err()
    );
    sim.fault(&jid, Fault::SlowHandshake(Duration::ZERO))
        .await
        .unwrap();
    login(&t, &creds).await;
}

/// Issue 16: a login delayed past the client's deadline, whose client then left, must not
/// finish later and kick the live login with 440 (the real server does not log in a client
/// that has gone).
#[tokio::test]
async fn an_abandoned_slow_login_kicks_nobody() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let jid = sim.devices()[0].clone();
    let t = target(&sim);
    sim.fault(&jid, Fault::SlowHandshake(Duration::from_secs(2)))
        .await
        .unwrap();
    // The client gives up on the slow login and goes, once the server holds it.
    let before = sim.stats().handshakes;
    let (abandoned, _events) = connect(&t, &creds).await;
    until(&sim, "the slow login's handshake", |s| {
        s.handshakes > before
    })
    .await;
    abandoned.close().await;
    // It comes back and logs in at once.
    sim.fault(&jid, Fault::SlowHandshake(Duration::ZERO))
        .await
        .unwrap();
    let (live, events) = login(&t, &creds).await;
    // Once the abandoned login's delay is over it has either been dropped or (the old
    // bug) kicked the live one.
    until(&sim, "the abandoned login's end", |s| {
        s.errors.get("abandoned_login").copied().unwrap_or(0) >= 1
            || s.devices.get(&jid).is_some_and(|d| d.conflicts_sent >= 1)
    })
    .await;
    let stats = sim.stats();
    assert_eq!(stats.devices[&jid].conflicts_sent, 0, "{stats:?}");
    assert_eq!(stats.devices[&jid].max_concurrent, 1, "{stats:?}");
    live.ping(WAIT).await.unwrap();
    assert_eq!(sim.stats().logged_in, 1);
    drop(events);
}

#[tokio::test]
async fn a_seeded_fault_plan_hits_live_devices() {
    let sim = start().await;
    let creds = pair_new(&sim, None).await;
    let (_conn, mut events) = login(&target(&sim), &creds).await;
    sim.start_plan(FaultPlan {
        every: Duration::from_millis(20),
        kinds: vec![Fault::StreamError(503)],
        seed: 7,
    });
    assert_eq!(closed(&mut events).await, Cause::Server(503));
    sim.stop_plan();
    assert!(sim.stats().faults["stream-error"] >= 1);
}

#[tokio::test]
async fn unknown_device_and_tampered_registration_get_401() {
    let sim = start().await;
    let mut creds = Credentials::generate();
    creds.account = Some(wasp::wa::creds::Account {
        jid: "15559990000:3@s.whatsapp.net".into(),
        lid: None,
        phone: "15559990000".into(),
        device: 3,
        platform: None,
        business_name: None,
        signed_identity: Vec::new(),
        key_index: 1,
    });
    let (_c, mut events) = connect(&target(&sim), &creds).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);

    let mut tampered = Credentials::generate();
    tampered.signed_pre_key.signature[0] ^= 1;
    let (_c, mut events) = connect(&target(&sim), &tampered).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);

    // A paired device's numbers with another noise key are not that device.
    let paired = pair_new(&sim, None).await;
    let mut impostor = Credentials::generate();
    impostor.account = paired.account.clone();
    let (_c, mut events) = connect(&target(&sim), &impostor).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);

    let stats = sim.stats();
    assert_eq!(stats.errors.get("unknown_device"), Some(&2));
    assert_eq!(stats.errors.get("bad_signed_pre_key"), Some(&1));
}

#[tokio::test]
async fn dictionary_version_2_is_refused_and_counted() {
    use futures::SinkExt;
    let sim = start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(with_origin(&sim.ws_url))
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![0x57, 0x41, 6, 2, 0, 0, 1, 0].into(),
    ))
    .await
    .unwrap();
    until(&sim, "the refusal", |s| {
        s.errors.get("dictionary_version") == Some(&1)
    })
    .await;
    assert_eq!(sim.stats().handshakes, 0);
}

#[tokio::test]
async fn only_the_chat_path_upgrades() {
    let sim = start().await;
    let other = sim.ws_url.replace("/ws/chat", "/ws/other");
    let err = tokio_tungstenite::connect_async(other.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

/// A request to `url` with WhatsApp Web's `Origin`, as every web client sends it.
fn with_origin(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", wasp::net::transport::ORIGIN.parse().unwrap());
    request
}

#[tokio::test]
async fn an_upgrade_without_the_web_origin_is_refused() {
    let sim = start().await;
    let err = tokio_tungstenite::connect_async(sim.ws_url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let mut wrong = with_origin(&sim.ws_url);
    wrong
        .headers_mut()
        .insert("Origin", "https://example.com".parse().unwrap());
    let err = tokio_tungstenite::connect_async(wrong).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // Our own dial (net::upgrade) carries it.
    assert!(
        wasp::net::transport::dial(&sim.ws_url, std::time::Duration::from_secs(10))
            .await
            .is_ok()
    );
}
