//! `wasp sim` as a process: the ready line, and the admin API's answers to good and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::request;

#[tokio::test]
async fn sim_prints_its_ready_line_and_refuses_bad_admin_input() {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["sim", "--state"])
        .arg(state.path().join("sim.json"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = line.split('"').skip(1).step_by(4).take(3).collect();
    assert_eq!(keys, ["ws_url", "admin_url", "trust_root"], "{line}");
    assert!(ready["ws_url"].as_str().unwrap().ends_with("/ws/chat"));
    let root = ready["trust_root"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(root)
            .unwrap()
            .len(),
        32
    );
    let admin = ready["admin_url"].as_str().unwrap().to_string();

    let bad_cases = [
        (
            "/admin/fault",
            r#"{"device":"*","kind":"explode"}"#,
            "unknown fault kind",
        ),
        ("/admin/fault", "{not json", "bad JSON"),
        (
            "/admin/fault",
            r#"{"device":"1555:2@s.whatsapp.net","kind":"drop"}"#,
            "no device",
        ),
        (
            "/admin/fault",
            r#"{"device":"*","kind":"failure","code":999}"#,
            "needs a code",
        ),
        ("/admin/scan", r#"{"qr":"not a qr"}"#, "QR"),
        ("/admin/scan", r#"{"qr":"x","extra":1}"#, "bad JSON"),
    ];
    for (path, body, expect) in bad_cases {
        let answer = request(&admin, "POST", path, None, body).await;
        assert_eq!(answer.status, 400, "{path} {body}: {}", answer.body);
        let reason = answer.json()["error"].as_str().unwrap().to_string();
        assert!(reason.contains(expect), "{reason}");
        assert!(!reason.contains('\n'), "one line: {reason}");
    }
    let ok = request(
        &admin,
        "POST",
        "/admin/fault",
        None,
        r#"{"device":"*","kind":"drop"}"#,
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["connections"], 0);
    let stats = request(&admin, "GET", "/admin/stats", None, "")
        .await
        .json();
    for key in [
        "connections",
        "handshakes",
        "logins",
        "pairings",
        "conflicts_sent",
        "max_concurrent_per_device",
        "errors",
        "devices",
    ] {
        assert!(stats.get(key).is_some(), "stats lack {key}: {stats}");
    }
    unsafe_free_kill(&mut child);
    // The state file keeps the keys: a restarted simulator publishes the same trust root.
    let mut again = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["sim", "--state"])
        .arg(state.path().join("sim.json"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line2 = String::new();
    BufReader::new(again.stdout.take().unwrap())
        .read_line(&mut line2)
        .unwrap();
    let ready2: serde_json::Value = serde_json::from_str(&line2).unwrap();
    assert_eq!(ready2["trust_root"], ready["trust_root"]);
    unsafe_free_kill(&mut again);
}

/// SIGTERM, then wait: the simulator exits 0 on it.
fn unsafe_free_kill(child: &mut std::process::Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}
