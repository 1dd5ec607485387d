//! The wasp client against the simulator over real sockets: pairing end to end, login,
//! keepalive, each fault kind's cause and code, the 440 rule, version refusal, bad admin input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasp::net::conn::{ClientHandshake, Conn, ConnEvent, client_handshake};
use wasp::net::transport;
use wasp::sim::{Fault, Handle, Server, SimConfig};
use wasp::wa::creds::Credentials;
use wasp::wa::pair;
use wasp::wa::payload::{self, ClientVersion, QR_PLATFORM};
use wasp::wa::stanza::{self, Cause, Incoming};

const WAIT: Duration = Duration::from_secs(10);

async fn connect(sim: &Handle, creds: &Credentials) -> (Conn, mpsc::Receiver<ConnEvent>) {
    let ws = transport::dial(&sim.ws_url, WAIT).await.unwrap();
    let version = ClientVersion::default();
    let payload = if creds.is_paired() {
        payload::login_payload(creds, &version).unwrap()
    } else {
        payload::registration_payload(creds, &version)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let socket = client_handshake(
        ws,
        ClientHandshake {
            noise_private: creds.noise.private.expose(),
            payload,
            trust: &sim.trust_root,
            now_unix: now,
            routing: None,
        },
    )
    .await
    .unwrap();
    socket.spawn(CancellationToken::new(), 32)
}

async fn next_node(events: &mut mpsc::Receiver<ConnEvent>) -> Result<wasp::wa::node::Node, Cause> {
    match tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event in time")
    {
        Some(ConnEvent::Node(n)) => Ok(n),
        Some(ConnEvent::Closed { cause, .. }) => Err(cause),
        None => Err(Cause::Closed),
    }
}

/// Waits until the connection closes; returns its cause.
async fn closed(events: &mut mpsc::Receiver<ConnEvent>) -> Cause {
    loop {
        if let Err(cause) = next_node(events).await {
            return cause;
        }
    }
}

/// Pairs fresh credentials through the virtual phone; returns them paired.
async fn pair_new(sim: &Handle) -> Credentials {
    let mut creds = Credentials::generate();
    let (conn, mut events) = connect(sim, &creds).await;
    let (id, refs) = match stanza::classify(next_node(&mut events).await.unwrap()) {
        Incoming::PairDevice { id, refs } => (id, refs),
        other => panic!("expected pair-device, got {other:?}"),
    };
    assert_eq!(refs.len(), 6);
    conn.send(stanza::iq_result(&id)).await.unwrap();
    // The QR the console would show; the phone scans it.
    let qr = pair::qr_text(&refs[0], &creds, QR_PLATFORM);
    let phone = sim.clone();
    let scan = tokio::spawn(async move { phone.scan(&qr, Some("15550001111")).await });
    let success = match stanza::classify(next_node(&mut events).await.unwrap()) {
        Incoming::PairSuccess { node, .. } => node,
        other => panic!("expected pair-success, got {other:?}"),
    };
    let parsed = pair::parse_pair_success(&success).unwrap();
    let (account, reply) = pair::complete_pairing(&creds, &parsed).unwrap();
    conn.send(reply).await.unwrap();
    let jid = scan.await.unwrap().unwrap();
    assert_eq!(jid, account.jid);
    creds.account = Some(account);
    // Then the server restarts the stream: 515.
    assert_eq!(closed(&mut events).await, Cause::RestartRequired);
    creds
}

async fn start() -> Handle {
    Server::start(SimConfig::default()).await.unwrap()
}

#[tokio::test]
async fn pairing_then_login_then_ping() {
    let sim = start().await;
    let creds = pair_new(&sim).await;
    assert!(creds.is_paired());
    let (conn, mut events) = connect(&sim, &creds).await;
    assert!(matches!(
        stanza::classify(next_node(&mut events).await.unwrap()),
        Incoming::Success { .. }
    ));
    conn.ping(WAIT).await.unwrap();
    // Pre-key count and passive iqs are answered; an unknown iq gets 501, never silence.
    let count = conn
        .query(stanza::prekey_count_query(&conn.next_id()), WAIT)
        .await
        .unwrap();
    assert_eq!(
        count.get_child("count").and_then(|c| c.get_attr("value")),
        Some("50")
    );
    conn.query(stanza::passive_active(&conn.next_id()), WAIT)
        .await
        .unwrap();
    let odd = wasp::wa::node::Node::new("iq")
        .attr("type", "get")
        .attr("xmlns", "w:odd");
    match conn.query(odd, WAIT).await {
        Err(wasp::net::conn::ConnError::IqError { code, .. }) => assert_eq!(code, 501),
        other => panic!("expected a 501 iq error, got {other:?}"),
    }
    let stats = sim.stats();
    assert_eq!((stats.pairings, stats.logins), (1, 1));
    assert!(stats.handshakes >= 2);
}

#[tokio::test]
async fn each_fault_kind_gives_its_cause_and_code() {
    let sim = start().await;
    let creds = pair_new(&sim).await;
    let jid = sim.devices()[0].clone();
    let cases = [
        (Fault::Restart, 515),
        (Fault::StreamError(503), 503),
        (Fault::StreamError(500), 500),
        (
            Fault::Failure {
                code: 402,
                expires_s: Some(30),
            },
            402,
        ),
        (
            Fault::Failure {
                code: 403,
                expires_s: None,
            },
            403,
        ),
        (
            Fault::Failure {
                code: 405,
                expires_s: None,
            },
            405,
        ),
        (
            Fault::Failure {
                code: 406,
                expires_s: None,
            },
            406,
        ),
        (Fault::End, 428),
        (Fault::Drop, 428),
        (Fault::Conflict, 440),
        (Fault::Logout, 401),
    ];
    for (fault, code) in cases {
        let (_conn, mut events) = connect(&sim, &creds).await;
        assert!(matches!(
            stanza::classify(next_node(&mut events).await.unwrap()),
            Incoming::Success { .. }
        ));
        let name = fault.name();
        sim.fault(&jid, fault).await.unwrap();
        let cause = closed(&mut events).await;
        assert_eq!(cause.code(), code, "{name} gave {cause}");
        if code == 402 {
            assert_eq!(
                cause,
                Cause::TempBanned {
                    expires_s: Some(30)
                }
            );
        }
    }
    // After logout the device is gone: its login is refused with 401.
    let (_conn, mut events) = connect(&sim, &creds).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);
}

#[tokio::test]
async fn stall_keeps_the_socket_but_stops_answering() {
    let sim = start().await;
    let creds = pair_new(&sim).await;
    let (conn, mut events) = connect(&sim, &creds).await;
    next_node(&mut events).await.unwrap();
    sim.fault(&sim.devices()[0], Fault::Stall).await.unwrap();
    // Once the fault has landed, a ping goes unanswered (a 408 for the client).
    for _ in 0..500 {
        if sim.stats().faults_applied == 1 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(sim.stats().faults_applied, 1);
    let err = conn.ping(Duration::from_millis(500)).await.unwrap_err();
    assert_eq!(err.cause().code(), 408);
    assert!(!conn.is_closed());
}

#[tokio::test]
async fn a_second_login_kicks_the_first_with_440() {
    let sim = start().await;
    let creds = pair_new(&sim).await;
    let (_first, mut first_events) = connect(&sim, &creds).await;
    next_node(&mut first_events).await.unwrap();
    let (second, mut second_events) = connect(&sim, &creds).await;
    assert_eq!(closed(&mut first_events).await, Cause::Conflict);
    assert!(matches!(
        stanza::classify(next_node(&mut second_events).await.unwrap()),
        Incoming::Success { .. }
    ));
    second.ping(WAIT).await.unwrap();
    let stats = sim.stats();
    assert_eq!(stats.conflicts_sent, 1);
    assert_eq!(stats.max_concurrent_per_device, 1);
    let device = stats.devices.values().next().unwrap();
    assert_eq!(
        (device.logins, device.conflicts_sent, device.max_concurrent),
        (2, 1, 1)
    );
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
    let (_c, mut events) = connect(&sim, &creds).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);

    let mut tampered = Credentials::generate();
    tampered.signed_pre_key.signature[0] ^= 1;
    let (_c, mut events) = connect(&sim, &tampered).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);
    let stats = sim.stats();
    assert_eq!(stats.errors.get("unknown_device"), Some(&1));
    assert_eq!(stats.errors.get("bad_signed_pre_key"), Some(&1));
}

#[tokio::test]
async fn dictionary_version_2_is_refused_and_counted() {
    use futures::SinkExt;
    let sim = start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.ws_url.as_str())
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![0x57, 0x41, 6, 2, 0, 0, 1, 0].into(),
    ))
    .await
    .unwrap();
    for _ in 0..100 {
        if sim.stats().errors.get("dictionary_version") == Some(&1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("version 2 was not refused: {:?}", sim.stats().errors);
}
