//! SIGHUP reloads the config of `wasp headless`: an added session starts, a bad file keeps the
//! old config and says why, the running session keeps its socket; a new `[http]` token applies
//! at once and what needs a restart says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use wasp::sim::{Server, SimConfig};

fn write_config(
    path: &std::path::Path,
    url: &str,
    root: &str,
    data: &std::path::Path,
    ids: &[&str],
    extra: &str,
) {
    let mut text = format!(
        "[server]\nurl = \"{url}\"\ntrust_root = \"{root}\"\n\n[storage]\ndata_dir = \"{}\"\n{extra}\n",
        data.display()
    );
    for id in ids {
        text.push_str(&format!("\n[[session]]\nid = \"{id}\"\nautostart = true\n"));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_sessions_and_refuses_a_bad_file() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = base64::engine::general_purpose::STANDARD.encode(sim.trust_root.0);
    let config = dir.path().join("sessions.toml");
    let data = dir.path().join("data");
    write_config(&config, &sim.ws_url, &root, &data, &["one"], "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["headless", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_line = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {what}"));
            if line.contains(what) {
                return line;
            }
        }
    };
    wait_line("wasp headless running");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.stats().connections < 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };

    // A bad file: refused, the old config stays.
    std::fs::write(&config, "[policy]\nbackoff_cap = \"soon\"\n").unwrap();
    hup(child.id());
    let refused = wait_line("config reload refused");
    assert!(refused.contains("backoff_cap"), "{refused}");

    // A good file with one more session: it starts; the first keeps its one connection.
    write_config(&config, &sim.ws_url, &root, &data, &["one", "two"], "");
    hup(child.id());
    wait_line("session added by reload");
    let deadline = Instant::now() + Duration::from_secs(20);
    // Counted at accept; the handshake (which the check below counts) follows.
    while sim.stats().connections < 2 || sim.stats().handshakes < 2 {
        assert!(
            Instant::now() < deadline,
            "the added session never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.stats().handshakes,
        2,
        "the first session was not reconnected"
    );

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_http_token_and_says_what_needs_a_restart() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = base64::engine::general_purpose::STANDARD.encode(sim.trust_root.0);
    let config = dir.path().join("sessions.toml");
    let data = dir.path().join("data");
    let http = |token: &str, extra: &str| format!("[http]\ntoken = \"{token}\"\n{extra}");
    write_config(
        &config,
        &sim.ws_url,
        &root,
        &data,
        &["one"],
        &http("first-token", ""),
    );
    let wasp = common::headless::Headless::spawn(&config, Duration::from_secs(20));
    let base = wasp.http_base();
    wasp.line_with("wasp headless running");
    // An action on an unknown session: 404 for the token holder, 401 for anyone else.
    let admitted = |token: &'static str| {
        let base = base.clone();
        async move {
            let answer =
                common::request(&base, "POST", "/sessions/nobody/reconnect", Some(token), "").await;
            assert!(matches!(answer.status, 401 | 404), "{}", answer.body);
            answer.status == 404
        }
    };
    assert!(admitted("first-token").await);
    assert!(!admitted("second-token").await);

    // A new token and a new connection cap: the token applies, the cap is named as waiting
    // for a restart.
    let extra = "max_connections = 77\n";
    write_config(
        &config,
        &sim.ws_url,
        &root,
        &data,
        &["one"],
        &http("second-token", extra),
    );
    wasp.signal("-HUP");
    let restart = wasp.line_with("apply only when wasp restarts");
    assert!(restart.contains("connection limits"), "{restart}");
    assert!(!restart.contains("second-token"), "{restart}");
    wasp.line_with("[http] tokens changed");
    assert!(admitted("second-token").await);
    assert!(!admitted("first-token").await);

    wasp.signal("-TERM");
}
