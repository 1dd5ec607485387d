//! Pairing against the simulator's virtual phone over real sockets: which QR texts it
//! accepts, a forged pair-success refused by the client and reported, a wrong device
//! signature refused, the phone number, and paired devices surviving a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sim_client;

use crate::sim_client::{closed, connect, login, pair_new, show_qr, target};
use wasp::sim::{Fault, Handle, ScanOptions, Server, SimConfig, SimError, Tamper};
use wasp::wa::node::{Content, Node};
use wasp::wa::pair::{self, PairError};
use wasp::wa::stanza::{Cause, Incoming};

async fn start() -> Handle {
    Server::start(SimConfig::default()).await.unwrap()
}

#[tokio::test]
async fn any_offered_ref_pairs_in_either_qr_form() {
    let sim = start().await;
    for old_form in [false, true] {
        let mut showing = show_qr(&target(&sim)).await;
        // The console has moved on to the fourth QR when the person scans.
        let qr = if old_form {
            showing.old_qr(3)
        } else {
            showing.qr(3)
        };
        let phone = sim.clone();
        let scan = tokio::spawn(async move { phone.scan(&qr, Some("+15550002222")).await });
        let account = showing.answer_pair_success().await.unwrap();
        let jid = scan.await.unwrap().unwrap();
        assert_eq!(jid, account.jid);
        assert!(jid.starts_with("15550002222:"), "{jid}");
        assert_eq!(closed(&mut showing.events).await, Cause::RestartRequired);
    }
    assert_eq!(sim.stats().pairings, 2);
    assert_eq!(sim.devices().len(), 2);
}

#[tokio::test]
async fn scans_of_qrs_no_connection_shows_are_refused() {
    let sim = start().await;
    let showing = show_qr(&target(&sim)).await;
    let stale = showing
        .qr(0)
        .replace(&showing.refs[0], "2@not-a-ref-it-was-given");
    assert!(matches!(
        sim.scan(&stale, None).await,
        Err(SimError::UnknownRef)
    ));
    let stranger = show_qr(&target(&sim)).await;
    let gone = stranger.qr(0);
    drop(stranger);
    // Once the client has left, nobody shows its QR.
    for _ in 0..500 {
        if sim.stats().pending_pairings == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(matches!(
        sim.scan(&gone, None).await,
        Err(SimError::NoSuchPairing)
    ));
    assert!(matches!(
        sim.scan("hello", None).await,
        Err(SimError::BadQr(_))
    ));
    assert!(matches!(
        sim.scan(&showing.qr(0), Some("12-34")).await,
        Err(SimError::BadPhone(_))
    ));
    // None of that paired anything, and the client still shows its QR.
    assert!(sim.devices().is_empty());
    assert_eq!(sim.stats().pending_pairings, 1);
}

#[tokio::test]
async fn a_forged_pair_success_is_refused_by_the_client_and_reported() {
    let sim = start().await;
    for (tamper, client_error, counted) in [
        (
            Tamper::Hmac,
            PairError::BadHmac.to_string(),
            "client_reported_bad_hmac",
        ),
        (
            Tamper::AccountSignature,
            PairError::BadAccountSignature.to_string(),
            "client_reported_bad_signature",
        ),
    ] {
        let mut showing = show_qr(&target(&sim)).await;
        let qr = showing.qr(0);
        let phone = sim.clone();
        let options = ScanOptions {
            phone: None,
            tamper: Some(tamper),
        };
        let scan = tokio::spawn(async move { phone.scan_with(&qr, options).await });
        let refused = showing.answer_pair_success().await.unwrap_err();
        assert_eq!(refused.to_string(), client_error);
        let err = scan.await.unwrap().unwrap_err();
        assert!(matches!(err, SimError::PairingFailed(_)), "{err}");
        assert_eq!(sim.stats().errors.get(counted), Some(&1), "{tamper:?}");
    }
    assert!(sim.devices().is_empty());
    assert_eq!(sim.stats().pairings, 0);
}

#[tokio::test]
async fn a_wrong_device_signature_is_refused_and_counted() {
    let sim = start().await;
    let mut showing = show_qr(&target(&sim)).await;
    let qr = showing.qr(0);
    let phone = sim.clone();
    let scan = tokio::spawn(async move { phone.scan(&qr, None).await });
    let node =
        match wasp::wa::stanza::classify(sim_client::next_node(&mut showing.events).await.unwrap())
        {
            Incoming::PairSuccess { node, .. } => node,
            other => panic!("expected pair-success, got {other:?}"),
        };
    let parsed = pair::parse_pair_success(&node).unwrap();
    let (_, mut reply) = pair::complete_pairing(&showing.creds, &parsed).unwrap();
    // Flip a bit in the signed identity the client sends back.
    let sign = reply.get_child("pair-device-sign").unwrap();
    let identity = sign.get_child("device-identity").unwrap();
    let mut bytes = identity.content_bytes().unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = Node::new("device-identity")
        .attr("key-index", identity.get_attr("key-index").unwrap())
        .bytes(bytes);
    reply.content = Content::Nodes(vec![Node::new("pair-device-sign").child(forged)]);
    showing.conn.send(reply).await.unwrap();
    let err = scan.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("pair-device-sign"), "{err}");
    assert_eq!(sim.stats().errors.get("bad_device_signature"), Some(&1));
    assert!(sim.devices().is_empty());
}

#[tokio::test]
async fn a_restarted_simulator_still_knows_paired_devices() {
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        state_file: Some(dir.path().join("sim.json")),
        ..SimConfig::default()
    };
    let first = Server::start(config.clone()).await.unwrap();
    let kept = pair_new(&first, Some("15550003333")).await;
    let removed = pair_new(&first, None).await;
    let removed_jid = removed.account.as_ref().unwrap().jid.clone();
    first.fault(&removed_jid, Fault::Logout).await.unwrap();
    first.shutdown();
    first.stopped().await;

    let second = Server::start(config).await.unwrap();
    assert_eq!(second.trust_root, first.trust_root);
    assert_eq!(
        second.devices(),
        [kept.account.as_ref().unwrap().jid.clone()]
    );
    let (conn, _events) = login(&target(&second), &kept).await;
    conn.ping(sim_client::WAIT).await.unwrap();
    let (_c, mut events) = connect(&target(&second), &removed).await;
    assert_eq!(closed(&mut events).await, Cause::LoggedOut);
    // A new pairing does not reuse a device number.
    let again = pair_new(&second, Some("15550003333")).await;
    assert_ne!(again.account.unwrap().jid, kept.account.unwrap().jid);
}
