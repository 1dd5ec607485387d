//! TLS in the loop (issue 15): the simulator serves `wss://` with a CA it made at start; a
//! session whose config names that CA in `[server] ca_file` pairs and logs in over it with
//! the production rustls path, one without it fails on the certificate, and `check-config`
//! refuses a missing or unparsable `ca_file` in one sentence naming the file and the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::board::{wait_for, wait_for_all};
use base64::Engine;
use wasp::net::transport::{self, DialError};
use wasp::runner;
use wasp::session::status::StateName;
use wasp::sim::tls::SimTls;
use wasp::sim::{Handle, Server, SimConfig};

const WAIT: Duration = Duration::from_secs(60);

async fn tls_sim() -> (Handle, SimTls) {
    let tls = SimTls::generate().unwrap();
    let sim = Server::start(SimConfig {
        tls: Some(tls.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim.ws_url.starts_with("wss://"), "{}", sim.ws_url);
    (sim, tls)
}

/// A sessions.toml on `sim` with one autostarting session, trusting `ca_file` when given.
fn write_config(dir: &Path, sim: &Handle, ca_file: Option<&Path>) -> std::path::PathBuf {
    let root = base64::engine::general_purpose::STANDARD.encode(sim.trust_root.0);
    let ca = ca_file
        .map(|f| format!("ca_file = {:?}\n", f.display().to_string()))
        .unwrap_or_default();
    let text = format!(
        "[server]\nurl = {:?}\ntrust_root = {root:?}\n{ca}\n[storage]\ndata_dir = {:?}\n\n\
         [policy]\nbackoff_base = \"100ms\"\nbackoff_cap = \"300ms\"\n\n\
         [[session]]\nid = \"t1\"\nautostart = true\n",
        sim.ws_url,
        dir.join("data").display().to_string(),
    );
    let file = dir.join("sessions.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_pairs_and_logs_in_over_wss_when_it_trusts_the_sims_ca() {
    let (sim, tls) = tls_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sim-ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let config = wasp::config::load(&write_config(dir.path(), &sim, Some(&ca))).unwrap();
    assert_eq!(config.server.ca_file.as_deref(), Some(ca.as_path()));
    let started = runner::start(&config, None).await.unwrap();
    let board = started.running.handle.board.clone();
    let shown = wait_for(&board, "t1", "a QR", WAIT, |s| s.qr().is_some()).await;
    sim.scan(shown.qr().unwrap().text.as_str(), None)
        .await
        .unwrap();
    // Pairing ends with a 515; online means the login after it went through too.
    wait_for_all(&board, "t1 online and paired", WAIT, |all| {
        all.iter()
            .all(|s| s.state() == StateName::Online && s.account.paired)
    })
    .await;
    let stats = sim.stats();
    assert_eq!(stats.pairings, 1, "{stats:?}");
    assert!(stats.logins >= 1, "{stats:?}");
    runner::stop(started).await;
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_same_dial_fails_on_the_certificate() {
    let (sim, _tls) = tls_sim().await;
    // The production dial (webpki roots only) refuses the simulator's certificate.
    let refused = transport::dial(&sim.ws_url, WAIT).await.err().unwrap();
    let DialError::Failed { reason, .. } = &refused else {
        panic!("not a refusal: {refused}");
    };
    assert!(reason.contains("certificate"), "{reason}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    // And a pool without ca_file never gets a handshake through, saying why.
    let dir = tempfile::tempdir().unwrap();
    let config = wasp::config::load(&write_config(dir.path(), &sim, None)).unwrap();
    let started = runner::start(&config, None).await.unwrap();
    let board = started.running.handle.board.clone();
    let failed = wait_for(&board, "t1", "a TLS failure", WAIT, |s| {
        s.timeline
            .iter()
            .any(|e| e.detail.contains("certificate") || e.cause.contains("certificate"))
            || s.reason.contains("certificate")
    })
    .await;
    assert_ne!(failed.state(), StateName::Online);
    assert_eq!(sim.stats().handshakes, 0);
    runner::stop(started).await;
    sim.shutdown();
}

fn check_config(file: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .arg("check-config")
        .arg(file)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn check_config_names_a_missing_or_unparsable_ca_file_and_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sessions.toml");
    let missing = dir.path().join("nowhere.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    for (file, why) in [(&missing, "No such file"), (&garbage, "no PEM certificate")] {
        std::fs::write(
            &config,
            format!("[server]\nca_file = {:?}\n", file.display().to_string()),
        )
        .unwrap();
        let (code, stderr) = check_config(&config);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("ca_file in [server]"), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
}
