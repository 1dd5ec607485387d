//! The end-to-end probe against the simulator (issue 13): three paired sessions probe one of
//! them (`[probe] peer`); the simulator then silently swallows one session's outgoing messages
//! (fault `blackhole`: still acked, never relayed). That session, whose socket stays healthy,
//! is marked degraded in `/sessions` and `/metrics` and, with `reconnect_on_silence`, logs in
//! again; the others stay healthy; once the blackhole ends, its next probe clears the mark.
//! Probes count for no traffic figure and reach no webhook.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use wasp::config::{ProbeConfig, ProbePeer, SessionConfig, WebhookConfig, WebhookUrl};
use wasp::runner;
use wasp::session::policy::Policy;
use wasp::session::status::StateName;
use wasp::sim::{Fault, Server, SimConfig};

use crate::common::receiver::{Mode, Receiver};
use crate::common::{board, request};

const TOKEN: &str = "probe-e2e-token";
const WAIT: Duration = Duration::from_secs(90);

async fn sessions_json(base: &str) -> serde_json::Value {
    let answer = request(base, "GET", "/sessions", None, "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

fn row<'a>(json: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    json.as_array()
        .or_else(|| json["sessions"].as_array())
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_session_is_degraded_and_reconnected_while_the_others_stay_healthy() {
    let receiver = Receiver::start(&std::env::var("PATH").unwrap(), Mode::Accept).await;
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        ..Policy::default()
    };
    let mut config = common::messages_config_on(&sim, dir.path(), TOKEN);
    config.webhook = Some(WebhookConfig {
        url: Some(WebhookUrl::parse(&receiver.url).unwrap()),
        // The receiver checks signatures: sign with a variable every test process has.
        secret_env: Some("PATH".to_string()),
        ..WebhookConfig::default()
    });
    config.probe = Some(ProbeConfig {
        peer: ProbePeer::Session("peer".into()),
        every: Duration::from_millis(500),
        probe_deadline: Duration::from_secs(3),
        reconnect_on_silence: true,
    });
    config.sessions = ["peer", "quiet", "loud"]
        .iter()
        .map(|id| {
            let mut s = SessionConfig::new(*id, policy.clone());
            s.autostart = true;
            s
        })
        .collect();
    let started = runner::start(&config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);
    let handle = &started.running.handle;
    let mut phones = Vec::new();
    for id in ["peer", "quiet", "loud"] {
        let status = board::wait_for(&handle.board, id, "online and paired", WAIT, |s| {
            s.state() == StateName::Online && s.account.paired && s.account.phone.is_some()
        })
        .await;
        phones.push(status.account.phone.unwrap());
    }
    // Probes flow: the simulator relays them to the peer; no session is degraded.
    let deadline = tokio::time::Instant::now() + WAIT;
    let loud = sim
        .devices()
        .into_iter()
        .find(|j| j.starts_with(&format!("{}:", phones[2])))
        .unwrap();
    let relayed = sim.stats().messages_relayed;
    while sim.stats().messages_relayed < relayed + 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no probe was relayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let json = sessions_json(&base).await;
    for id in ["peer", "quiet", "loud"] {
        assert_eq!(row(&json, id)["degraded"], false, "{json}");
    }

    // The simulator swallows loud's messages: its probe is acked, never delivered.
    let logins_before = sim.stats().devices[&loud].logins;
    sim.fault(&loud, Fault::Blackhole(true)).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let json = sessions_json(&base).await;
        if row(&json, "loud")["degraded"] == true {
            assert_eq!(row(&json, "quiet")["degraded"], false, "{json}");
            assert_eq!(row(&json, "peer")["degraded"], false, "{json}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never degraded: {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sim.stats().messages_blackholed > 0);
    let metrics = request(&base, "GET", "/metrics", None, "").await.body;
    assert!(
        metrics.contains("wasp_session_degraded{session=\"loud\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wasp_session_degraded{session=\"quiet\"} 0"),
        "{metrics}"
    );
    // reconnect_on_silence: loud logs in again.
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.stats().devices[&loud].logins <= logins_before {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The blackhole ends: the next probe arrives and clears the mark.
    sim.fault(&loud, Fault::Blackhole(false)).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let json = sessions_json(&base).await;
        if row(&json, "loud")["degraded"] == false {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still degraded: {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Probes are no traffic: no counts, no listed messages, no webhook message or receipt.
    for id in ["peer", "quiet", "loud"] {
        let status = handle.board.get(id).unwrap();
        let o = status.outbox;
        assert_eq!(
            (o.sent_1h, o.delivered_1h, o.received_1h),
            (0, 0, 0),
            "{id}"
        );
        let path = format!("/sessions/{id}/messages");
        let listed = request(&base, "GET", &path, Some(TOKEN), "").await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        assert!(!listed.body.contains("wasp-probe"), "{id}: {}", listed.body);
    }
    assert!(
        receiver.hits().iter().all(|h| h.event == "state"),
        "only state events reach the webhook"
    );

    phone.cancel();
    runner::stop(started).await;
    sim.shutdown();
}
