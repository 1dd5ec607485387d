//! A session's whole state moves with its lease (`credentials = "redis"`): two `wasp headless`
//! nodes, the simulator and a redis-server; messages exchanged both ways, then the owner is
//! SIGKILLed with messages still queued. The other node resumes the session without pairing it
//! again, sends every queued message exactly once (the recipient's phone decrypted each id
//! once), shows the messages received before the move once, and decrypts new ones: the
//! Signal sessions, the outbox and the inbox all came out of Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::cluster::{
    Node, Redis, all_online, pair_all, simulator, wait_until, write_config_extra,
};
use crate::common::delivery::{exactly_once, phone_got};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wasp::attach::{Client, Target, remote};
use wasp::http::Token;
use wasp::ui::{LogRing, PoolUpdate};

const N: usize = 2;
const PEER: &str = "15557770001";
const WAIT: Duration = Duration::from_secs(90);
/// Five messages a second: a burst of 30 is still mostly queued when the owner dies.
const PACED: &str = "\n[messages]\nper_minute = 300\nburst = 3\njitter = 0\n";

/// `s00`'s phone number as `node` shows it.
async fn phone_of(node: &Node) -> String {
    let rows = node.rows().await;
    let row = rows.iter().find(|r| r["id"] == "s00").unwrap();
    row["phone"].as_str().unwrap().to_string()
}

/// Queues `texts` from s00 to PEER on `node`; answers the ids its 202s gave.
async fn queue(node: &Node, texts: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for text in texts {
        let body = format!(r#"{{"to":"{PEER}","text":"{text}","key":"{text}"}}"#);
        let token = Some(node.token.as_str());
        let answer =
            common::request(&node.http, "POST", "/sessions/s00/messages", token, &body).await;
        assert_eq!(answer.status, 202, "{}: {}", node.name, answer.body);
        ids.push(answer.json()["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Waits until `node` lists `n` messages s00 received; answers them as (id, text).
async fn received(node: &Node, n: usize) -> Vec<(String, String)> {
    let path = "/sessions/s00/messages?direction=in&limit=1000";
    wait_until(
        &format!("{} shows {n} received", node.name),
        WAIT,
        || async {
            let answer = common::request(&node.http, "GET", path, None, "").await;
            let list: Value = answer.json();
            let got: Vec<(String, String)> = list["messages"]
                .as_array()?
                .iter()
                .map(|m| {
                    let text = m["text"].as_str().unwrap_or_default().to_string();
                    (m["id"].as_str().unwrap_or_default().to_string(), text)
                })
                .collect();
            (got.len() >= n).then_some(got)
        },
    )
    .await
}

/// PEER's phone writes `texts` to `phone`; answers (ids, texts).
fn peer_writes(sim: &wasp::sim::Handle, phone: &str, texts: &[&str]) -> (Vec<String>, Vec<String>) {
    let ids = texts
        .iter()
        .map(|t| sim.send_text(PEER, phone, t).unwrap())
        .collect();
    (ids, texts.iter().map(|t| t.to_string()).collect())
}

/// `wasp attach`'s link to `node` (over TCP, with its token) brings the node list with
/// heartbeats for the header: every name in `names`, the attached node marked.
async fn attached_console_lists(node: &Node, names: &[&str]) {
    let target = Target::parse(&format!("http://{}", node.http)).unwrap();
    let client = Client::new(target, Token::new(&node.token));
    let cancel = CancellationToken::new();
    let mut link = remote::link(Arc::new(client), LogRing::new(100), cancel.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let update = tokio::time::timeout_at(deadline, link.updates.recv()).await;
        let update = update
            .expect("no node list reached the attached console")
            .unwrap();
        if let PoolUpdate::Nodes(lines) = update {
            let listed: Vec<&str> = lines.iter().map(|l| l.node.as_str()).collect();
            let this: Vec<&str> = lines
                .iter()
                .filter(|l| l.this)
                .map(|l| l.node.as_str())
                .collect();
            if listed == names {
                assert_eq!(this, [node.name.as_str()]);
                let held: usize = lines.iter().map(|l| l.sessions).sum();
                if held == N {
                    break;
                }
            }
        }
    }
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_session_resumes_elsewhere_with_its_keys_and_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sim = simulator().await;
    sim.create_account(PEER).unwrap();
    let redis = Redis::start(&root.join("redis"));
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        let config = write_config_extra(root, &sim, &redis.url(), name, N, "redis", PACED);
        nodes.push(Node::spawn_config(&config, root, name).await);
    }
    pair_all(&sim, &[&nodes[0], &nodes[1]], N).await;
    all_online(&[&nodes[0], &nodes[1]], N, WAIT).await;
    // A device without uploaded pre-keys gets no bundle: wait until every one has them.
    wait_until("every device uploaded pre-keys", WAIT, || {
        let stats = sim.stats();
        let done = stats.devices.len() == N && stats.devices.values().all(|d| d.prekey_uploads > 0);
        async move { done.then_some(()) }
    })
    .await;
    let pairings = sim.stats().pairings;
    let owner_at = if nodes[0].ids_in("online").await.contains(&"s00".to_string()) {
        0
    } else {
        1
    };
    let mut owner = nodes.remove(owner_at);
    let heir = nodes.remove(0);
    let phone = phone_of(&owner).await;
    attached_console_lists(&owner, &["node-a", "node-b"]).await;

    // Both ways on the owner: the Signal sessions exist in both directions.
    let (mut in_ids, mut in_texts) =
        peer_writes(&sim, &phone, &["before 1", "before 2", "before 3"]);
    received(&owner, 3).await;
    let texts: Vec<String> = (0..30).map(|i| format!("queued {i}")).collect();
    let mut out_ids = queue(&owner, &texts).await;
    let mut out_texts = texts;
    let before = phone_got(&sim, PEER, 3, WAIT).await.len();
    owner.kill();
    assert!(
        before < out_ids.len(),
        "the kill came after the burst: {before}"
    );

    // The heir takes s00 once the dead owner's lease has expired.
    wait_until("the heir runs s00", WAIT, || async {
        heir.ids_in("online")
            .await
            .contains(&"s00".to_string())
            .then_some(())
    })
    .await;
    let got = phone_got(&sim, PEER, out_ids.len(), WAIT).await;
    exactly_once(&got, &out_ids, &out_texts);

    // After the move: new messages both ways decrypt, and the inbox came along.
    let (ids, texts) = peer_writes(&sim, &phone, &["after 1", "after 2"]);
    in_ids.extend(ids);
    in_texts.extend(texts);
    let got_in = received(&heir, in_ids.len()).await;
    exactly_once(&got_in, &in_ids, &in_texts);
    let more = vec!["after the move".to_string()];
    out_ids.extend(queue(&heir, &more).await);
    out_texts.extend(more);
    let got = phone_got(&sim, PEER, out_ids.len(), WAIT).await;
    exactly_once(&got, &out_ids, &out_texts);

    let stats = sim.stats();
    assert_eq!(stats.pairings, pairings, "a session had to be paired again");
    assert_eq!(
        stats.decrypt_failures, 0,
        "a Signal session did not move: {stats:?}"
    );
    assert_eq!(stats.max_concurrent_per_device, 1);
    assert_eq!(stats.conflicts_sent, 0);
    let failed: Vec<_> = heir
        .logged("could not decrypt a message")
        .into_iter()
        .filter(|l| l["session"] == "s00")
        .collect();
    assert!(
        failed.is_empty(),
        "the heir could not decrypt for s00: {failed:?}"
    );
    eprintln!(
        "s00 moved after {before} of 30 queued messages: each decrypted once, {} resends dropped by id",
        stats.phone_duplicates
    );
}
