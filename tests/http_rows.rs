//! What `GET /sessions` and `GET /events` show, against a pool on the simulator: the uptime is
//! computed when read (it moves while the state stays), and a `status` event goes out only when
//! the row shows something new (pings every 200 ms change the status, not the row).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::{EventStream, request, wait_state};
use wasp::config::{Config, SessionConfig};
use wasp::runner;
use wasp::sim::{Server, SimConfig};

const TOKEN: &str = "rows-token-1";

/// `ids` autostarted on `sim`, pinging every ~200 ms, HTTP on a free loopback port.
fn config_on(sim: &wasp::sim::Handle, dir: &std::path::Path, ids: &[&str]) -> Config {
    let mut config = common::http_config_on(sim, dir, TOKEN);
    let live = common::live::short_policy();
    config.policy.keepalive_interval_min = live.keepalive_interval_min;
    config.policy.keepalive_interval_max = live.keepalive_interval_max;
    config.sessions = ids
        .iter()
        .map(|id| {
            let mut s = SessionConfig::new(*id, config.policy.clone());
            s.autostart = true;
            s
        })
        .collect();
    config
}

/// Starts the pool with a virtual phone that scans each QR after `scan` .. `scan` + 100 ms.
async fn start(config: &Config, sim: &wasp::sim::Handle, scan: Duration) -> runner::Started {
    let started = runner::start(config, None).await.unwrap();
    tokio::spawn(runner::virtual_phone(
        started.running.handle.board.clone(),
        sim.clone(),
        scan,
        scan + Duration::from_millis(100),
        started.cancel.child_token(),
    ));
    started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uptime_moves_while_the_state_stays() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_on(&sim, dir.path(), &["alpha"]);
    // Pings far apart: nothing republishes the status while we read.
    config.policy.keepalive_interval_min = Duration::from_secs(60);
    config.policy.keepalive_interval_max = Duration::from_secs(60);
    config.sessions[0].policy = config.policy.clone();
    // About 1.5 s of pairing before the session is first online: uptime starts well below 100.
    let started = start(&config, &sim, Duration::from_millis(1500)).await;
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    let first = wait_state(&base, "alpha", "online").await;
    let since = first["since"].clone();
    let before = first["uptime_pct"].as_f64().unwrap();
    assert!(before < 90.0, "{first}");
    // Read again until it has moved (a few seconds); the state and its start never change.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let row = request(&base, "GET", "/sessions/alpha", None, "")
            .await
            .json();
        assert_eq!(row["state"], "online", "{row}");
        assert_eq!(row["since"], since, "{row}");
        let pct = row["uptime_pct"].as_f64().unwrap();
        if pct >= before + 20.0 || Instant::now() > deadline {
            break pct;
        }
    };
    assert!(
        after >= before + 20.0,
        "uptime stuck at {after} (was {before})"
    );
    // The list computes it the same way.
    let rows = request(&base, "GET", "/sessions", None, "").await.json();
    assert!(rows[0]["uptime_pct"].as_f64().unwrap() >= after, "{rows}");
    runner::stop(started).await;
}

/// The row without the uptime, which moves with the clock.
fn shown(row: &serde_json::Value) -> serde_json::Value {
    let mut row = row.clone();
    row.as_object_mut().unwrap().remove("uptime_pct");
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_event_comes_only_when_the_row_changes() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_on(&sim, dir.path(), &["alpha", "beta"]);
    let started = start(&config, &sim, Duration::from_millis(10)).await;
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    wait_state(&base, "alpha", "online").await;
    wait_state(&base, "beta", "online").await;

    let mut events = EventStream::open(&base).await;
    // Pings every ~200 ms for 3 s, then a reconnect: rows must show it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answer = request(&base, "POST", "/sessions/alpha/reconnect", Some(TOKEN), "").await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let alpha_is = |online: bool| {
        move |data: &str| {
            data.contains("\"id\":\"alpha\"") && data.contains("\"state\":\"online\"") == online
        }
    };
    let (left, mut seen) = events
        .find("status", Duration::from_secs(20), alpha_is(false))
        .await;
    assert!(left.is_some(), "alpha never left online: {seen:?}");
    let (back, again) = events
        .find("status", Duration::from_secs(20), alpha_is(true))
        .await;
    seen.extend(again);
    assert!(back.is_some(), "alpha never came back online: {seen:?}");
    // Ping after ping changed the statuses; no row repeats what its session's last row showed.
    let mut last: HashMap<String, serde_json::Value> = HashMap::new();
    for (_, data) in seen.iter().filter(|(name, _)| name == "status") {
        let row: serde_json::Value = serde_json::from_str(data).unwrap();
        let id = row["id"].as_str().unwrap().to_string();
        let now = shown(&row);
        assert_ne!(last.get(&id), Some(&now), "repeated: {data}");
        last.insert(id, now);
    }
    runner::stop(started).await;
}
