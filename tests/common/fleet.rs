//! A pool of wasp sessions against an in-process simulator, for the message tests: every
//! session paired by the virtual phone, online, its pre-keys uploaded; sends that retry
//! while the messenger has not learnt of the login; message events collected with a
//! deadline. Include with `mod common;` and `#[path = "common/fleet.rs"] mod fleet;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use wasp::config::{Config, HttpConfig, HttpToken, SessionConfig};
use wasp::net::messages::{MessageEvent, MessageEventKind, MessageStatus};
use wasp::runner::{self, Started};
use wasp::session::policy::Policy;
use wasp::session::status::StateName;
use wasp::sim::{Handle, Server, SimConfig};

use crate::common::board;

/// The longest wait for one step.
pub const WAIT: Duration = Duration::from_secs(60);

fn policy() -> Policy {
    Policy {
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(400),
        ..Policy::default()
    }
}

pub struct Fleet {
    pub sim: Handle,
    pub started: Started,
    /// `http://ADDR` of the HTTP API when one was asked for.
    pub http: Option<String>,
    pub phone: CancellationToken,
    pub _dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.phone.cancel();
        self.sim.shutdown();
    }
}

/// `n` sessions `s0`.. online with their pre-keys uploaded.
pub async fn fleet(n: usize) -> Fleet {
    fleet_with(n, None).await
}

/// `fleet`, with the HTTP API on 127.0.0.1 behind `token` when one is given.
pub async fn fleet_with(n: usize, token: Option<&str>) -> Fleet {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    // Tests send as fast as the relay takes them: no send limits worth the name.
    config.messages.per_minute = 60_000;
    config.messages.burst = 1_000;
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = dir.path().to_path_buf();
    config.policy = policy();
    config.sessions = (0..n)
        .map(|i| {
            let mut s = SessionConfig::new(format!("s{i}"), policy());
            s.autostart = true;
            s
        })
        .collect();
    config.http = token.map(|t| HttpConfig {
        token: Some(HttpToken::new(t)),
        ..HttpConfig::default()
    });
    let listen = token.map(|_| "127.0.0.1:0".parse().unwrap());
    let started = runner::start(&config, listen).await.unwrap();
    let http = started.http.as_ref().map(|h| format!("http://{}", h.addr));
    let phone = CancellationToken::new();
    tokio::spawn(runner::virtual_phone(
        started.running.handle.board.clone(),
        sim.clone(),
        Duration::from_millis(10),
        Duration::from_millis(50),
        phone.clone(),
    ));
    let fleet = Fleet {
        sim,
        started,
        http,
        phone,
        _dir: dir,
    };
    for i in 0..n {
        fleet.online(&format!("s{i}")).await;
    }
    // A device without uploaded pre-keys gets no bundle, so senders leave it out (as the
    // real server makes them): wait for every session's first upload.
    let metrics = fleet.started.running.handle.metrics.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.prekeys_uploaded.get() < 812 * n as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pre-keys never uploaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet
}

impl Fleet {
    /// Waits until `id` is online and returns its phone.
    pub async fn online(&self, id: &str) -> String {
        let board = &self.started.running.handle.board;
        let status = board::wait_for(board, id, "online", WAIT, |s| {
            s.state() == StateName::Online && s.account.phone.is_some()
        })
        .await;
        status.account.phone.unwrap()
    }

    /// Sends, retrying while the session's messenger has not learnt of its login yet.
    pub async fn send(&self, session: &str, to: &str, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self
                .started
                .running
                .handle
                .send_text(session, to, text)
                .await
            {
                Ok(id) => return id.0,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "{session}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Collects events until `done` says enough; panics on a failed send or after `WAIT`.
pub async fn collect(
    events: &mut broadcast::Receiver<MessageEvent>,
    mut done: impl FnMut(&MessageEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("timed out waiting for message events")
            .expect("no event lost");
        if let MessageEventKind::Status {
            status: MessageStatus::Failed(why),
            ..
        } = &event.kind
        {
            panic!("a send failed: {why}");
        }
        if done(&event) {
            return;
        }
    }
}

/// Texts `session` received from `chat`, in order, until `n` arrived.
pub async fn receive(
    events: &mut broadcast::Receiver<MessageEvent>,
    session: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut got = Vec::new();
    collect(events, |e| {
        if e.session == session
            && let MessageEventKind::Received(m) = &e.kind
            && !m.from_me
        {
            got.push((m.id.clone(), m.text.clone().unwrap_or_default()));
        }
        got.len() >= n
    })
    .await;
    got
}
