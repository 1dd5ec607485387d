//! A well-behaved client (the acking test client of `common/sim_client.rs`) can live with
//! the strict simulator: with a short ack timeout it stays online through pre-key
//! consumption and refills, and across a restart of the simulator its queued notification is
//! redelivered and acked and nothing is uploaded twice. The client branch's end-to-end tests
//! mirror this with wasp's own client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::sim_client::{
    drain, own_jid, pair_new, prekey_upload, raw_login, raw_query, recv, target,
};
use wasp::sim::load::ClientSocket;
use wasp::sim::{Handle, Server, SimConfig, Strictness};
use wasp::wa::creds::Credentials;
use wasp::wa::node::Node;
use wasp::wa::{prekey, stanza};

/// What a correct client does with the server's count: 812 the first time, 50 below 5.
/// Answers how many it uploaded; `next` is its next pre-key id.
async fn refill(socket: &mut ClientSocket, creds: &Credentials, next: &mut u32) -> usize {
    let own = own_jid(creds);
    let answer = raw_query(
        socket,
        &own,
        stanza::prekey_count_query(&format!("c{next}")),
    )
    .await;
    let count: usize = answer
        .get_child("count")
        .and_then(|c| c.get_attr("value"))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let n = match count {
        0 => prekey::INITIAL_BATCH as usize,
        c if c < prekey::LOW_WATER as usize => prekey::REFILL_BATCH as usize,
        _ => return 0,
    } as u32;
    let upload = prekey_upload(&format!("u{next}"), creds, *next..*next + n);
    let answer = raw_query(socket, &own, upload).await;
    assert_eq!(answer.get_attr("type"), Some("result"), "{answer:?}");
    *next += n;
    n as usize
}

fn is_encrypt_note(node: &Node) -> bool {
    node.tag == "notification" && node.get_attr("type") == Some("encrypt")
}

async fn start(state: &std::path::Path) -> Handle {
    Server::start(SimConfig {
        state_file: Some(state.to_path_buf()),
        strict: Strictness {
            ack_timeout: Duration::from_millis(300),
            ..Strictness::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_that_acks_and_refills_stays_online_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sim.json");
    let sim = start(&state).await;
    let creds = pair_new(&sim, None).await;
    let own = own_jid(&creds);
    let mut next = 1;
    let mut socket = raw_login(&target(&sim), &creds).await;
    drain(&mut socket, &own, |_| true).await;
    assert_eq!(refill(&mut socket, &creds, &mut next).await, 812);

    // Peers fetch bundles in rounds; each round outlives the ack timeout.
    for round in 0..4 {
        sim.consume_prekeys(&own, 200).await.unwrap();
        let seen = drain(&mut socket, &own, |_| true).await;
        assert!(seen.is_empty(), "round {round}: {seen:?}");
        assert_eq!(refill(&mut socket, &creds, &mut next).await, 0);
    }
    // 12 left; 10 more leave 2 and bring the encrypt notification, answered by a refill.
    sim.consume_prekeys(&own, 10).await.unwrap();
    let note = recv(&mut socket).await;
    assert!(is_encrypt_note(&note), "{note:?}");
    socket
        .send_node(&wasp::wa::ack::ack(&note, Some(&own)).unwrap())
        .await
        .unwrap();
    assert_eq!(refill(&mut socket, &creds, &mut next).await, 50);
    tokio::time::sleep(Duration::from_millis(400)).await; // past the ack timeout
    assert!(drain(&mut socket, &own, |_| true).await.is_empty());
    let stats = sim.stats();
    let device = &stats.devices[&own];
    assert_eq!((stats.stream_errors_ack, device.unacked), (0, 0));
    assert_eq!((device.prekeys, device.prekey_uploads), (52, 2));
    assert_eq!(stats.logged_in, 1);

    // Offline, peers take 50 more: the notification waits in the queue. Then the simulator
    // restarts from its state file.
    drop(socket);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.stats().logged_in > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never logged out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sim.consume_prekeys(&own, 50).await.unwrap();
    sim.shutdown();
    sim.stopped().await;
    let sim = start(&state).await;
    let mut socket = raw_login(&target(&sim), &creds).await;
    let seen = drain(&mut socket, &own, |_| true).await;
    assert!(is_encrypt_note(&seen[1]), "{seen:?}");
    assert_eq!(seen[1].get_attr("offline"), Some("1"));
    // One notification, not a second one at login as well.
    assert_eq!(seen.iter().filter(|n| is_encrypt_note(n)).count(), 1);
    assert_eq!(refill(&mut socket, &creds, &mut next).await, 50);
    // Logged in again with plenty of keys: no upload.
    drop(socket);
    let mut socket = raw_login(&target(&sim), &creds).await;
    drain(&mut socket, &own, |_| true).await;
    assert_eq!(refill(&mut socket, &creds, &mut next).await, 0);
    let stats = sim.stats();
    let device = &stats.devices[&own];
    assert_eq!((stats.stream_errors_ack, device.unacked), (0, 0));
    assert_eq!((device.prekeys, device.prekey_uploads), (52, 3));
}
