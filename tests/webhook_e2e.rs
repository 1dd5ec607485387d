//! Webhooks wired into a real pool (issue 13): a paired session's state change, the receipts
//! of a text it sends and the text it receives reach a real local receiver, signed with the
//! secret from the variable `secret_env` names; a receiver refusing with 400 fills
//! `GET /webhook/dead` (operator token only), and `POST /webhook/dead/redeliver` brings
//! those events once the receiver takes them; `/metrics` counts it all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use wasp::config::{SessionConfig, WebhookConfig, WebhookUrl};
use wasp::runner;
use wasp::session::policy::Policy;
use wasp::session::status::StateName;
use wasp::sim::{Server, SimConfig};

use crate::common::receiver::{Mode, Receiver};
use crate::common::{board, request};

const TOKEN: &str = "webhook-e2e-token";
const WAIT: Duration = Duration::from_secs(60);
const PEER: &str = "15557770042";
/// Tests may not set variables (no unsafe code): `secret_env` names one that every test
/// process has, and the receiver reads the same value.
const SECRET_ENV: &str = "PATH";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_events_reach_the_receiver_signed_and_refused_ones_can_be_redelivered() {
    let secret = std::env::var(SECRET_ENV).unwrap();
    let receiver = Receiver::start(&secret, Mode::Accept).await;
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
        secret_env: Some(SECRET_ENV.to_string()),
        retry_base: Duration::from_millis(20),
        retry_cap: Duration::from_millis(200),
        ..WebhookConfig::default()
    });
    let mut paired = SessionConfig::new("paired", policy.clone());
    paired.autostart = true;
    config.sessions = vec![paired];
    let started = runner::start(&config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);
    let status = board::wait_for(
        &started.running.handle.board,
        "paired",
        "online",
        WAIT,
        |s| s.state() == StateName::Online && s.account.paired && s.account.phone.is_some(),
    )
    .await;
    let own = status.account.phone.unwrap();
    sim.create_account(PEER).unwrap();
    // A device without uploaded pre-keys gets no copy from the phone: wait for the upload.
    let metrics = started.running.handle.metrics.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.prekeys_uploaded.get() < 812 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pre-keys never uploaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A text out, a text in: receipts, the message and the state changes arrive signed.
    let body = format!(r#"{{"to":"{PEER}","text":"hello hook"}}"#);
    let sent = request(
        &base,
        "POST",
        "/sessions/paired/messages",
        Some(TOKEN),
        &body,
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let id = sent.json()["id"].as_str().unwrap().to_string();
    let back = sim.send_text(PEER, &own, "hello wasp").unwrap();
    let hits = receiver
        .wait_for(WAIT, |hits| {
            let delivered = hits.iter().any(|h| {
                h.event == "receipt" && h.body["id"] == id && h.body["status"] == "delivered"
            });
            let message = hits
                .iter()
                .any(|h| h.event == "message" && h.body["id"] == back);
            delivered && message
        })
        .await;
    assert!(hits.iter().all(|h| h.session == "paired"));
    assert!(
        hits.iter()
            .any(|h| h.event == "state" && h.body["state"] == "online"),
        "the state change to online was sent"
    );
    let message = hits.iter().find(|h| h.body["id"] == back).unwrap();
    assert_eq!(message.body["text"], "hello wasp");
    assert_eq!(message.body["event"], "message");
    assert_eq!(receiver.counts().1, 0, "every signature verifies");

    // The dead letters are the operator's: no token, no list.
    let refused = request(&base, "GET", "/webhook/dead", None, "").await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let dead = request(&base, "GET", "/webhook/dead", Some(TOKEN), "").await;
    assert_eq!((dead.status, dead.json()["count"].as_u64()), (200, Some(0)));

    // A receiver that refuses with 400: the next text's receipts go to the dead letters.
    receiver.set_mode(Mode::Refuse(400, vec!["paired".into()]));
    let body = format!(r#"{{"to":"{PEER}","text":"refused hook"}}"#);
    let sent = request(
        &base,
        "POST",
        "/sessions/paired/messages",
        Some(TOKEN),
        &body,
    )
    .await;
    let second = sent.json()["id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + WAIT;
    let listed = loop {
        let dead = request(&base, "GET", "/webhook/dead", Some(TOKEN), "").await;
        let json = dead.json();
        let has_delivered = json["dead"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["body"]["id"] == second.as_str() && d["body"]["status"] == "delivered");
        if has_delivered {
            break json;
        }
        assert!(tokio::time::Instant::now() < deadline, "{json}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let count = listed["count"].as_u64().unwrap();
    assert!(count >= 2, "sent and delivered receipts: {listed}");
    assert!(
        listed["dead"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("400")
    );

    receiver.set_mode(Mode::Accept);
    let again = request(&base, "POST", "/webhook/dead/redeliver", None, "").await;
    assert_eq!(again.status, 401);
    let again = request(&base, "POST", "/webhook/dead/redeliver", Some(TOKEN), "").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["requeued"].as_u64(), Some(count));
    receiver
        .wait_for(WAIT, |hits| {
            hits.iter()
                .any(|h| h.body["id"] == second.as_str() && h.body["status"] == "delivered")
        })
        .await;
    let metrics = request(&base, "GET", "/metrics", None, "").await.body;
    assert!(
        metrics.contains(&format!("wasp_webhook_dead_total {count}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("wasp_webhook_delivered_total"),
        "{metrics}"
    );

    phone.cancel();
    runner::stop(started).await;
    sim.shutdown();
}
