//! The fleet under faults, real processes throughout: a node paused past the lease TTL
//! (SIGSTOP/SIGCONT) never logs a device in alongside its successor; Redis stopped for twice
//! the TTL closes every session before its lease expires and they come back afterwards; a
//! third node takes its share without any session on two nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use crate::common::cluster::{
    Node, Redis, all_online, online_by_node, pair_all, signal, simulator, wait_until,
};

const N: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_closes_its_sessions_and_never_logs_in_beside_its_successor() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator().await;
    let redis = Redis::start(&dir.path().join("redis"));
    let a = Node::spawn(dir.path(), &sim, &redis.url(), "node-a", N).await;
    let b = Node::spawn(dir.path(), &sim, &redis.url(), "node-b", N).await;
    pair_all(&sim, &[&a, &b], N).await;
    let by_node = all_online(&[&a, &b], N, Duration::from_secs(60)).await;
    assert!(!by_node[0].is_empty(), "A holds nothing to lose");

    signal(a.pid(), "STOP");
    // B takes every session once A's leases expire (A cannot answer HTTP meanwhile).
    all_online(&[&b], N, Duration::from_secs(30)).await;
    let logins = sim.stats().logins;
    signal(a.pid(), "CONT");
    // A wakes, finds its leases gone and closes what it still had; it dials nothing.
    wait_until(
        "A shows no session online",
        Duration::from_secs(20),
        || async { a.ids_in("online").await.is_empty().then_some(()) },
    )
    .await;
    let by_node = all_online(&[&a, &b], N, Duration::from_secs(20)).await;
    assert_eq!(by_node[1].len(), N);
    let stats = sim.stats();
    assert_eq!(
        stats.max_concurrent_per_device, 1,
        "two logins of one device at once"
    );
    assert_eq!(
        stats.logins, logins,
        "the woken node logged a device in again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_for_two_ttls_closes_sessions_then_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator().await;
    let mut redis = Redis::start(&dir.path().join("redis"));
    let a = Node::spawn(dir.path(), &sim, &redis.url(), "node-a", N).await;
    let b = Node::spawn(dir.path(), &sim, &redis.url(), "node-b", N).await;
    pair_all(&sim, &[&a, &b], N).await;
    all_online(&[&a, &b], N, Duration::from_secs(60)).await;
    let pairings = sim.stats().pairings;

    let stopped = Instant::now();
    redis.stop();
    wait_until("every session closed", Duration::from_secs(10), || {
        let live = sim.live_devices().len();
        async move { (live == 0).then_some(()) }
    })
    .await;
    eprintln!(
        "all sessions closed {:?} after Redis stopped",
        stopped.elapsed()
    );
    // Each node shows why (once its driver has ended).
    wait_until(
        "every session shows the cluster cooldown",
        Duration::from_secs(10),
        || async {
            let mut reasons = Vec::new();
            for node in [&a, &b] {
                for r in node.rows().await {
                    reasons.push(format!(
                        "{} ({})",
                        r["state"].as_str().unwrap_or(""),
                        r["reason"].as_str().unwrap_or("")
                    ));
                }
            }
            (reasons.len() == N
                && reasons
                    .iter()
                    .all(|r| r == "cooldown (cluster: redis unreachable)"))
            .then_some(())
        },
    )
    .await;
    // Stay down for twice the TTL, then come back with the same data.
    while stopped.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.restart();
    all_online(&[&a, &b], N, Duration::from_secs(30)).await;
    let stats = sim.stats();
    assert_eq!(stats.pairings, pairings, "a session had to be paired again");
    assert_eq!(stats.conflicts_sent, 0);
    assert_eq!(stats.max_concurrent_per_device, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_node_takes_its_share_and_no_session_is_on_two_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator().await;
    let redis = Redis::start(&dir.path().join("redis"));
    let a = Node::spawn(dir.path(), &sim, &redis.url(), "node-a", N).await;
    let b = Node::spawn(dir.path(), &sim, &redis.url(), "node-b", N).await;
    pair_all(&sim, &[&a, &b], N).await;
    all_online(&[&a, &b], N, Duration::from_secs(60)).await;

    let c = Node::spawn(dir.path(), &sim, &redis.url(), "node-c", N).await;
    // Every sample checks that no session is online on two nodes.
    wait_until(
        "C holds its share (4 of 12)",
        Duration::from_secs(60),
        || async {
            let by_node = online_by_node(&[&a, &b, &c]).await;
            let total: usize = by_node.iter().map(Vec::len).sum();
            (total == N && by_node.iter().all(|ids| ids.len() == N / 3)).then_some(())
        },
    )
    .await;
    let stats = sim.stats();
    assert_eq!(stats.conflicts_sent, 0);
    assert_eq!(stats.max_concurrent_per_device, 1);
    let moved = c.logged("lease acquired").len();
    assert_eq!(moved, N / 3, "C claimed {moved} leases");

    // A graceful stop of C releases its leases; A and B take its sessions back.
    let mut c = c;
    signal(c.pid(), "TERM");
    assert!(c.wait().success(), "C did not stop cleanly");
    assert_eq!(c.logged("cluster member stopped; leases released").len(), 1);
    all_online(&[&a, &b], N, Duration::from_secs(30)).await;
    assert_eq!(sim.stats().conflicts_sent, 0);
}

/// With credentials in files, a session stays with the node that has them: when that node is
/// killed nobody else takes it (that would mean pairing again), and it comes back with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_file_credentials_a_session_stays_on_the_node_that_has_its_files() {
    const M: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator().await;
    let redis = Redis::start(&dir.path().join("redis"));
    let a = Node::spawn_with(dir.path(), &sim, &redis.url(), "node-a", M, "file").await;
    let mut b = Node::spawn_with(dir.path(), &sim, &redis.url(), "node-b", M, "file").await;
    pair_all(&sim, &[&a, &b], M).await;
    let before = all_online(&[&a, &b], M, Duration::from_secs(60)).await;
    assert!(!before[1].is_empty(), "B holds nothing");
    let pairings = sim.stats().pairings;

    b.kill();
    // A keeps its own and never claims B's (it would have to pair them again).
    let keep = before[0].len();
    wait_until(
        "B's sessions gone from the simulator",
        Duration::from_secs(10),
        || {
            let live = sim.live_devices().len();
            async move { (live == keep).then_some(()) }
        },
    )
    .await;
    // Give A three TTLs in which B's leases expire and it could (wrongly) claim them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(a.ids_in("online").await, before[0]);
    assert_eq!(sim.live_devices().len(), keep);
    let b = Node::spawn_with(dir.path(), &sim, &redis.url(), "node-b", M, "file").await;
    let after = all_online(&[&a, &b], M, Duration::from_secs(30)).await;
    assert_eq!(after, before, "a session changed nodes");
    assert_eq!(sim.stats().pairings, pairings, "a session was paired again");
}

#[test]
fn redis_down_at_start_is_one_sentence_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::cluster::free_port();
    let config = dir.path().join("wasp.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\n\n[cluster]\nredis_url = \"redis://127.0.0.1:{port}/\"\nnode_id = \"node-a\"\n\n[[session]]\nid = \"s1\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["headless", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!("cannot reach Redis at redis://127.0.0.1:{port}/")),
        "{stderr}"
    );
}
