//! The simulator's side of pairing by code, spoken to stanza by stanza: it refuses a
//! `companion_hello` the real server would not accept (display, Noise key), a finish before
//! any code, codes for numbers nobody asked for; with the right code the companion gets
//! `primary_hello`, its `companion_finish` is accepted and `pair-success` checks out against
//! the adv secret both ends derived, then 515.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::sim_client::{closed, next_node, show_qr, target};
use wasp::net::conn::ConnError;
use wasp::sim::{Server, SimConfig, SimError};
use wasp::wa::device::DeviceName;
use wasp::wa::node::{Content, Node};
use wasp::wa::pair_code::{self, CompanionCode, LinkCode};
use wasp::wa::stanza::Cause;

const WAIT: Duration = Duration::from_secs(30);

fn refused_with(result: Result<Node, ConnError>) -> u16 {
    match result {
        Err(ConnError::IqError { code, .. }) => code,
        other => panic!("expected an iq error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_checks_each_code_stanza_and_pairs_with_the_right_code() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let mut showing = show_qr(&target(&sim)).await;
    let code = LinkCode::random();
    let mut companion = CompanionCode::new("15550007777".into(), code.clone());
    let device = DeviceName::default();
    let noise = showing.creds.noise.public;

    // A display the server does not know: 400.
    let mut odd = companion.hello("h1", &noise, &device);
    if let Content::Nodes(list) = &mut odd.content
        && let Content::Nodes(reg) = &mut list[0].content
    {
        let display = reg
            .iter_mut()
            .find(|n| n.tag == "companion_platform_display")
            .unwrap();
        *display = Node::new("companion_platform_display").text("Lynx (Plan9)");
    }
    assert_eq!(refused_with(showing.conn.query(odd, WAIT).await), 400);
    // Another connection's Noise key: 400.
    let other = companion.hello("h2", &[9; 32], &device);
    assert_eq!(refused_with(showing.conn.query(other, WAIT).await), 400);
    // Nobody asked for a code yet.
    assert!(matches!(
        sim.enter_code("15550007777", &code.shown()).await,
        Err(SimError::NoCodeWaiting(_))
    ));

    // A good hello gets a ref.
    let answer = showing
        .conn
        .query(companion.hello("h3", &noise, &device), WAIT)
        .await
        .unwrap();
    companion.take_answer(&answer).unwrap();
    // A finish before the phone typed anything: 400.
    let early = pair_code::primary_hello(
        &code,
        &[1; 32],
        &wasp::wa::creds::KeyPair::generate(),
        companion.reference.as_deref().unwrap(),
    );
    let (_, finish) = companion
        .finish("f0", &showing.creds.identity, &early)
        .unwrap();
    assert_eq!(refused_with(showing.conn.query(finish, WAIT).await), 400);
    // Bad input to the phone: a malformed code, a number nobody asked for.
    let bad = sim
        .enter_code("15550007777", "ABCD-EFG0")
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not a pairing code"), "{bad}");
    assert!(matches!(
        sim.enter_code("15550008888", &code.shown()).await,
        Err(SimError::NoCodeWaiting(_))
    ));

    // The phone types the right code.
    let phone = sim.clone();
    let typed = code.shown();
    let entered = tokio::spawn(async move { phone.enter_code("+15550007777", &typed).await });
    let note = next_node(&mut showing.events).await.unwrap();
    assert!(pair_code::is_primary_hello(&note), "{note:?}");
    let hello = pair_code::parse_primary_hello(&note).unwrap();
    let (adv, finish) = companion
        .finish("f1", &showing.creds.identity, &hello)
        .unwrap();
    showing.conn.query(finish, WAIT).await.unwrap();
    showing.creds.adv_secret = adv;
    let account = showing.answer_pair_success().await.unwrap();
    let jid = entered.await.unwrap().unwrap();
    assert_eq!(jid, account.jid);
    assert!(jid.starts_with("15550007777:"), "{jid}");
    assert_eq!(closed(&mut showing.events).await, Cause::RestartRequired);
    assert_eq!(sim.devices(), vec![jid]);
}
