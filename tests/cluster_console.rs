//! The console of a cluster member in a real terminal (tmux): node-b runs headless with four
//! paired sessions, node-a's console joins, takes its share and shows the whole fleet with the
//! `node` column (its own sessions and node-b's) and the node list, moves one session with
//! `M`, then quits cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::cluster::{Node, Redis, all_online, pair_all, simulator, write_config};

const N: usize = 4;

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux must be installed (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn wait_screen(session: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if pred(&screen) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen; screen:\n{screen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_console_shows_the_fleet_with_its_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator().await;
    let redis = Redis::start(&dir.path().join("redis"));
    let b = Node::spawn(dir.path(), &sim, &redis.url(), "node-b", N).await;
    pair_all(&sim, &[&b], N).await;
    all_online(&[&b], N, Duration::from_secs(30)).await;

    let config = write_config(dir.path(), &sim, &redis.url(), "node-a", N);
    let session = format!("wasp-cluster-{}", std::process::id());
    let exit = dir.path().join("exit");
    let command = format!(
        "{} --config {}; echo $? > {}; sleep 30",
        env!("CARGO_BIN_EXE_wasp"),
        config.display(),
        exit.display()
    );
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .output();
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "30",
            &command,
        ])
        .status()
        .expect("tmux must be installed");
    assert!(started.success());

    // node-a takes its share (two); the table lists all four with the node that runs each
    // (only the table's half of each line: the detail pane beside it names an owner too).
    let rows_on = |screen: &str, node: &str| {
        screen
            .lines()
            .map(|l| l.split("││").next().unwrap_or(l))
            .filter(|l| l.contains("online") && l.contains(node))
            .count()
    };
    let screen = wait_screen(&session, "both nodes in the node column", |s| {
        s.contains(" node ") && rows_on(s, "node-a") == N / 2 && rows_on(s, "node-b") == N / 2
    })
    .await;
    assert_eq!(b.ids_in("online").await.len(), N / 2, "{screen}");
    // The header lists both live nodes with their heartbeats.
    let screen = wait_screen(&session, "the node list", |s| {
        s.contains("nodes  node-a (this)") && s.contains("node-b 2 sessions, beat")
    })
    .await;

    // M on the selected row, the other node typed: its owner accepts the move.
    let selected = screen
        .lines()
        .find(|l| l.starts_with("│▶"))
        .map(|l| l.split("││").next().unwrap_or(l).to_string())
        .unwrap_or_else(|| panic!("no selected row; screen:\n{screen}"));
    let target = if selected.contains("node-a") {
        "node-b"
    } else {
        "node-a"
    };
    tmux(&["send-keys", "-t", &session, "M"]);
    wait_screen(&session, "the move dialog", |s| {
        s.contains("Move to a node")
    })
    .await;
    tmux(&["send-keys", "-t", &session, "-l", target]);
    tmux(&["send-keys", "-t", &session, "Enter"]);
    wait_screen(&session, "the move accepted", |s| {
        s.contains(&format!("move to {target} accepted"))
    })
    .await;

    tmux(&["send-keys", "-t", &session, "q"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !exit.exists() {
        assert!(
            Instant::now() < deadline,
            "the console did not exit after q"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(std::fs::read_to_string(&exit).unwrap().trim(), "0");
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .output();
    // Its leases were released on the way out: node-b runs all four again.
    all_online(&[&b], N, Duration::from_secs(30)).await;
    assert_eq!(sim.stats().conflicts_sent, 0);
}
