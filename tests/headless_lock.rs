//! Two `wasp headless` processes on one data dir: the second reports which process holds
//! the session and never dials it. Also: JSON log lines on stdout, clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use wasp::sim::{Server, SimConfig};

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["headless", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn terminate(mut child: Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_reports_the_lock_holder_and_does_not_dial() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = base64::engine::general_purpose::STANDARD.encode(sim.trust_root.0);
    let config = dir.path().join("sessions.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nurl = \"{}\"\ntrust_root = \"{root}\"\n\n[storage]\ndata_dir = \"{}\"\n\n[[session]]\nid = \"sales-1\"\nautostart = true\n",
            sim.ws_url,
            dir.path().join("data").display()
        ),
    )
    .unwrap();

    let first = spawn(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.stats().handshakes < 1 {
        assert!(
            Instant::now() < deadline,
            "the first process never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut second = spawn(&config);
    let stdout = second.stdout.take().unwrap();
    let pid = first.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the second process never reported the lock");
        let json: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            json.get("level").is_some() && json.get("message").is_some(),
            "{line}"
        );
        if line.contains("held by pid") {
            break line;
        }
    };
    assert!(
        line.contains(&format!("pid {pid}")),
        "names the holder: {line}"
    );
    assert!(line.contains("sales-1"), "{line}");
    // The second process did not dial: still exactly one handshake and one connection.
    assert_eq!(sim.stats().handshakes, 1);
    assert_eq!(sim.stats().connections, 1);
    terminate(second);
    terminate(first);
}
