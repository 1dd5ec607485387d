//! A config reload (what SIGHUP does in `wasp headless`, through the same `runner::reload`)
//! applies `[messages]` send limits and the `[webhook]` URL to a running, paired session:
//! messages queued behind `per_minute = 1` go out at the new rate, none is dropped, and the
//! webhook events after the reload reach the new receiver.

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

const TOKEN: &str = "reload-token";
/// Far below the 3 minutes the last message would wait at the old `per_minute = 1`.
const WAIT: Duration = Duration::from_secs(60);
const PEER: &str = "15557770043";

fn delivered(hits: &[common::receiver::Hit], id: &str) -> bool {
    hits.iter()
        .any(|h| h.event == "receipt" && h.body["id"] == id && h.body["status"] == "delivered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_send_rate_and_the_webhook_url_of_a_running_session() {
    let old_receiver = Receiver::start(&std::env::var("PATH").unwrap(), Mode::Accept).await;
    let new_receiver = Receiver::start(&std::env::var("PATH").unwrap(), Mode::Accept).await;
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        ..Policy::default()
    };
    let mut config = common::messages_config_on(&sim, dir.path(), TOKEN);
    config.messages.per_minute = 1;
    config.messages.burst = 1;
    config.webhook = Some(WebhookConfig {
        url: Some(WebhookUrl::parse(&old_receiver.url).unwrap()),
        // The receiver checks signatures: sign with a variable every test process has.
        secret_env: Some("PATH".to_string()),
        ..WebhookConfig::default()
    });
    let mut session = SessionConfig::new("s", policy);
    session.autostart = true;
    config.sessions = vec![session];
    let mut started = runner::start(&config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);
    board::wait_for(&started.running.handle.board, "s", "online", WAIT, |s| {
        s.state() == StateName::Online && s.account.paired
    })
    .await;
    sim.create_account(PEER).unwrap();
    let metrics = started.running.handle.metrics.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.prekeys_uploaded.get() < 812 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pre-keys never uploaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut ids = Vec::new();
    for n in 0..4 {
        let body = format!(r#"{{"to":"{PEER}","text":"reload {n}"}}"#);
        let sent = request(&base, "POST", "/sessions/s/messages", Some(TOKEN), &body).await;
        assert_eq!(sent.status, 202, "{}", sent.body);
        ids.push(sent.json()["id"].as_str().unwrap().to_string());
    }
    // One a minute: the first goes, the others wait.
    old_receiver
        .wait_for(WAIT, |hits| delivered(hits, &ids[0]))
        .await;
    // The board follows the messenger's queue through the driver, a step behind it.
    board::wait_for(
        &started.running.handle.board,
        "s",
        "the others waiting behind the first",
        WAIT,
        |s| s.outbox.queued >= 2 && s.outbox.sent_1h == 1,
    )
    .await;

    let mut new = config.clone();
    new.messages.per_minute = 6000;
    new.messages.burst = 10;
    new.webhook.as_mut().unwrap().url = Some(WebhookUrl::parse(&new_receiver.url).unwrap());
    runner::reload(&mut started, &config, new).await.unwrap();

    let hits = new_receiver
        .wait_for(WAIT, |hits| delivered(hits, &ids[3]))
        .await;
    for id in &ids[1..] {
        let path = format!("/sessions/s/messages/{id}");
        let one = request(&base, "GET", &path, Some(TOKEN), "").await;
        let status = one.json()["status"].as_str().unwrap().to_string();
        assert!(
            status == "delivered" || status == "read",
            "{id}: {}",
            one.body
        );
    }
    assert!(hits.iter().all(|h| h.session == "s"));
    assert!(
        !delivered(&old_receiver.hits(), &ids[3]),
        "events after the reload go to the new URL"
    );
    assert_eq!(
        metrics.webhook_dead.get(),
        0,
        "no event was dropped or dead-lettered"
    );

    phone.cancel();
    runner::stop(started).await;
    sim.shutdown();
}
