//! A scripted server that plays two real Signal devices for the client's message tests:
//! the peer's phone and our own phone (in-memory stores from `wa::signal`). It answers usync
//! (our account: phone and device 3; the peer: its phone), bundle fetches and each
//! `<message>` (every copy decrypted by its device, the server ack, the peer's delivery
//! receipt and a reply). Include with `#[path = "common/phones.rs"] mod phones;` next to
//! `#[path = "common/scripted.rs"] mod scripted;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use wasp::net::messages::MessageEvent;
use wasp::wa::jid::Jid;
use wasp::wa::message::{Message, decode_padded, encode_padded};
use wasp::wa::messaging::keys::{bundle_answer, is_bundle_query, parse_bundle_query};
use wasp::wa::messaging::stanza::{Enc, Incoming, Outgoing, server_ack};
use wasp::wa::messaging::usync::{self, DeviceEntry, UserDevices};
use wasp::wa::node::Node;
use wasp::wa::signal::{self, MemoryStore, SignalAddress};
use wasp::wa::stanza;

use crate::scripted::{self, OWN, PEER, Socket, WAIT, unix_now};

/// The two Signal devices the server plays, and what they decrypted.
pub struct Phones {
    pub peer: MemoryStore,
    pub own_phone: MemoryStore,
    /// (message id, text) the peer's phone decrypted, in order.
    pub peer_got: Vec<(String, String)>,
    /// (destination, text) our own phone decrypted from device-sent copies.
    pub own_got: Vec<(String, String)>,
    /// The `type` of each copy for the peer, in order.
    pub peer_enc_types: Vec<String>,
    /// The padded plaintext of each copy the peer decrypted, in order.
    pub peer_plain: Vec<Vec<u8>>,
    /// Whether each stanza carried `<device-identity>`.
    pub identities: Vec<bool>,
    pub replies_sent: u32,
}

pub type Shared = Arc<Mutex<Phones>>;

pub fn own() -> Jid {
    OWN.parse().unwrap()
}

pub fn peer() -> Jid {
    PEER.parse().unwrap()
}

/// Answers one iq of the messaging flow; `None` when it is not one.
pub fn answer_iq(node: &Node, phones: &Shared) -> Option<Node> {
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
pub fn take_message(node: &Node, phones: &Shared) -> Vec<Node> {
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
            phones.peer_plain.push(got.plaintext);
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

pub async fn run_script(mut socket: Socket, log: scripted::Shared, phones: Shared) {
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

pub fn new_phones() -> Shared {
    Arc::new(Mutex::new(Phones {
        peer: MemoryStore::generate(),
        own_phone: MemoryStore::generate(),
        peer_got: Vec::new(),
        own_got: Vec::new(),
        peer_enc_types: Vec::new(),
        peer_plain: Vec::new(),
        identities: Vec::new(),
        replies_sent: 0,
    }))
}

/// Waits for the next event matching `pick`.
pub async fn next_event<T>(
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
