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

use wasp::net::messages::{MessageEventKind, MessageStatus};
use wasp::session::status::StateName;
use wasp::wa::messaging::stanza::{Enc, Incoming};
use wasp::wa::messaging::usync;
use wasp::wa::node::Node;
use wasp::wa::signal::EncType;

use crate::scripted;

use crate::phones::{new_phones, next_event, peer, run_script};
use crate::scripted::{PEER, WAIT, pool, server, unix_now, wait_until};

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
