//! The simulator as a relay between Signal peers, over real sockets: a test client built
//! from the `wa` parts (usync, bundle fetch, Signal in memory, the message stanzas) talks to
//! simulated phones and to another test client, online and offline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use crate::relay_peer::{Peer, wait_for};
use wasp::sim::{Handle, Server, SimConfig};
use wasp::wa::jid::Jid;
use wasp::wa::message::{self, Message};
use wasp::wa::messaging::keys::{bundle_query, parse_bundle_answer};
use wasp::wa::messaging::receipt::ReceiptKind;
use wasp::wa::messaging::stanza::{Enc, Incoming, Outgoing};
use wasp::wa::node::Node;
use wasp::wa::prekey;
use wasp::wa::signal::{self, SignalAddress};

async fn sim() -> Handle {
    let config = SimConfig {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..SimConfig::default()
    };
    Server::start(config).await.unwrap()
}

#[tokio::test]
async fn a_device_and_a_simulated_phone_exchange_texts_both_ways() {
    let sim = sim().await;
    let admin = sim.admin_url.clone().unwrap();
    let made = common::request(
        &admin,
        "POST",
        "/admin/account",
        None,
        r#"{"phone": "15550002222"}"#,
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert_eq!(made.json()["jid"], "15550002222@s.whatsapp.net");
    let mut a = Peer::new(&sim, "15550001111").await;

    let mut sent = Vec::new();
    for i in 0..100 {
        sent.push(a.send("15550002222", &format!("hello {i}")).await);
    }
    // P's phone decrypted all of them, in order, with the right text.
    let got = sim.messages("15550002222").unwrap();
    let texts: Vec<_> = got.iter().map(|m| m.text.clone().unwrap()).collect();
    assert_eq!(
        texts,
        (0..100).map(|i| format!("hello {i}")).collect::<Vec<_>>()
    );
    assert_eq!(got.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), sent);
    assert!(got.iter().all(|m| m.from == a.jid.to_string()));
    // A's own phone got the device-sent copies, with the chat they went to.
    let own = sim.messages("15550001111").unwrap();
    assert_eq!(own.len(), 100);
    assert!(
        own.iter()
            .all(|m| m.to.as_deref() == Some("15550002222@s.whatsapp.net"))
    );
    // A sees a delivery receipt from P's phone for each.
    a.pump_until(|p| {
        p.receipts
            .iter()
            .filter(|(_, k)| *k == ReceiptKind::Delivered)
            .count()
            >= 100
    })
    .await;
    for id in &sent {
        assert!(
            a.receipts.contains(&(id.clone(), ReceiptKind::Delivered)),
            "{id}"
        );
    }

    // P answers through the admin API; A decrypts all, in order.
    for i in 0..100 {
        let body = format!(r#"{{"from": "15550002222", "to": "15550001111", "text": "back {i}"}}"#);
        let answer = common::request(&admin, "POST", "/admin/send", None, &body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.json()["id"].as_str().unwrap().starts_with("3EB0"));
    }
    a.pump_until(|p| p.texts.len() >= 100).await;
    let texts: Vec<_> = a.texts.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(
        texts,
        (0..100).map(|i| format!("back {i}")).collect::<Vec<_>>()
    );
    wait_for("P's receipts", || {
        sim.phone_receipts("15550002222")
            .get("delivered")
            .copied()
            .unwrap_or(0)
            >= 100
    })
    .await;

    let listed =
        common::request(&admin, "GET", "/admin/messages?phone=15550002222", None, "").await;
    assert_eq!(listed.json()["messages"].as_array().unwrap().len(), 100);
    let unknown =
        common::request(&admin, "GET", "/admin/messages?phone=15559999999", None, "").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let stats = sim.stats();
    assert!(stats.messages_relayed >= 400, "{stats:?}");
    assert!(stats.receipts_forwarded >= 200, "{stats:?}");
    assert_eq!(stats.decrypt_failures, 0, "{stats:?}");
    sim.shutdown();
}

#[tokio::test]
async fn an_offline_device_gets_its_queue_at_login_in_order_and_once() {
    let sim = sim().await;
    let mut a = Peer::new(&sim, "15550003333").await;
    let mut b = Peer::new(&sim, "15550004444").await;
    // B goes offline.
    b.offline().await;
    wait_for("B offline", || {
        !sim.live_devices().contains(&b.jid.to_string())
    })
    .await;

    let mut sent = Vec::new();
    // More than the old mailbox bound of 256.
    for i in 0..300 {
        sent.push(a.send("15550004444", &format!("while away {i}")).await);
    }
    assert!(sim.stats().messages_queued >= 300, "{:?}", sim.stats());
    b.relogin(&sim).await;
    b.pump_until(|p| p.texts.len() >= 300).await;
    let ids: Vec<_> = b.texts.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, sent, "in order, none twice");
    // B's receipts reach A.
    a.pump_until(|p| {
        sent.iter().all(|id| {
            p.receipts
                .iter()
                .any(|(r, k)| r == id && *k == ReceiptKind::Delivered)
        })
    })
    .await;
    // Nothing comes twice after another login.
    b.relogin(&sim).await;
    let again = b
        .query(
            Node::new("iq")
                .attr("id", "p")
                .attr("type", "get")
                .attr("xmlns", "w:p")
                .attr("to", "s.whatsapp.net"),
        )
        .await;
    assert_eq!(again.get_attr("type"), Some("result"));
    assert_eq!(b.texts.len(), 300);
    sim.shutdown();
}

#[tokio::test]
async fn bundle_fetches_use_up_one_time_keys_and_warn_the_device() {
    let sim = sim().await;
    let mut a = Peer::new(&sim, "15550005555").await;
    let b = Peer::new(&sim, "15550006666").await;
    let b_jid = b.jid.clone();
    let mut seen_ids = Vec::new();
    for i in 0..17 {
        let answer = a
            .query(bundle_query(
                &format!("b{i}"),
                std::slice::from_ref(&b_jid),
                true,
            ))
            .await;
        let (_, bundle) = parse_bundle_answer(&answer).unwrap().remove(0);
        let bundle = bundle.unwrap();
        assert_eq!(bundle.identity, b.creds.identity.public);
        seen_ids.push(bundle.one_time.unwrap().id);
    }
    seen_ids.dedup();
    assert_eq!(seen_ids.len(), 17, "each one-time key is handed out once");
    // B is told once it runs low (below 5 of 20 left) with an encrypt notification.
    let mut b = b;
    b.pump_until(|p| {
        p.seen.iter().any(|n| {
            n.tag == "notification"
                && n.get_attr("type") == Some("encrypt")
                && n.get_child("count").and_then(|c| c.get_attr("value")) == Some("4")
        })
    })
    .await;
    let count = b.query(wasp::wa::stanza::prekey_count_query("c1")).await;
    assert_eq!(prekey::count_of(&count), Some(3));
    // A fetch with no one-time key left still gets a bundle without <key>.
    for i in 0..3 {
        a.query(bundle_query(
            &format!("x{i}"),
            std::slice::from_ref(&b_jid),
            true,
        ))
        .await;
    }
    let answer = a
        .query(bundle_query("last", std::slice::from_ref(&b_jid), true))
        .await;
    let (_, bundle) = parse_bundle_answer(&answer).unwrap().remove(0);
    assert_eq!(bundle.unwrap().one_time, None);
    // An unknown device is a per-user error.
    let answer = a
        .query(bundle_query(
            "u",
            &["15550006666:9@s.whatsapp.net".parse().unwrap()],
            true,
        ))
        .await;
    assert!(parse_bundle_answer(&answer).unwrap()[0].1.is_err());
    sim.shutdown();
}

#[tokio::test]
async fn retry_receipts_heal_both_directions() {
    use wasp::wa::messaging::receipt::{RetryKeys, parse_retry, retry_receipt};
    let sim = sim().await;
    sim.create_account("15550008888").unwrap();
    let mut a = Peer::new(&sim, "15550007777").await;
    a.send("15550008888", "first").await;

    // A copy the phone cannot decrypt: a tampered msg (bad MAC).
    let phone: Jid = "15550008888@s.whatsapp.net".parse().unwrap();
    let address = SignalAddress::of(&phone);
    let original = Message::text("second");
    let (kind, mut bytes) =
        signal::encrypt(&mut a.store, &address, &message::encode_padded(&original)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    let id = message::new_message_id(1_700_000_500, "15550007777");
    let out = Outgoing {
        id: id.clone(),
        to: phone.clone(),
        kind: "text".into(),
        copies: vec![(phone.clone(), Enc::new(kind, bytes))],
        // Still a pkmsg (the phone has not answered yet): the server wants the identity.
        device_identity: Some(a.creds.account.as_ref().unwrap().signed_identity.clone()),
        retry: false,
    };
    a.sock().send_node(&out.node()).await.unwrap();
    // The phone asks for it again.
    a.pump_until(|p| {
        p.receipts
            .iter()
            .any(|(r, k)| *r == id && *k == ReceiptKind::Retry)
    })
    .await;
    assert_eq!(sim.stats().decrypt_failures, 1);
    // A resends the same id to that one device; the phone decrypts it.
    let (kind, bytes) =
        signal::encrypt(&mut a.store, &address, &message::encode_padded(&original)).unwrap();
    let mut enc = Enc::new(kind, bytes);
    enc.count = Some(1);
    let resend = Outgoing {
        copies: vec![(phone.clone(), enc)],
        retry: true,
        ..out
    };
    a.sock().send_node(&resend.node()).await.unwrap();
    let got = || sim.messages("15550008888").unwrap();
    wait_for("the resend", || got().iter().any(|m| m.id == id)).await;
    assert_eq!(got().last().unwrap().text.as_deref(), Some("second"));

    // The other way: A claims it could not decrypt the phone's message and sends fresh
    // keys; the phone starts a new session from them and resends.
    let sent = sim
        .send_text("15550008888", "15550007777", "please retry")
        .unwrap();
    a.pump_until(|p| p.texts.iter().any(|(i, _)| *i == sent))
        .await;
    let node_from_phone = Incoming {
        id: sent.clone(),
        from: phone.clone(),
        t: 1,
        kind: "text".into(),
        recipient: None,
        participant: None,
        sender_lid: None,
        notify: None,
        offline: false,
        encs: vec![],
    };
    let key = a.store.generate_prekeys(1).remove(0);
    let bundle = a.store.bundle(Some(&key));
    let keys = RetryKeys {
        identity: bundle.identity,
        one_time: bundle.one_time.unwrap(),
        signed: bundle.signed,
        device_identity: vec![],
    };
    let registration = a.store.local().registration_id;
    let retry = retry_receipt(&node_from_phone, 2, registration, Some(&keys));
    assert_eq!(parse_retry(&retry, "to").unwrap().count, 2);
    signal::delete_session(&mut a.store, &address).unwrap();
    let before = a.texts.len();
    let failures = sim.stats().decrypt_failures;
    a.sock().send_node(&retry).await.unwrap();
    a.pump_until(|p| p.texts.len() > before).await;
    assert_eq!(a.texts.last().unwrap(), &(sent, "please retry".to_string()));
    // The retry was for a copy the relay carried (it was already closed by the delivery
    // receipt, so it is not counted again); the resend is delivered once more.
    assert_eq!(sim.stats().decrypt_failures, failures);
    sim.shutdown();
}

#[tokio::test]
async fn two_devices_of_one_account_and_lid_addressing() {
    let sim = sim().await;
    let mut a1 = Peer::new(&sim, "15550010001").await;
    let mut a2 = Peer::new(&sim, "15550010001").await;
    let mut b = Peer::new(&sim, "15550020002").await;
    assert_eq!((a1.jid.device, a2.jid.device), (1, 2));
    // A1 is told that A2 joined the account.
    a1.pump_until(|p| {
        p.seen.iter().any(|n| {
            n.get_attr("type") == Some("devices")
                && n.get_child("add")
                    .and_then(|a| a.get_child("device"))
                    .and_then(|d| d.get_attr("jid"))
                    == Some("15550010001:2@s.whatsapp.net")
        })
    })
    .await;

    // A1 to B: B decrypts; A2 gets the device-sent copy with the chat as recipient.
    let id = a1.send("15550020002", "to b").await;
    b.pump_until(|p| p.texts.len() == 1).await;
    assert_eq!(b.texts[0], (id.clone(), "to b".to_string()));
    a2.pump_until(|p| p.texts.len() == 1).await;
    assert_eq!(a2.texts[0], (id.clone(), "to b".to_string()));
    let own = sim.messages("15550010001").unwrap();
    assert_eq!(own[0].to.as_deref(), Some("15550020002@s.whatsapp.net"));

    // B answers addressing A's devices by LID; both of A's devices and A's phone get it.
    let back = b.send_as("15550010001", "to a", true).await;
    a1.pump_until(|p| p.texts.iter().any(|(i, _)| *i == back))
        .await;
    a2.pump_until(|p| p.texts.iter().any(|(i, _)| *i == back))
        .await;
    let phone = sim.messages("15550010001").unwrap();
    assert!(
        phone
            .iter()
            .any(|m| m.id == back && m.text.as_deref() == Some("to a"))
    );
    // A1's receipt reaches B.
    b.pump_until(|p| p.receipts.iter().any(|(r, _)| *r == back))
        .await;
    let stats = sim.stats();
    assert_eq!(stats.messages_unroutable, 0, "{stats:?}");
    assert_eq!(stats.decrypt_failures, 0, "{stats:?}");
    sim.shutdown();
}

#[tokio::test]
async fn uploaded_keys_survive_a_restart_of_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        state_file: Some(dir.path().join("sim.json")),
        ..SimConfig::default()
    };
    let first = Server::start(config.clone()).await.unwrap();
    let b = Peer::new(&first, "15550030003").await;
    let b_jid = b.jid.clone();
    drop(b);
    first.shutdown();
    first.stopped().await;

    let again = Server::start(config).await.unwrap();
    let mut a = Peer::new(&again, "15550040004").await;
    let answer = a
        .query(bundle_query("k", std::slice::from_ref(&b_jid), true))
        .await;
    let (_, bundle) = parse_bundle_answer(&answer).unwrap().remove(0);
    let bundle = bundle.unwrap();
    assert_eq!(bundle.one_time.unwrap().id, 1);
    // And a message to the restarted device's account is routed (its phone is new).
    a.send("15550030003", "after restart").await;
    let got = again.messages("15550030003").unwrap();
    assert_eq!(got[0].text.as_deref(), Some("after restart"));
    again.shutdown();
}
