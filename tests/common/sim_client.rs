//! A small wasp client for the simulator tests, driven step by step over real sockets:
//! dial, handshake with the registration or login payload, show a QR, answer pair-success.
//! Include with `#[path = "common/sim_client.rs"] mod sim_client;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wasp::net::conn::{ClientHandshake, Conn, ConnEvent, client_handshake};
use wasp::net::transport;
use wasp::sim::Handle;
use wasp::sim::load::{self, Target};
use wasp::wa::creds::{Account, Credentials};
use wasp::wa::node::Node;
use wasp::wa::pair::{self, PairError};
use wasp::wa::payload::{self, ClientVersion, QR_PLATFORM};
use wasp::wa::stanza::{self, Cause, Incoming};

/// The longest wait for one event in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn target(sim: &Handle) -> Target {
    Target::from(sim)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Dials and shakes hands (registration payload when unpaired, login payload when paired);
/// the connection task runs.
pub async fn connect(
    target: &Target,
    creds: &Credentials,
) -> (Conn, wasp::net::chan::Receiver<ConnEvent>) {
    let ws = transport::dial(&target.ws_url, WAIT).await.unwrap();
    let version = ClientVersion::default();
    let payload = if creds.is_paired() {
        payload::login_payload(creds, &version).unwrap()
    } else {
        load::registration_payload(creds)
    };
    let socket = client_handshake(
        ws,
        ClientHandshake {
            noise: &creds.noise,
            payload,
            trust: &target.trust,
            now_unix: now_unix(),
            routing: None,
        },
    )
    .await
    .unwrap();
    socket.spawn(CancellationToken::new(), 32)
}

/// The next node, or the cause the connection ended with.
pub async fn next_node(events: &mut wasp::net::chan::Receiver<ConnEvent>) -> Result<Node, Cause> {
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("no event in time")
        {
            Some(ConnEvent::Node(n)) => return Ok(*n),
            Some(ConnEvent::Closed { cause, .. }) => return Err(*cause),
            // Frames that went to a querier, or were skipped as undecodable.
            Some(ConnEvent::Received | ConnEvent::Undecodable { .. }) => {}
            None => return Err(Cause::Closed),
        }
    }
}

/// Waits until the connection closes; returns its cause.
pub async fn closed(events: &mut wasp::net::chan::Receiver<ConnEvent>) -> Cause {
    loop {
        if let Err(cause) = next_node(events).await {
            return cause;
        }
    }
}

/// Logs paired credentials in and checks the answer is `<success>`.
pub async fn login(
    target: &Target,
    creds: &Credentials,
) -> (Conn, wasp::net::chan::Receiver<ConnEvent>) {
    let (conn, mut events) = connect(target, creds).await;
    match stanza::classify(next_node(&mut events).await.unwrap()) {
        Incoming::Success { .. } => {}
        other => panic!("expected <success>, got {other:?}"),
    }
    (conn, events)
}

/// A new client showing its QR codes.
pub struct Showing {
    pub creds: Credentials,
    pub conn: Conn,
    pub events: wasp::net::chan::Receiver<ConnEvent>,
    pub refs: Vec<String>,
}

/// Registers fresh credentials and acknowledges the pair-device refs.
pub async fn show_qr(target: &Target) -> Showing {
    let creds = Credentials::generate();
    let (conn, mut events) = connect(target, &creds).await;
    let (id, refs) = match stanza::classify(next_node(&mut events).await.unwrap()) {
        Incoming::PairDevice { id, refs } => (id, refs),
        other => panic!("expected pair-device, got {other:?}"),
    };
    conn.send(stanza::iq_result(&id)).await.unwrap();
    Showing {
        creds,
        conn,
        events,
        refs,
    }
}

impl Showing {
    /// The QR of ref `i` in the current form, as the console draws it.
    pub fn qr(&self, i: usize) -> String {
        pair::qr_text(&self.refs[i], &self.creds, QR_PLATFORM)
    }

    /// The QR of ref `i` in the older four-field form.
    pub fn old_qr(&self, i: usize) -> String {
        let current = self.qr(i);
        let body = current.split_once('#').unwrap().1;
        body.rsplit_once(',').unwrap().0.to_string()
    }

    /// Receives pair-success and answers it as wasp does: pair-device-sign when it checks
    /// out, an iq error otherwise.
    pub async fn answer_pair_success(&mut self) -> Result<Account, PairError> {
        let (id, node) = match stanza::classify(next_node(&mut self.events).await.unwrap()) {
            Incoming::PairSuccess { id, node } => (id, node),
            other => panic!("expected pair-success, got {other:?}"),
        };
        let completed =
            pair::parse_pair_success(&node).and_then(|p| pair::complete_pairing(&self.creds, &p));
        match completed {
            Ok((account, reply)) => {
                self.conn.send(reply).await.unwrap();
                Ok(account)
            }
            Err(e) => {
                self.conn
                    .send(pair::pair_error_reply(&id, &e))
                    .await
                    .unwrap();
                Err(e)
            }
        }
    }
}

/// Pairs fresh credentials through the virtual phone (QR of the first ref, scanned while
/// the client answers), checks the 515 that follows, and returns them paired.
pub async fn pair_new(sim: &Handle, phone: Option<&str>) -> Credentials {
    let mut showing = show_qr(&target(sim)).await;
    assert_eq!(showing.refs.len(), 6);
    let qr = showing.qr(0);
    let (phone_sim, phone) = (sim.clone(), phone.map(str::to_string));
    let scan = tokio::spawn(async move { phone_sim.scan(&qr, phone.as_deref()).await });
    let account = showing.answer_pair_success().await.unwrap();
    let jid = scan.await.unwrap().unwrap();
    assert_eq!(jid, account.jid);
    assert_eq!(closed(&mut showing.events).await, Cause::RestartRequired);
    let mut creds = showing.creds;
    creds.account = Some(account);
    creds
}

// ---------------------------------------------------------------------------
// The acking test client (issue 11): a raw socket that reads every node, acks what the
// test says, and uploads pre-keys, so the strict simulator's rules can be checked.
// ---------------------------------------------------------------------------

/// Dials and shakes hands on a raw socket (no connection task).
pub async fn raw_connect(target: &Target, creds: &Credentials) -> load::ClientSocket {
    load::connect(target, creds).await.unwrap()
}

/// The next node on a raw socket (panics after `WAIT`).
pub async fn recv(socket: &mut load::ClientSocket) -> Node {
    tokio::time::timeout(WAIT, socket.recv_node())
        .await
        .expect("no node in time")
        .unwrap()
}

/// Logs in on a raw socket and checks `<success>`; nothing after it is read yet.
pub async fn raw_login(target: &Target, creds: &Credentials) -> load::ClientSocket {
    let mut socket = raw_connect(target, creds).await;
    let first = recv(&mut socket).await;
    assert_eq!(first.tag, "success", "expected <success>, got {first:?}");
    socket
}

/// The JID of paired credentials.
pub fn own_jid(creds: &Credentials) -> String {
    creds.account.as_ref().unwrap().jid.clone()
}

/// Reads everything the simulator pushed so far (a ping marks the end: it is answered after
/// the pushes and after every ack sent before it), acking each stanza `ack` picks. Returns
/// the nodes read, in order, without the ping's answer.
pub async fn drain(
    socket: &mut load::ClientSocket,
    own: &str,
    ack: impl Fn(&Node) -> bool,
) -> Vec<Node> {
    let ping = format!("drain-{}", rand::random::<u32>());
    socket.send_node(&stanza::ping(&ping)).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let node = recv(socket).await;
        if node.tag == "iq" && node.get_attr("id") == Some(ping.as_str()) {
            break;
        }
        if let Some(reply) = wasp::wa::ack::ack(&node, Some(own)).filter(|_| ack(&node)) {
            socket.send_node(&reply).await.unwrap();
        }
        seen.push(node);
    }
    // Acks sent after the ping: one more ping makes sure the simulator has read them.
    let settle = format!("settle-{}", rand::random::<u32>());
    socket.send_node(&stanza::ping(&settle)).await.unwrap();
    loop {
        let node = recv(socket).await;
        if node.tag == "iq" && node.get_attr("id") == Some(settle.as_str()) {
            return seen;
        }
        seen.push(node);
    }
}

/// A valid pre-key upload of one-time keys `ids`, signed with the credentials' identity.
pub fn prekey_upload(id: &str, creds: &Credentials, ids: std::ops::Range<u32>) -> Node {
    use wasp::wa::creds::KeyPair;
    use wasp::wa::prekey::{PreKey, upload};
    let keys: Vec<PreKey> = ids
        .map(|id| PreKey {
            id,
            key_pair: KeyPair::generate(),
        })
        .collect();
    upload(id, creds, &keys)
}

/// Sends an iq on a raw socket and returns its answer, acking any pushed stanza read
/// before it (the answer comes after them).
pub async fn raw_query(socket: &mut load::ClientSocket, own: &str, iq: Node) -> Node {
    let id = iq.get_attr("id").unwrap().to_string();
    socket.send_node(&iq).await.unwrap();
    loop {
        let node = recv(socket).await;
        if node.tag == "iq" && node.get_attr("id") == Some(id.as_str()) {
            return node;
        }
        if let Some(reply) = wasp::wa::ack::ack(&node, Some(own)) {
            socket.send_node(&reply).await.unwrap();
        }
    }
}
