//! Two `wasp headless` nodes, one redis-server and the simulator, 40 sessions: each online on
//! exactly one node, balanced within one, one login per device at a time and no conflict; an
//! operator reconnect sent to node A for a session of node B reaches B exactly once; SIGKILL
//! of B brings its sessions back on A (credentials from Redis, no re-pairing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use crate::common::cluster::{Node, Redis, all_online, pair_all, simulator, wait_until};

const N: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_sessions_spread_over_two_nodes_move_on_when_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator().await;
    let redis = Redis::start(&dir.path().join("redis"));
    let a = Node::spawn(dir.path(), &sim, &redis.url(), "node-a", N).await;
    let mut b = Node::spawn(dir.path(), &sim, &redis.url(), "node-b", N).await;

    pair_all(&sim, &[&a, &b], N).await;
    // Balanced within one once placement has settled (a node sheds one per round).
    let by_node = wait_until(
        "40 online, balanced within one",
        Duration::from_secs(60),
        || async {
            let by_node = all_online(&[&a, &b], N, Duration::from_secs(60)).await;
            (by_node[0].len().abs_diff(by_node[1].len()) <= 1).then_some(by_node)
        },
    )
    .await;
    assert_eq!(
        sim.live_devices().len(),
        N,
        "one live connection per device"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.max_concurrent_per_device, 1,
        "a device was logged in twice"
    );
    assert_eq!(
        stats.conflicts_sent, 0,
        "the simulator had to kick a connection"
    );

    // An operator reconnect on A for a session B runs travels to B, once.
    let target = by_node[1][0].clone();
    let path = format!("/sessions/{target}/reconnect");
    let answer = common::request(&a.http, "POST", &path, Some(&a.token), "").await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let received = |node: &Node| {
        node.logged("command from another node")
            .into_iter()
            .filter(|v| {
                v["session"] == target.as_str() || v["fields"]["session"] == target.as_str()
            })
            .count()
    };
    wait_until("B got the command", Duration::from_secs(10), || {
        let got = received(&b);
        async move { (got >= 1).then_some(()) }
    })
    .await;
    assert_eq!(received(&b), 1, "B ran the command more than once");
    assert_eq!(received(&a), 0, "A ran a command for B's session");
    // A logs where it went once B has answered, which can be just after B ran it.
    let sent_to = format!("sent to {}", b.name);
    wait_until("A says where it went", Duration::from_secs(10), || {
        let said = !a.logged(&sent_to).is_empty();
        async move { said.then_some(()) }
    })
    .await;
    all_online(&[&a, &b], N, Duration::from_secs(30)).await;

    // The fleet view: every row has its owner, both nodes are listed with heartbeats.
    // (B's rows reach A through Redis within a round or two.)
    wait_until(
        "A shows B's sessions with their owner",
        Duration::from_secs(10),
        || async {
            let rows = a.rows().await;
            assert_eq!(rows.len(), N);
            let from_b = rows
                .iter()
                .filter(|r| r["owner"] == "node-b" && r["state"] == "online")
                .count();
            (from_b == b.ids_in("online").await.len()).then_some(())
        },
    )
    .await;
    let rows = a.rows().await;
    let from_b = rows.iter().find(|r| r["owner"] == "node-b").unwrap();
    assert!(from_b["connected_at_ms"].is_u64(), "{from_b}");
    // The fleet's state counts come from the rows in Redis, which trail each node's own view
    // by a publish round: wait for them to agree.
    let cluster = wait_until(
        "/cluster counts 40 online",
        Duration::from_secs(10),
        || async {
            let cluster = common::request(&a.http, "GET", "/cluster", None, "")
                .await
                .json();
            (cluster["states"]["online"] == N).then_some(cluster)
        },
    )
    .await;
    let nodes: Vec<&str> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["node"].as_str())
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"], "{cluster}");

    // An operator moves one of A's sessions to B.
    let moving = a.ids_in("online").await[0].clone();
    let path = format!("/sessions/{moving}/move");
    let answer = common::request(
        &b.http,
        "POST",
        &path,
        Some(&b.token),
        "{\"node\":\"node-b\"}",
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    wait_until(
        "the moved session runs on B",
        Duration::from_secs(20),
        || async {
            let by_node = all_online(&[&a, &b], N, Duration::from_secs(20)).await;
            by_node[1].contains(&moving).then_some(())
        },
    )
    .await;

    // SIGKILL B: its sessions come back on A from the credentials in Redis.
    let pairings = sim.stats().pairings;
    let killed_at = Instant::now();
    b.kill();
    let by_node = all_online(&[&a], N, Duration::from_secs(30)).await;
    eprintln!(
        "after SIGKILL: all {} online on A after {:?}",
        by_node[0].len(),
        killed_at.elapsed()
    );
    let stats = sim.stats();
    assert_eq!(stats.pairings, pairings, "a session had to be paired again");
    assert_eq!(stats.max_concurrent_per_device, 1);
    assert_eq!(stats.conflicts_sent, 0);
}
