//! The client dials a real WebSocket on 127.0.0.1, completes the Noise handshake with a
//! server written here from the same `wa` parts, sends a ping iq and gets its answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasp::net::conn::{ClientHandshake, ConnEvent, client_handshake, server_handshake};
use wasp::net::transport;
use wasp::wa::creds::{Credentials, KeyPair};
use wasp::wa::noise::CertAuthority;
use wasp::wa::payload::{self, ClientHello, ClientVersion};
use wasp::wa::stanza::{self, Cause};

const NOW: u64 = 1_795_000_000;

/// A one-connection server: handshake, then answer every iq with a result, or end the
/// stream with `end` when the first iq arrives.
async fn serve_one(
    listener: TcpListener,
    ca: CertAuthority,
    key: KeyPair,
    end: Option<wasp::wa::node::Node>,
) -> Vec<u8> {
    let (tcp, _) = listener.accept().await.unwrap();
    let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let chain = ca.issue_chain(&key.public, NOW, 3600);
    let (mut socket, finish) = server_handshake(ws, &key, chain, None).await.unwrap();
    loop {
        let node = match socket.recv_node().await {
            Ok(node) => node,
            Err(_) => return finish.payload,
        };
        if node.tag == "iq" {
            let reply = match &end {
                Some(end) => end.clone(),
                None => stanza::iq_result(node.get_attr("id").unwrap()),
            };
            socket.send_node(&reply).await.unwrap();
            if end.is_some() {
                socket.close().await;
                return finish.payload;
            }
        }
    }
}

async fn start(
    end: Option<wasp::wa::node::Node>,
) -> (String, tokio::task::JoinHandle<Vec<u8>>, [u8; 32]) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws/chat", listener.local_addr().unwrap());
    let ca = CertAuthority::generate();
    let root = ca.public();
    let key = KeyPair::generate();
    (url, tokio::spawn(serve_one(listener, ca, key, end)), root)
}

/// Dials `url` and completes the handshake with a registration payload for `creds`.
async fn register(
    url: &str,
    root: [u8; 32],
    creds: &Credentials,
) -> (wasp::net::conn::Conn, wasp::net::chan::Receiver<ConnEvent>) {
    let ws = transport::dial(url, Duration::from_secs(5)).await.unwrap();
    let trust = wasp::wa::noise::TrustRoot(root);
    let socket = client_handshake(
        ws,
        ClientHandshake {
            noise: &creds.noise,
            payload: payload::registration_payload(creds, &ClientVersion::default()),
            trust: &trust,
            now_unix: NOW,
            routing: None,
        },
    )
    .await
    .unwrap();
    socket.spawn(CancellationToken::new(), 8)
}

#[tokio::test]
async fn client_handshakes_over_a_real_websocket_and_gets_its_ping_answered() {
    let (url, server, root) = start(None).await;
    let creds = Credentials::generate();
    let (conn, mut events) = register(&url, root, &creds).await;
    let rtt = conn.ping(Duration::from_secs(5)).await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    // A second query is matched by its own id too.
    conn.ping(Duration::from_secs(5)).await.unwrap();
    conn.close().await;
    // Each answer went to its query; the owner only hears that a frame arrived.
    let mut answers = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(ConnEvent::Received)) => answers += 1,
            Ok(Some(ConnEvent::Closed { by_us: true, .. })) => break,
            other => panic!("expected our own close, got {other:?}"),
        }
    }
    assert_eq!(answers, 2);
    // The server saw our registration payload through the encrypted handshake.
    let payload = server.await.unwrap();
    let decoded = payload::decode_client_payload(&payload).unwrap();
    match payload::inspect(&decoded).unwrap() {
        ClientHello::Register {
            identity,
            signature_ok,
            ..
        } => {
            assert_eq!(identity, creds.identity.public);
            assert!(signature_ok);
        }
        other => panic!("expected a registration, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_error_closes_with_its_cause() {
    let (url, _server, root) = start(Some(stanza::conflict_replaced())).await;
    let creds = Credentials::generate();
    let (conn, mut events) = register(&url, root, &creds).await;
    let _ = conn.ping(Duration::from_millis(500)).await;
    let mut cause = None;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        if let ConnEvent::Closed { cause: c, by_us } = event {
            assert!(!by_us);
            cause = Some(*c);
            break;
        }
    }
    assert_eq!(cause, Some(Cause::Conflict));
}

#[tokio::test]
async fn a_server_signed_by_another_root_is_refused() {
    let (url, _server, _root) = start(None).await;
    let creds = Credentials::generate();
    let ws = transport::dial(&url, Duration::from_secs(5)).await.unwrap();
    let stranger = CertAuthority::generate().trust_root();
    let err = client_handshake(
        ws,
        ClientHandshake {
            noise: &creds.noise,
            payload: Vec::new(),
            trust: &stranger,
            now_unix: NOW,
            routing: None,
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.cause().code(), 500, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn dialing_a_closed_port_fails_with_a_network_cause() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws/chat", listener.local_addr().unwrap());
    drop(listener);
    let err = transport::dial(&url, Duration::from_secs(5))
        .await
        .err()
        .unwrap();
    let cause = wasp::net::conn::ConnError::from(err).cause();
    assert_eq!(cause.code(), 408);
}
