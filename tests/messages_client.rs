//! The client's message flows against a scripted server on 127.0.0.1 that plays two real
//! Signal devices (the peer's phone and our own phone, in-memory stores from `wa::signal`):
//! wasp sends texts (usync, bundle fetch, one copy per device, a device-sent copy for our
//! phone, `<device-identity>` while any copy is a pkmsg) that the peer decrypts in order;
//! the server ack and the peer's receipt become status events; the peer's replies are
//! decrypted and answered with delivery receipts; an undecryptable message gets a retry
//! receipt and a plain ack; after a restart the ratchet continues from keys.db.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use wasp::net::messages::{MessageEvent, MessageEventKind, MessageStatus};
use wasp::session::status::StateName;
use wasp::wa::jid::Jid;
use wasp::wa::message::{Message, decode_padded, encode_padded};
use wasp::wa::messaging::keys::{bundle_answer, is_bundle_query, parse_bundle_query};
use wasp::wa::messaging::stanza::{Enc, Incoming, Outgoing, server_ack};
use wasp::wa::messaging::usync::{self, DeviceEntry, UserDevices};
use wasp::wa::node::Node;
use wasp::wa::signal::{self, EncType, MemoryStore, SignalAddress};
use wasp::wa::stanza;

#[path = "common/scripted.rs"]
mod scripted;

use scripted::{OWN, PEER, Socket, WAIT, pool, server, unix_now, wait_until};

/// The two Signal devices the server plays, and what they decrypted.
struct Phones {
    peer: MemoryStore,
    own_phone: MemoryStore,
    /// (message id, text) the peer's phone decrypted, in order.
    peer_got: Vec<(String, String)>,
    /// (destination, text) our own phone decrypted from device-sent copies.
    own_got: Vec<(String, String)>,
    /// The `type` of each copy for the peer, in order.
    peer_enc_types: Vec<String>,
    /// Whether each stanza carried `<device-identity>`.
    identities: Vec<bool>,
    replies_sent: u32,
}

type Shared = Arc<Mutex<Phones>>;

fn own() -> Jid {
    OWN.parse().unwrap()
}

fn peer() -> Jid {
    PEER.parse().unwrap()
}

/// Answers one iq of the messaging flow; `None` when it is not one.
fn answer_iq(node: &Node, phones: &Shared) -> Option<Node> {
    let id = node.get_attr("id").unwrap_or_default();
    if usync::is_query(node) {
        let query = usync::parse_query(node).unwrap();
        let users = query
            .users
            .iter()
            .map(|u| {
                let devices = if u.same_user(&own()) {
                    vec![
                        DeviceEntry {
                            id: 0,
                            key_index: 0,
                        },
                        DeviceEntry {
                            id: 3,
                            key_index: 1,
                        },
                    ]
                } else {
                    vec![DeviceEntry {
                        id: 0,
                        key_index: 0,
                    }]
                };
                UserDevices {
                    jid: u.clone(),
                    devices,
                    lid: None,
                    error: None,
                }
            })
            .collect::<Vec<_>>();
        return Some(usync::answer(&query, &users));
    }
    if is_bundle_query(node) {
        let mut phones = phones.lock().unwrap();
        let entries = parse_bundle_query(node)
            .unwrap()
            .into_iter()
            .map(|jid| {
                let store = if jid.same_user(&own()) {
                    &mut phones.own_phone
                } else {
                    &mut phones.peer
                };
                let key = store.generate_prekeys(1).remove(0);
                let bundle = store.bundle(Some(&key));
                (jid, Ok(bundle))
            })
            .collect::<Vec<_>>();
        return Some(bundle_answer(id, &entries));
    }
    None
}

/// The server's side of one `<message>` from wasp: each copy decrypted by its device, the
/// ack, the peer's delivery receipt, and the peer's reply.
fn take_message(node: &Node, phones: &Shared) -> Vec<Node> {
    let out = Outgoing::parse(node).unwrap();
    let mut phones = phones.lock().unwrap();
    phones.identities.push(out.device_identity.is_some());
    let sender = SignalAddress::of(&own());
    for (jid, enc) in &out.copies {
        let kind = enc.enc_type().unwrap();
        if jid.same_user(&own()) {
            let got = signal::decrypt(&mut phones.own_phone, &sender, kind, &enc.ciphertext)
                .expect("our phone decrypts its copy");
            let (m, _) = decode_padded(&got.plaintext).unwrap();
            let dest = m.destination().unwrap().to_string();
            let text = m.text_body().unwrap().to_string();
            phones.own_got.push((dest, text));
        } else {
            phones.peer_enc_types.push(enc.kind.clone());
            let got = signal::decrypt(&mut phones.peer, &sender, kind, &enc.ciphertext)
                .expect("the peer decrypts its copy");
            let (m, _) = decode_padded(&got.plaintext).unwrap();
            let text = m.text_body().unwrap().to_string();
            phones.peer_got.push((out.id.clone(), text));
        }
    }
    let t = unix_now();
    let mut answers = vec![
        server_ack(&out.id, &peer(), t, None),
        Node::new("receipt")
            .attr("from", PEER)
            .attr("id", out.id.as_str())
            .attr("t", t.to_string()),
    ];
    let n = phones.replies_sent;
    phones.replies_sent += 1;
    let text = format!("reply {n}");
    let (kind, bytes) = signal::encrypt(
        &mut phones.peer,
        &SignalAddress::of(&own()),
        &encode_padded(&Message::text(&text)),
    )
    .unwrap();
    answers.push(
        Incoming {
            id: format!("R{n}"),
            from: peer(),
            t,
            kind: "text".into(),
            recipient: None,
            participant: None,
            sender_lid: None,
            notify: None,
            offline: false,
            encs: vec![Enc::new(kind, bytes)],
        }
        .node(),
    );
    answers
}

async fn run_script(mut socket: Socket, log: scripted::Shared, phones: Shared) {
    let success = Node::new("success").attr("t", unix_now().to_string());
    if socket.send_node(&success).await.is_err() {
        return;
    }
    loop {
        let Ok(node) = socket.recv_node().await else {
            return;
        };
        log.lock().unwrap().nodes.push(node.clone());
        let answers = if node.tag == "iq" {
            let id = node.get_attr("id").unwrap_or_default().to_string();
            let reply = answer_iq(&node, &phones).unwrap_or_else(|| {
                if node.get_child("count").is_some() {
                    stanza::iq_result(&id).child(Node::new("count").attr("value", "800"))
                } else {
                    stanza::iq_result(&id)
                }
            });
            vec![reply]
        } else if node.tag == "message" {
            take_message(&node, &phones)
        } else {
            Vec::new()
        };
        for answer in answers {
            if socket.send_node(&answer).await.is_err() {
                return;
            }
        }
    }
}

fn new_phones() -> Shared {
    Arc::new(Mutex::new(Phones {
        peer: MemoryStore::generate(),
        own_phone: MemoryStore::generate(),
        peer_got: Vec::new(),
        own_got: Vec::new(),
        peer_enc_types: Vec::new(),
        identities: Vec::new(),
        replies_sent: 0,
    }))
}

/// Waits for the next event matching `pick`.
async fn next_event<T>(
    events: &mut broadcast::Receiver<MessageEvent>,
    mut pick: impl FnMut(&MessageEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("timed out waiting for a message event")
            .unwrap();
        assert_eq!(event.session, "c1");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

const TEXTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_go_out_encrypted_per_device_and_replies_come_back_in_order() {
    let phones = new_phones();
    let script_phones = phones.clone();
    let srv = server(
        move |_, socket, log| run_script(socket, log, script_phones.clone()),
        false,
    )
    .await;
    let (p, _config) = pool(&srv, true, None);
    p.wait_state(StateName::Online).await;
    let handle = p.running.handle.clone();
    let mut events = handle.message_events();

    let mut ids = Vec::new();
    for i in 0..TEXTS {
        let id = handle
            .send_text("c1", "+15551234567", &format!("text {i}"))
            .await
            .unwrap();
        ids.push(id.0);
    }
    // Every message: server ack (sent), then the peer's receipt (delivered); every reply
    // received, in order, with its text.
    let mut delivered = Vec::new();
    let mut received = Vec::new();
    while delivered.len() < TEXTS || received.len() < TEXTS {
        next_event(&mut events, |e| {
            match &e.kind {
                MessageEventKind::Status {
                    id,
                    chat,
                    status: MessageStatus::Delivered,
                } => {
                    assert_eq!(chat, PEER);
                    delivered.push(id.clone());
                }
                MessageEventKind::Status {
                    status: MessageStatus::Failed(why),
                    ..
                } => panic!("a message failed: {why}"),
                MessageEventKind::Received(m) => {
                    assert_eq!(m.chat, PEER);
                    assert!(!m.from_me);
                    received.push((m.id.clone(), m.text.clone().unwrap()));
                }
                _ => {}
            }
            Some(())
        })
        .await;
    }
    assert_eq!(delivered, ids, "each message delivered once, in order");
    let want: Vec<(String, String)> = (0..TEXTS)
        .map(|i| (format!("R{i}"), format!("reply {i}")))
        .collect();
    assert_eq!(received, want, "replies decrypted in order");

    {
        let phones = phones.lock().unwrap();
        let got: Vec<(String, String)> = (0..TEXTS)
            .map(|i| (ids[i].clone(), format!("text {i}")))
            .collect();
        assert_eq!(
            phones.peer_got, got,
            "the peer decrypted every text in order"
        );
        let own: Vec<(String, String)> = (0..TEXTS)
            .map(|i| (PEER.to_string(), format!("text {i}")))
            .collect();
        assert_eq!(phones.own_got, own, "our phone got device-sent copies");
        assert_eq!(phones.peer_enc_types[0], "pkmsg");
        assert_eq!(
            phones.peer_enc_types.last().map(String::as_str),
            Some("msg"),
            "once the peer answered, copies are plain msg"
        );
        // Our phone never answers, so a pkmsg copy is in every stanza.
        assert!(phones.identities.iter().all(|&i| i));
        for id in &ids {
            assert!(id.starts_with("3EB0") && id.len() == 22, "{id}");
        }
    }
    // Each reply was answered with a delivery receipt, not a plain ack.
    wait_until("receipts for every reply", || {
        let log = srv.log.lock().unwrap();
        (0..TEXTS).all(|i| {
            let id = format!("R{i}");
            log.nodes.iter().any(|n| {
                n.tag == "receipt"
                    && n.get_attr("id") == Some(id.as_str())
                    && n.get_attr("to") == Some(PEER)
                    && n.get_attr("type").is_none()
            })
        })
    })
    .await;
    let log = srv.log.lock().unwrap();
    assert!(
        !log.nodes
            .iter()
            .any(|n| n.tag == "ack" && n.get_attr("class") == Some("message")),
        "decrypted messages get receipts only"
    );
    // One usync for both users, served from the cache afterwards.
    let usyncs = log.nodes.iter().filter(|n| usync::is_query(n)).count();
    assert_eq!(usyncs, 1, "device lists cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecryptable_message_gets_a_retry_receipt_and_a_plain_ack() {
    let garbage: Arc<Mutex<Option<Node>>> = Arc::default();
    let push = garbage.clone();
    let srv = server(
        move |_, mut socket, log| {
            let push = push.clone();
            async move {
                let success = Node::new("success").attr("t", unix_now().to_string());
                socket.send_node(&success).await.unwrap();
                let bad = Incoming {
                    id: "BAD1".into(),
                    from: peer(),
                    t: 1_700_000_000,
                    kind: "text".into(),
                    recipient: None,
                    participant: None,
                    sender_lid: None,
                    notify: None,
                    offline: false,
                    encs: vec![Enc::new(EncType::Msg, vec![0x33, 1, 2, 3])],
                }
                .node();
                *push.lock().unwrap() = Some(bad.clone());
                socket.send_node(&bad).await.unwrap();
                while scripted::serve_node(&mut socket, &log, 800).await.is_some() {}
            }
        },
        false,
    )
    .await;
    let (p, _config) = pool(&srv, true, None);
    p.wait_state(StateName::Online).await;
    wait_until("a retry receipt and an ack", || {
        let log = srv.log.lock().unwrap();
        let retry = log.nodes.iter().find(|n| {
            n.tag == "receipt"
                && n.get_attr("type") == Some("retry")
                && n.get_attr("id") == Some("BAD1")
        });
        let ack = log.nodes.iter().any(|n| {
            n.tag == "ack"
                && n.get_attr("class") == Some("message")
                && n.get_attr("id") == Some("BAD1")
        });
        retry.is_some_and(|r| {
            let retry = r.get_child("retry").unwrap();
            assert_eq!(retry.get_attr("count"), Some("1"));
            assert_eq!(r.get_attr("to"), Some(PEER));
            assert!(r.get_child("registration").is_some());
            assert!(r.get_child("keys").is_none(), "no keys on the first try");
            true
        }) && ack
    })
    .await;
    assert_eq!(
        p.running.handle.metrics.decrypt_failures.get(),
        1,
        "counted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ratchet_survives_a_restart_in_keys_db() {
    let phones = new_phones();
    let script_phones = phones.clone();
    let srv = server(
        move |_, socket, log| run_script(socket, log, script_phones.clone()),
        false,
    )
    .await;
    let (p, _config) = pool(&srv, true, None);
    p.wait_state(StateName::Online).await;
    let mut events = p.running.handle.message_events();
    p.running
        .handle
        .send_text("c1", PEER, "before")
        .await
        .unwrap();
    next_event(&mut events, |e| match &e.kind {
        MessageEventKind::Received(m) => Some(m.text.clone()),
        _ => None,
    })
    .await;

    let p = p.restart(&srv).await;
    p.wait_state(StateName::Online).await;
    let mut events = p.running.handle.message_events();
    // The messenger learns the login right after the driver; retry until it has.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match p.running.handle.send_text("c1", PEER, "after").await {
            Ok(_) => break,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let reply = next_event(&mut events, |e| match &e.kind {
        MessageEventKind::Received(m) => Some(m.text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reply.as_deref(), Some("reply 1"));
    let phones = phones.lock().unwrap();
    assert_eq!(
        phones
            .peer_got
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>(),
        ["before", "after"]
    );
    assert_eq!(
        phones.peer_enc_types,
        ["pkmsg", "msg"],
        "no new session after the restart: the ratchet came from keys.db"
    );
}
