//! `wasp headless` under a 1,024 open-files limit (soft and hard, set by the shell that starts
//! it): 1,100 idle HTTP connections leave `/healthz` answering and every session online and
//! reconnecting after a drop; a pool too big for the limit is refused in one sentence with
//! exit code 2 by check-config and by start; SIGHUP says that `[http]` changes need a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::request;
use tokio::net::TcpStream;
use wasp::sim::{Fault, Server, SimConfig};

const TOKEN: &str = "descriptor-test-token";
const SESSIONS: usize = 10;
const IDLE_CONNECTIONS: usize = 1100;

/// `wasp ARGS` with the open-files limit at `limit` (`ulimit -n` sets soft and hard; `-Sn`
/// only soft).
fn wasp_limited(ulimit: &str, args: &[&str], file: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_wasp"))
        .args(args)
        .arg(file);
    command
}

fn write_config(file: &Path, head: &str, ids: usize, http_extra: &str) {
    let mut text = format!(
        "{head}\n[policy]\nbackoff_base = \"100ms\"\nbackoff_cap = \"300ms\"\n\n[http]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{http_extra}\n"
    );
    for i in 0..ids {
        text.push_str(&format!("\n[[session]]\nid = \"s{i}\"\nautostart = true\n"));
    }
    std::fs::write(file, text).unwrap();
}

/// Kills the child if the test fails before stopping it.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn follow(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_line(rx: &Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line with {what}"));
        if line.contains(what) {
            return line;
        }
    }
}

/// A request that may meet a full reserve for a moment (closed or reset unanswered):
/// retried until answered. `request` panics on a reset; its task catches that.
async fn answered(base: &str, path: &str, token: Option<&str>) -> common::Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (b, p, t) = (
            base.to_string(),
            path.to_string(),
            token.map(str::to_string),
        );
        let task = tokio::spawn(async move { request(&b, "GET", &p, t.as_deref(), "").await });
        let attempt = tokio::time::timeout(Duration::from_secs(5), task).await;
        if let Ok(Ok(answer)) = attempt
            && answer.status != 0
        {
            return answer;
        }
        assert!(Instant::now() < deadline, "{path} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every session is online and `ok` holds for its detail view.
async fn all_online(base: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..SESSIONS {
        loop {
            let json = answered(base, &format!("/sessions/s{i}"), Some(TOKEN))
                .await
                .json();
            if json["state"] == "online" && ok(&json) {
                break;
            }
            assert!(Instant::now() < deadline, "s{i} not back online: {json}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http_connections_under_1024_descriptors_starve_nothing() {
    // The test process itself holds the 1,100 client sockets.
    wasp::descriptors::raise().unwrap();
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.toml");
    let head = format!(
        "[server]\nurl = \"{}\"\ntrust_root = \"{}\"\n\n[storage]\ndata_dir = \"{}\"\n",
        sim.ws_url,
        sim.trust_root_base64(),
        dir.path().join("data").display()
    );
    // Long timeouts: only the connection cap may protect the descriptors here.
    let patient = "header_timeout = \"5m\"\nidle_timeout = \"5m\"\n";
    write_config(&file, &head, SESSIONS, patient);
    let mut child = wasp_limited("-n 1024", &["headless", "--config"], &file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = follow(&mut child);
    let mut child = Reap(child);
    let ready = wait_line(&rx, "http endpoint ready");
    let json: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let addr = json["fields"]["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("{ready}"))
        .to_string();
    let base = format!("http://{addr}");

    // Pair every session through the QR that only the token shows.
    let mut scanned = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while scanned.len() < SESSIONS {
        for i in 0..SESSIONS {
            let id = format!("s{i}");
            if scanned.contains(&id) {
                continue;
            }
            let json = answered(&base, &format!("/sessions/{id}"), Some(TOKEN))
                .await
                .json();
            if let Some(qr) = json["qr"].as_str()
                && sim.scan(qr, None).await.is_ok()
            {
                scanned.insert(id);
            }
        }
        assert!(Instant::now() < deadline, "paired only {scanned:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    all_online(&base, |_| true).await;

    // 1,100 idle connections, more than the whole descriptor limit of wasp.
    let mut idle = Vec::new();
    for _ in 0..IDLE_CONNECTIONS {
        if let Ok(Ok(tcp)) =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr)).await
        {
            idle.push(tcp);
        }
    }
    assert!(idle.len() >= 1000, "only {} connections opened", idle.len());

    assert_eq!(answered(&base, "/healthz", None).await.status, 200);
    all_online(&base, |_| true).await;

    // Every session is dropped and must dial again while the idle sockets are held.
    for device in sim.devices() {
        let _ = sim.fault(&device, Fault::Drop).await;
    }
    all_online(&base, |json| json["disconnects_1h"].as_u64() >= Some(1)).await;
    assert_eq!(answered(&base, "/healthz", None).await.status, 200);
    drop(idle);

    // SIGHUP with a changed [http]: applied to sessions, the endpoint says it needs a restart.
    write_config(&file, &head, SESSIONS, "idle_timeout = \"30s\"\n");
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let line = wait_line(&rx, "[http] changed");
    assert!(line.contains("restart"), "{line}");

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn a_pool_too_big_for_the_limit_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.toml");
    let data = dir.path().join("data");
    let head = format!("[storage]\ndata_dir = \"{}\"\n", data.display());
    write_config(&file, &head, 2000, "");
    for args in [&["check-config"][..], &["headless", "--config"][..]] {
        let output = wasp_limited("-n 1024", args, &file).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("2000 sessions need about 2337 file descriptors")
                && stderr.contains("the open-files limit is 1024"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!data.exists(), "nothing may start");

    // A low soft limit under a high hard one is fine: wasp raises the soft limit.
    let hard = wasp::descriptors::current().unwrap().hard;
    if hard >= 2337 {
        let output = wasp_limited("-Sn 1024", &["check-config"], &file)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
