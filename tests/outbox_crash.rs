//! The outbox across crashes, with a real `wasp headless` child process and the simulator as
//! a relay (issues 13 and 12):
//! - a burst of queued messages, SIGKILL in the middle, restart: the recipient's phone
//!   decrypted every message exactly once, under the id its POST answered (a resend keeps its
//!   id; a second copy is dropped by id);
//! - an exchange both ways under drops, 515 restarts, stalls and one SIGKILL: nothing lost,
//!   nothing shown twice, no decrypt failure on either side (the key store survived).
//!
//! The default variants are small enough for `cargo test` on two cores; the 1,000-message
//! runs are `#[ignore]`d (figures in docs/benchmarks.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use tokio::time::Instant;
use wasp::sim::{Fault, FaultArgs, Handle, Server, SimConfig};

use crate::common::delivery::exactly_once;
use crate::common::headless::Headless;

const TOKEN: &str = "crash-test-token";
const WAIT: Duration = Duration::from_secs(120);
const PEER: &str = "15557770001";

/// `wasp headless` on a config and its HTTP address.
struct Child {
    process: Headless,
    base: String,
}

impl Child {
    fn spawn(config: &Path) -> Child {
        let process = Headless::spawn(config, WAIT);
        let base = process.http_base();
        Child { process, base }
    }

    /// SIGKILL (through `Drop`).
    fn kill(self) {
        drop(self.process);
    }

    async fn post(&self, path: &str, body: &str) -> common::Answer {
        common::request(&self.base, "POST", path, Some(TOKEN), body).await
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        let answer = common::request(&self.base, "GET", path, None, "").await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answer.json()
    }

    /// Waits until `GET /sessions/s1` shows it online and paired; answers its phone.
    async fn online(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            // 404 until the session's driver published its first status.
            let answer = common::request(&self.base, "GET", "/sessions/s1", None, "").await;
            let s = if answer.status == 200 {
                answer.json()
            } else {
                serde_json::Value::Null
            };
            if s["state"] == "online" && s["phone"].is_string() {
                return s["phone"].as_str().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "never online: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Texts the session received, by id (direction in).
    async fn received(&self) -> Vec<(String, String)> {
        let list = self
            .get("/sessions/s1/messages?direction=in&limit=1000")
            .await;
        list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let text = m["text"].as_str().unwrap_or_default().to_string();
                (m["id"].as_str().unwrap().to_string(), text)
            })
            .collect()
    }
}

/// A simulator, a data dir and a config with fast keepalives and `per_minute` as given.
struct Setup {
    sim: Handle,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(per_minute: u32) -> Setup {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = base64::engine::general_purpose::STANDARD.encode(sim.trust_root.0);
    let config = dir.path().join("sessions.toml");
    let text = format!(
        "[server]\nurl = \"{}\"\ntrust_root = \"{root}\"\n\n[storage]\ndata_dir = \"{}\"\n\n\
         [http]\ntoken = \"{TOKEN}\"\n\n\
         [policy]\nkeepalive_interval_min = \"1s\"\nkeepalive_interval_max = \"1s\"\n\
         keepalive_deadline = \"1s\"\ndead_after = \"3s\"\nbackoff_base = \"100ms\"\n\
         backoff_cap = \"500ms\"\n\n\
         [messages]\nper_minute = {per_minute}\nburst = 20\njitter = 0\n\n\
         [[session]]\nid = \"s1\"\nautostart = true\n",
        sim.ws_url,
        dir.path().join("data").display()
    );
    std::fs::write(&config, text).unwrap();
    sim.create_account(PEER).unwrap();
    Setup {
        sim,
        config,
        _dir: dir,
    }
}

/// Starts the child and pairs s1 through its QR; answers the child and s1's phone.
async fn paired_child(setup: &Setup) -> (Child, String) {
    let child = Child::spawn(&setup.config);
    let deadline = Instant::now() + WAIT;
    let qr = loop {
        let answer = child.post("/sessions/s1/pair", "").await;
        if answer.status == 200 {
            break answer.json()["qr"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no QR: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    setup.sim.scan(&qr, None).await.unwrap();
    let phone = child.online().await;
    // A device without uploaded pre-keys gets no bundle: wait for the first upload, so the
    // phone can write to it.
    while setup
        .sim
        .stats()
        .devices
        .values()
        .all(|d| d.prekey_uploads == 0)
    {
        assert!(Instant::now() < deadline, "pre-keys never uploaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, phone)
}

/// Queues `texts` from s1 to PEER over HTTP (each with its own key); answers the ids.
async fn queue(child: &Child, texts: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for text in texts {
        let body = format!(r#"{{"to":"{PEER}","text":"{text}","key":"{text}"}}"#);
        let answer = child.post("/sessions/s1/messages", &body).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        ids.push(answer.json()["id"].as_str().unwrap().to_string());
    }
    ids
}

async fn phone_got(sim: &Handle, phone: &str, n: usize) -> Vec<(String, String)> {
    common::delivery::phone_got(sim, phone, n, WAIT).await
}

async fn burst_then_kill(n: usize) {
    // 20 a second: a 1,000 burst lasts fifty seconds, 200 ten.
    let setup = setup(1_200).await;
    let (child, _) = paired_child(&setup).await;
    let texts: Vec<String> = (0..n).map(|i| format!("burst {i}")).collect();
    let ids = queue(&child, &texts).await;
    // Kill once a quarter has arrived, while the rest is queued or on the wire.
    let before = phone_got(&setup.sim, PEER, n / 4).await.len();
    child.kill();
    assert!(before < n, "the kill came after the burst: {before}");
    let child = Child::spawn(&setup.config);
    child.online().await;
    let got = phone_got(&setup.sim, PEER, n).await;
    exactly_once(&got, &ids, &texts);
    // Every message ends delivered in the outbox.
    let deadline = Instant::now() + WAIT;
    loop {
        let list = child
            .get(&format!("/sessions/s1/messages?direction=out&limit={n}"))
            .await;
        let list = list["messages"].as_array().unwrap().clone();
        let delivered = list.iter().filter(|m| m["status"] == "delivered").count();
        if list.len() == n && delivered == n {
            break;
        }
        assert!(Instant::now() < deadline, "{delivered} of {n} delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{n} messages, killed after {before}: each decrypted once; {} copies dropped as resends",
        setup.sim.stats().phone_duplicates
    );
    child.kill();
    setup.sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_burst_loses_and_repeats_nothing() {
    burst_then_kill(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "1,000 messages: about a minute in debug; run with --ignored"]
async fn a_sigkill_during_a_burst_of_1000_loses_and_repeats_nothing() {
    burst_then_kill(1_000).await;
}

/// The device JID of s1 at the simulator (its only paired device).
fn device(sim: &Handle) -> String {
    sim.stats().devices.keys().next().unwrap().clone()
}

async fn exchange_under_faults(n: usize) {
    let setup = setup(60_000).await;
    let (mut child, a_phone) = paired_child(&setup).await;
    let rounds = 10;
    let per_round = n / rounds / 2;
    let faults = ["drop", "restart", "stall"];
    let (mut out_ids, mut out_texts, mut in_ids, mut in_texts) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let texts: Vec<String> = (0..per_round)
            .map(|i| format!("to P {round}.{i}"))
            .collect();
        out_ids.extend(queue(&child, &texts).await);
        out_texts.extend(texts);
        for i in 0..per_round {
            let text = format!("to A {round}.{i}");
            in_ids.push(setup.sim.send_text(PEER, &a_phone, &text).unwrap());
            in_texts.push(text);
        }
        if round == rounds / 2 {
            child.kill();
            child = Child::spawn(&setup.config);
        } else {
            let kind = faults[round % faults.len()];
            let code = (kind == "restart").then_some(515);
            let fault = Fault::parse(
                kind,
                FaultArgs {
                    code,
                    ..FaultArgs::default()
                },
            )
            .unwrap();
            let _ = setup.sim.fault(&device(&setup.sim), fault).await;
        }
        child.online().await;
    }
    let got = phone_got(&setup.sim, PEER, out_ids.len()).await;
    exactly_once(&got, &out_ids, &out_texts);
    let deadline = Instant::now() + WAIT;
    let received = loop {
        let received = child.received().await;
        if received.len() >= in_ids.len() {
            break received;
        }
        assert!(
            Instant::now() < deadline,
            "A received {} of {}",
            received.len(),
            in_ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    exactly_once(&received, &in_ids, &in_texts);
    let stats = setup.sim.stats();
    assert_eq!(stats.decrypt_failures, 0, "no bad MAC anywhere: {stats:?}");
    let metrics = common::request(&child.base, "GET", "/metrics", None, "")
        .await
        .body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "wasp_decrypt_failures_total 0"),
        "wasp decrypted everything: {metrics}"
    );
    eprintln!(
        "{n} messages under faults and a SIGKILL: none lost, none twice; {} resends dropped by id",
        stats.phone_duplicates
    );
    child.kill();
    setup.sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_under_faults_and_a_sigkill_loses_and_repeats_nothing() {
    exchange_under_faults(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "1,000 messages: run with --ignored"]
async fn an_exchange_of_1000_under_faults_and_a_sigkill_loses_and_repeats_nothing() {
    exchange_under_faults(1_000).await;
}
