//! `wasp sim` as a process: the ready line, and the admin API's answers to good and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::request;

#[tokio::test]
async fn sim_prints_its_ready_line_and_refuses_bad_admin_input() {
    let state = tempfile::tempdir().unwrap();
    let (mut child, line) = common::spawn_sim([
        std::ffi::OsString::from("--state"),
        state.path().join("sim.json").into_os_string(),
    ]);
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

use crate::sim_client;

use wasp::sim::{Server, SimConfig};
use wasp::wa::stanza::Cause;

async fn start_with_admin() -> wasp::sim::Handle {
    let config = SimConfig {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..SimConfig::default()
    };
    Server::start(config).await.unwrap()
}

#[tokio::test]
async fn pairing_faults_and_stats_over_admin_http() {
    let sim = start_with_admin().await;
    let admin = sim.admin_url.clone().unwrap();
    let t = sim_client::target(&sim);
    let mut showing = sim_client::show_qr(&t).await;
    let body = serde_json::json!({ "qr": showing.qr(1), "phone": "15550004444" }).to_string();
    let url = admin.clone();
    let scan = tokio::spawn(async move { request(&url, "POST", "/admin/scan", None, &body).await });
    let account = showing.answer_pair_success().await.unwrap();
    let answer = scan.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["device"], account.jid.as_str());
    assert_eq!(
        sim_client::closed(&mut showing.events).await,
        Cause::RestartRequired
    );
    let mut creds = showing.creds;
    creds.account = Some(account.clone());

    let (_conn, mut events) = sim_client::login(&t, &creds).await;
    let fault = serde_json::json!({
        "device": account.jid, "kind": "failure", "code": 402, "expires_s": 90
    })
    .to_string();
    let answer = request(&admin, "POST", "/admin/fault", None, &fault).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["connections"], 1);
    assert_eq!(
        sim_client::closed(&mut events).await,
        Cause::TempBanned {
            expires_s: Some(90)
        }
    );

    let stats = request(&admin, "GET", "/admin/stats", None, "").await;
    assert_eq!(stats.status, 200);
    let stats = stats.json();
    assert_eq!(stats["pairings"], 1);
    assert_eq!(stats["logins"], 1);
    assert_eq!(stats["max_concurrent_per_device"], 1);
    assert_eq!(stats["faults"]["failure"], 1);
    let device = &stats["devices"][account.jid.as_str()];
    assert_eq!(device["phone"], "15550004444");
    assert_eq!(device["logins"], 1);
    assert_eq!(device["faults_applied"], 1);

    let plan = r#"{"seed": 3, "every_ms": 50, "kinds": [{"kind": "drop"}]}"#;
    let answer = request(&admin, "POST", "/admin/plan", None, plan).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["kinds"], serde_json::json!(["drop"]));
    let answer = request(&admin, "DELETE", "/admin/plan", None, "").await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn a_forged_scan_over_http_is_a_conflict_with_its_reason() {
    let sim = start_with_admin().await;
    let admin = sim.admin_url.clone().unwrap();
    let mut showing = sim_client::show_qr(&sim_client::target(&sim)).await;
    let body = serde_json::json!({ "qr": showing.qr(0), "tamper": "hmac" }).to_string();
    let url = admin.clone();
    let scan = tokio::spawn(async move { request(&url, "POST", "/admin/scan", None, &body).await });
    assert!(showing.answer_pair_success().await.is_err());
    let answer = scan.await.unwrap();
    assert_eq!(answer.status, 409, "{}", answer.body);
    let reason = answer.json()["error"].as_str().unwrap().to_string();
    assert!(reason.contains("hmac-mismatch"), "{reason}");
    let stats = request(&admin, "GET", "/admin/stats", None, "")
        .await
        .json();
    assert_eq!(stats["errors"]["client_reported_bad_hmac"], 1);
}

#[tokio::test]
async fn more_bad_admin_input_gets_400_with_one_line() {
    let sim = start_with_admin().await;
    let admin = sim.admin_url.clone().unwrap();
    let showing = sim_client::show_qr(&sim_client::target(&sim)).await;
    let qr = showing.qr(0);
    let cases = [
        (
            "/admin/scan".to_string(),
            serde_json::json!({ "qr": qr, "tamper": "ink" }).to_string(),
            "unknown tamper",
        ),
        (
            "/admin/scan".into(),
            serde_json::json!({ "qr": qr, "phone": "call me" }).to_string(),
            "phone number",
        ),
        (
            "/admin/scan".into(),
            serde_json::json!({ "qr": qr.replace(&showing.refs[0], "2@old") }).to_string(),
            "ref",
        ),
        (
            "/admin/fault".into(),
            r#"{"device":"*","kind":"conflict","code":503}"#.into(),
            "takes no code",
        ),
        (
            "/admin/fault".into(),
            r#"{"device":"*","kind":"failure","code":403,"expires_s":5}"#.into(),
            "expires_s",
        ),
        (
            "/admin/fault".into(),
            r#"{"device":"*","kind":"slow-handshake","delay_s":100000}"#.into(),
            "at most",
        ),
        (
            "/admin/fault".into(),
            r#"{"kind":"drop"}"#.into(),
            "missing field",
        ),
        (
            "/admin/plan".into(),
            r#"{"seed":1,"every_ms":0}"#.into(),
            "every_ms",
        ),
        (
            "/admin/plan".into(),
            r#"{"seed":1,"every_ms":100,"kinds":[{"kind":"melt"}]}"#.into(),
            "unknown fault kind",
        ),
    ];
    for (path, body, expect) in cases {
        let answer = request(&admin, "POST", &path, None, &body).await;
        assert_eq!(answer.status, 400, "{path} {body}: {}", answer.body);
        let reason = answer.json()["error"].as_str().unwrap().to_string();
        assert!(reason.contains(expect), "{body}: {reason}");
        assert!(!reason.contains('\n'), "one line: {reason}");
    }
    let answer = request(&admin, "GET", "/admin/nothing", None, "").await;
    assert_eq!(answer.status, 404);
    // None of it disturbed the pairing in progress.
    assert_eq!(sim.stats().pending_pairings, 1);
}
