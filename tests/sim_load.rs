//! Many idle logged-in connections against one simulator. The default suite runs a small
//! crowd in this process; the measurement of docs/benchmarks.md (5,000 connections to a
//! `wasp sim` process, RSS and CPU read from /proc) is ignored by default:
//!
//! `cargo test --test sim_load -- --ignored --nocapture`
//! (`WASP_IDLE_CONNECTIONS`, default 5000; `WASP_IDLE_SECONDS`, default 60).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use wasp::sim::load::{self, ClientSocket, Target};
use wasp::sim::{Server, SimConfig};
use wasp::wa::creds::Credentials;
use wasp::wa::noise::TrustRoot;
use wasp::wa::stanza::{self, Incoming};

/// How many pairings or logins run at once.
const PARALLEL: usize = 32;

/// Pairs `n` fresh clients; `scan` is the phone.
async fn pair_many<F, Fut>(target: &Target, n: usize, scan: F) -> Vec<Credentials>
where
    F: Fn(String) -> Fut + Clone,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    futures::stream::iter(0..n)
        .map(|_| load::pair_new(target, scan.clone()))
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
        .unwrap()
}

async fn login_many(target: &Target, creds: &[Credentials]) -> Vec<ClientSocket> {
    futures::stream::iter(creds)
        .map(|c| load::login(target, c))
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
        .unwrap()
}

/// Every socket still gets its keepalive answered.
async fn ping_all(sockets: &mut [ClientSocket]) {
    futures::stream::iter(sockets.iter_mut().enumerate())
        .for_each_concurrent(PARALLEL, |(i, socket)| async move {
            let id = format!("load-{i}");
            socket.send_node(&stanza::ping(&id)).await.unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(30), socket.recv_node())
                .await
                .unwrap()
                .unwrap();
            match stanza::classify(answer) {
                Incoming::IqResult { id: got, .. } => assert_eq!(got, id),
                other => panic!("expected the ping's answer, got {other:?}"),
            }
        })
        .await;
}

#[tokio::test]
async fn a_crowd_of_idle_logins_is_held_and_still_answered() {
    const N: usize = 64;
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let target = Target::from(&sim);
    let phone = sim.clone();
    let creds = pair_many(&target, N, move |qr| {
        let phone = phone.clone();
        async move { phone.scan(&qr, None).await.map_err(|e| e.to_string()) }
    })
    .await;
    let mut sockets = login_many(&target, &creds).await;
    let stats = sim.stats();
    assert_eq!((stats.pairings, stats.logins), (N as u64, N as u64));
    assert_eq!((stats.logged_in, stats.connections), (N as u64, N as u64));
    assert_eq!(stats.max_concurrent_per_device, 1);
    assert_eq!(stats.conflicts_sent, 0);
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    // The load generator acked every stanza the strict simulator pushed at login.
    assert!(stats.devices.values().all(|d| d.unacked == 0), "{stats:?}");
    assert_eq!(stats.acks_received, stats.pushed);
    ping_all(&mut sockets).await;
}

/// The simulator process's resident memory (KiB) and peak, and CPU ticks used so far.
struct Sample {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_ticks: u64,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> u64 { rest[i].parse().unwrap() };
    Sample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_ticks: ticks(11) + ticks(12),
    }
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Kills the simulator process if the measurement fails half-way.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (minutes): see docs/benchmarks.md"]
async fn measure_idle_connections_held_by_wasp_sim() {
    let n = env_number("WASP_IDLE_CONNECTIONS", 5000) as usize;
    let idle = Duration::from_secs(env_number("WASP_IDLE_SECONDS", 60));
    let mut child = Reap(
        Command::new(env!("CARGO_BIN_EXE_wasp"))
            .arg("sim")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let admin = ready["admin_url"].as_str().unwrap().to_string();
    let root = base64::engine::general_purpose::STANDARD
        .decode(ready["trust_root"].as_str().unwrap())
        .unwrap();
    let target = Target {
        ws_url: ready["ws_url"].as_str().unwrap().to_string(),
        trust: TrustRoot(root.try_into().unwrap()),
    };
    let at_start = sample(pid);

    let started = Instant::now();
    let creds = pair_many(&target, n, |qr| {
        let admin = admin.clone();
        async move {
            let body = serde_json::json!({ "qr": qr }).to_string();
            let answer = common::request(&admin, "POST", "/admin/scan", None, &body).await;
            match answer.status {
                200 => Ok(answer.body),
                _ => Err(answer.body),
            }
        }
    })
    .await;
    let paired_in = started.elapsed();
    let started = Instant::now();
    let mut sockets = login_many(&target, &creds).await;
    let logged_in_in = started.elapsed();
    let stats = common::request(&admin, "GET", "/admin/stats", None, "")
        .await
        .json();
    assert_eq!(stats["logged_in"], n);
    assert_eq!(stats["connections"], n);
    assert_eq!(stats["max_concurrent_per_device"], 1);

    let held = sample(pid);
    tokio::time::sleep(idle).await;
    let after_idle = sample(pid);
    let started = Instant::now();
    ping_all(&mut sockets).await;
    let pinged_in = started.elapsed();
    let after_pings = sample(pid);

    let hz = clock_ticks_per_second();
    let cpu_s = |from: &Sample, to: &Sample| (to.cpu_ticks - from.cpu_ticks) as f64 / hz;
    let report = serde_json::json!({
        "connections": n,
        "rss_at_start_kib": at_start.rss_kib,
        "rss_held_kib": held.rss_kib,
        "rss_after_idle_kib": after_idle.rss_kib,
        "rss_peak_kib": after_pings.hwm_kib,
        "rss_per_connection_kib":
            (held.rss_kib - at_start.rss_kib) as f64 / n as f64,
        "setup_cpu_s": cpu_s(&at_start, &held),
        "pair_wall_s": paired_in.as_secs_f64(),
        "login_wall_s": logged_in_in.as_secs_f64(),
        "idle_s": idle.as_secs(),
        "idle_cpu_s": cpu_s(&held, &after_idle),
        "idle_cpu_percent": 100.0 * cpu_s(&held, &after_idle) / idle.as_secs_f64(),
        "ping_all_wall_s": pinged_in.as_secs_f64(),
        "ping_all_cpu_s": cpu_s(&after_idle, &after_pings),
    });
    println!("{report}");
    drop(sockets);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert!(child.0.wait().unwrap().success());
}
