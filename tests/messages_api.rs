//! The message API over real sockets (issue 13), against the simulator as a relay: a queued
//! text comes back as 202 with its id, the same key returns the same message, the message is
//! delivered and shows so in `GET …/messages/{id}`, `/events` carries its `receipt` events and
//! the reply's `message` event, `/metrics` counts per session and so does the status (the
//! console's last-hour columns). Bad input gets a 4xx with one
//! sentence and changes nothing: the outbox stays empty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasp::config::SessionConfig;
use wasp::runner::{self, Started};
use wasp::session::policy::Policy;
use wasp::session::status::StateName;
use wasp::sim::{Handle, Server, SimConfig};

use crate::common::{EventStream, board, request};

const TOKEN: &str = "outbox-test-token";
const WAIT: Duration = Duration::from_secs(60);
const PEER: &str = "15557770001";

struct Pool {
    sim: Handle,
    started: Started,
    base: String,
    phone: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.phone.cancel();
        self.sim.shutdown();
    }
}

/// A pool with `paired` (paired by the virtual phone) and `lonely` (never paired).
async fn pool() -> Pool {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        ..Policy::default()
    };
    let mut config = common::messages_config_on(&sim, dir.path(), TOKEN);
    let mut paired = SessionConfig::new("paired", policy.clone());
    paired.autostart = true;
    config.sessions = vec![paired, SessionConfig::new("lonely", policy)];
    let addr = "127.0.0.1:0".parse().unwrap();
    let started = runner::start(&config, Some(addr)).await.unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);
    board::wait_for(
        &started.running.handle.board,
        "paired",
        "online and paired",
        WAIT,
        |s| s.state() == StateName::Online && s.account.paired,
    )
    .await;
    sim.create_account(PEER).unwrap();
    Pool {
        sim,
        started,
        base,
        phone,
        _dir: dir,
    }
}

impl Pool {
    async fn post(&self, session: &str, body: &str, token: Option<&str>) -> common::Answer {
        let path = format!("/sessions/{session}/messages");
        request(&self.base, "POST", &path, token, body).await
    }

    async fn get(&self, path: &str) -> common::Answer {
        request(&self.base, "GET", path, None, "").await
    }

    async fn listed(&self, session: &str, direction: &str) -> Vec<serde_json::Value> {
        let path = format!("/sessions/{session}/messages?direction={direction}&limit=100");
        let answer = self.get(&path).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["messages"].as_array().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_one_sentence_and_changes_nothing() {
    let pool = pool().await;
    let long = "x".repeat(65_537);
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "paired",
            format!(r#"{{"to":"{PEER}","text":"hi"}}"#),
            None,
            401,
            "Bearer",
        ),
        (
            "paired",
            "not json".into(),
            Some(TOKEN),
            400,
            "must be JSON",
        ),
        (
            "paired",
            r#"{"to":"12ab","text":"hi"}"#.into(),
            Some(TOKEN),
            400,
            "12ab",
        ),
        (
            "paired",
            r#"{"to":"1@g.us","text":"hi"}"#.into(),
            Some(TOKEN),
            400,
            "1@g.us",
        ),
        (
            "paired",
            format!(r#"{{"to":"{PEER}","text":"  "}}"#),
            Some(TOKEN),
            400,
            "empty",
        ),
        (
            "paired",
            format!(r#"{{"to":"{PEER}","text":"{long}"}}"#),
            Some(TOKEN),
            400,
            "65537 bytes",
        ),
        (
            "paired",
            format!(r#"{{"to":"{PEER}","text":"hi","key":""}}"#),
            Some(TOKEN),
            400,
            "key",
        ),
        (
            "paired",
            format!(r#"{{"to":"{PEER}","text":"hi","x":1}}"#),
            Some(TOKEN),
            400,
            "unknown field",
        ),
        (
            "nobody",
            format!(r#"{{"to":"{PEER}","text":"hi"}}"#),
            Some(TOKEN),
            404,
            "no session named nobody",
        ),
        (
            "lonely",
            format!(r#"{{"to":"{PEER}","text":"hi"}}"#),
            Some(TOKEN),
            409,
            "not paired",
        ),
    ];
    for (session, body, token, status, says) in cases {
        let answer = pool.post(session, &body, token).await;
        assert_eq!(
            answer.status,
            status,
            "{session} {}: {}",
            &body[..body.len().min(60)],
            answer.body
        );
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(says), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
    for (path, status) in [
        ("/sessions/paired/messages?direction=sideways", 400),
        ("/sessions/paired/messages?limit=0", 400),
        ("/sessions/paired/messages/3EB0NOTTHERE", 404),
        ("/sessions/nobody/messages", 404),
    ] {
        assert_eq!(pool.get(path).await.status, status, "{path}");
    }
    assert!(
        pool.listed("paired", "out").await.is_empty(),
        "nothing queued"
    );
    assert!(pool.listed("lonely", "out").await.is_empty());
    assert!(pool.sim.messages(PEER).unwrap().is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_text_is_delivered_once_and_reported_on_events_and_metrics() {
    let pool = pool().await;
    let mut events = EventStream::open(&pool.base).await;
    let body = format!(r#"{{"to":"+{PEER}","text":"hello P","key":"order-1"}}"#);
    let first = pool.post("paired", &body, Some(TOKEN)).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let id = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(first.json()["status"], "queued");
    // The same key: the first message, nothing queued twice.
    let again = pool.post("paired", &body, Some(TOKEN)).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["id"], id.as_str());

    let (delivered, _) = events
        .find("receipt", WAIT, |d| {
            d.contains(&id) && d.contains("\"delivered\"")
        })
        .await;
    let delivered: serde_json::Value = serde_json::from_str(&delivered.unwrap()).unwrap();
    assert_eq!(delivered["session"], "paired");
    let shown = pool
        .get(&format!("/sessions/paired/messages/{id}"))
        .await
        .json();
    assert_eq!(shown["status"], "delivered", "{shown}");
    assert_eq!(shown["to"], format!("{PEER}@s.whatsapp.net"));
    assert!(shown["queued_at"].as_u64().unwrap() <= shown["delivered_at"].as_u64().unwrap());
    let got = pool.sim.messages(PEER).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].id.as_str(), got[0].text.as_deref()),
        (id.as_str(), Some("hello P"))
    );

    // P answers: a `message` event with the session, and the in list.
    let a_phone = pool
        .started
        .running
        .handle
        .board
        .get("paired")
        .unwrap()
        .account
        .phone
        .unwrap();
    let reply = pool.sim.send_text(PEER, &a_phone, "hello A").unwrap();
    let (message, _) = events.find("message", WAIT, |d| d.contains(&reply)).await;
    let message: serde_json::Value = serde_json::from_str(&message.unwrap()).unwrap();
    assert_eq!(
        (message["session"].as_str(), message["text"].as_str()),
        (Some("paired"), Some("hello A"))
    );
    let inbound = pool.listed("paired", "in").await;
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0]["id"], reply.as_str());
    assert_eq!(inbound[0]["type"], "text");
    assert_eq!(pool.listed("paired", "out").await.len(), 1);
    // The console's figures: the last hour's counts in the session's status.
    board::wait_for(
        &pool.started.running.handle.board,
        "paired",
        "one sent, delivered and received in the hour",
        WAIT,
        |s| {
            (
                s.outbox.sent_1h,
                s.outbox.delivered_1h,
                s.outbox.received_1h,
            ) == (1, 1, 1)
        },
    )
    .await;

    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = pool.get("/metrics").await.body;
        let has = |line: &str| metrics.lines().any(|l| l == line);
        if has(r#"wasp_session_messages_total{session="paired",event="delivered"} 1"#)
            && has(r#"wasp_session_messages_total{session="paired",event="received"} 1"#)
            && has(r#"wasp_outbox_depth{session="paired"} 0"#)
            && metrics.contains("wasp_message_delivery_seconds_count 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
