//! The pool against the simulator over real sockets: pairing through the virtual phone, each
//! fault leading to the state and next action of SPEC.md's table, a mass drop of many
//! sessions with the rate limit and one socket per session, clean shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasp::config::{Config, SessionConfig};
use wasp::runner::{self, Started};
use wasp::session::Command;
use wasp::session::policy::Policy;
use wasp::session::status::{StateName, Status};
use wasp::sim::{Fault, Handle, Server, SimConfig};

use crate::common::board;

fn fast_policy() -> Policy {
    let ms = Duration::from_millis;
    Policy {
        keepalive_interval_min: ms(300),
        keepalive_interval_max: ms(400),
        // A missed deadline replaces the link: as tolerant as dead_after, so a 200-session
        // reconnect storm on a loaded machine is not taken for stalls.
        keepalive_deadline: ms(1500),
        dead_after: ms(1500),
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(5),
        backoff_base: ms(100),
        backoff_cap: ms(400),
        ..Policy::default()
    }
}

fn config(sim: &Handle, dir: &std::path::Path, n: usize, rate: u32) -> Config {
    let mut config = Config::default();
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = dir.to_path_buf();
    config.policy = fast_policy();
    config.limits.connects_per_second = rate;
    config.limits.connect_burst = rate;
    config.sessions = (0..n)
        .map(|i| {
            let mut s = SessionConfig::new(format!("s{i:03}"), fast_policy());
            s.autostart = true;
            s
        })
        .collect();
    config
}

struct Fleet {
    sim: Handle,
    started: Started,
    phone: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn fleet(n: usize, rate: u32) -> Fleet {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path(), n, rate);
    let started = runner::start(&config, None).await.unwrap();
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);
    Fleet {
        sim,
        started,
        phone,
        _dir: dir,
    }
}

impl Fleet {
    fn status(&self, id: &str) -> Status {
        self.started.running.handle.board.get(id).unwrap()
    }

    /// Waits (bounded) until `pred` holds for session `id`; panics with its status if not.
    async fn wait_for(&self, id: &str, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        let board = &self.started.running.handle.board;
        board::wait_for(board, id, what, Duration::from_secs(30), pred).await
    }

    /// Waits until `id` is online and has answered a keepalive on this link (a keepalive
    /// interval after the login, so the queries sent at login are answered and an abrupt
    /// close reads as a close, not as a reset of unread data).
    async fn steady(&self, id: &str) -> Status {
        let online = self
            .wait_for(id, "online", |s| s.state() == StateName::Online)
            .await;
        let before = online.liveness.last_rtt;
        self.wait_for(id, "a keepalive answered online", |s| {
            s.state() == StateName::Online && s.liveness.last_rtt != before
        })
        .await
    }

    async fn all_online(&self, n: usize) {
        let board = &self.started.running.handle.board;
        board::wait_for_all(board, "all online", Duration::from_secs(60), |all| {
            all.len() == n && all.iter().all(|s| s.state() == StateName::Online)
        })
        .await;
    }

    /// Stops the pool gracefully (what SIGTERM does) and starts it again on the same data
    /// directory and server, with autostart off: only the persisted flag can start a session.
    async fn restart_without_autostart(self) -> Fleet {
        let n = self.started.running.handle.board.snapshot().len();
        self.phone.cancel();
        runner::stop(self.started).await;
        let mut config = config(&self.sim, self._dir.path(), n, 5);
        for session in &mut config.sessions {
            session.autostart = false;
        }
        let started = runner::start(&config, None).await.unwrap();
        Fleet { started, ..self }
    }

    fn jid_of(&self, id: &str) -> String {
        let phone = self.status(id).account.phone.unwrap();
        self.sim
            .devices()
            .into_iter()
            .find(|j| j.starts_with(&format!("{phone}:")))
            .unwrap()
    }

    fn last_entry_with(
        &self,
        id: &str,
        state: StateName,
    ) -> Option<wasp::session::status::TimelineEntry> {
        self.status(id)
            .timeline
            .into_iter()
            .rev()
            .find(|e| e.state == state)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lead_to_the_states_of_the_table() {
    let f = fleet(1, 5).await;
    let id = "s000";
    f.wait_for(id, "online", |s| s.state() == StateName::Online)
        .await;
    assert!(f.status(id).account.paired);
    let jid = f.jid_of(id);

    // 515: straight back online, no backoff step.
    f.sim.fault(&jid, Fault::Restart).await.unwrap();
    f.wait_for(id, "the 515 note", |s| {
        s.timeline
            .iter()
            .any(|e| e.code == Some(515) && e.state == StateName::Online)
    })
    .await;
    f.wait_for(id, "online", |s| s.state() == StateName::Online)
        .await;
    assert!(
        f.last_entry_with(id, StateName::Backoff).is_none(),
        "515 must not back off"
    );

    // drop: backoff, then online again.
    f.steady(id).await;
    f.sim.fault(&jid, Fault::Drop).await.unwrap();
    f.wait_for(id, "a backoff after the drop", |s| {
        s.timeline
            .iter()
            .any(|e| e.state == StateName::Backoff && e.code == Some(428))
    })
    .await;
    f.wait_for(id, "online", |s| s.state() == StateName::Online)
        .await;

    // stall: keepalive misses lead to 408 within the dead-after bound, then online.
    f.sim.fault(&jid, Fault::Stall).await.unwrap();
    f.wait_for(id, "a 408 backoff", |s| {
        s.timeline
            .iter()
            .any(|e| e.state == StateName::Backoff && e.code == Some(408))
    })
    .await;
    f.wait_for(id, "online", |s| s.state() == StateName::Online)
        .await;

    // 402 with an expiry: cooldown until then.
    f.sim
        .fault(
            &jid,
            Fault::Failure {
                code: 402,
                expires_s: Some(600),
            },
        )
        .await
        .unwrap();
    let s = f
        .wait_for(id, "cooldown", |s| s.state() == StateName::Cooldown)
        .await;
    let until = s.cooldown_until().unwrap();
    let left = until.saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    f.started
        .running
        .handle
        .act(id, Command::ResetCooldown)
        .await
        .unwrap();
    f.wait_for(id, "online", |s| s.state() == StateName::Online)
        .await;

    // conflict: state conflict and no reconnect.
    let logins_before = f.sim.stats().logins;
    f.sim.fault(&jid, Fault::Conflict).await.unwrap();
    f.wait_for(id, "conflict", |s| s.state() == StateName::Conflict)
        .await;
    assert_eq!(f.status(id).conflicts_1h, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.status(id).state(), StateName::Conflict);
    assert_eq!(
        f.sim.stats().logins,
        logins_before,
        "conflict must not reconnect"
    );
    // The operator's reconnect brings it back with exactly one new login.
    f.started
        .running
        .handle
        .act(id, Command::ReconnectNow)
        .await
        .unwrap();
    f.wait_for(id, "online", |s| s.state() == StateName::Online)
        .await;
    assert_eq!(f.sim.stats().logins, logins_before + 1);

    // logout: logged_out, credentials backed up then wiped.
    f.sim.fault(&jid, Fault::Logout).await.unwrap();
    let s = f
        .wait_for(id, "logged_out", |s| s.state() == StateName::LoggedOut)
        .await;
    assert!(!s.account.paired);
    let session_dir = f._dir.path().join(id);
    assert!(
        !session_dir.join("creds.wasp").exists(),
        "credentials must be wiped"
    );
    let backups = std::fs::read_dir(session_dir.join("backups"))
        .unwrap()
        .count();
    assert!(backups >= 1, "a backup must be taken before the wipe");
    f.wait_for(id, "its backup count", |s| s.backups.count >= 1)
        .await;

    f.phone.cancel();
    runner::stop(f.started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_drop_recovers_within_the_rate_limit_with_one_socket_per_session() {
    const N: usize = 200;
    const RATE: u32 = 50;
    let f = fleet(N, RATE).await;
    f.all_online(N).await;
    // The simulator's view as well: every device logged in on one live connection (a login
    // can still be settling there when the board already shows it online).
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.sim.live_devices().len() != N {
        assert!(
            Instant::now() < deadline,
            "the simulator never saw {N} live devices: {}",
            f.sim.live_devices().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let granted_before = f.started.running.handle.metrics.connects.get();
    let start = Instant::now();
    assert_eq!(f.sim.fault("*", Fault::Drop).await.unwrap(), N);
    // Wait until every session has seen the drop and is online again.
    let board = &f.started.running.handle.board;
    board::wait_for_all(
        board,
        "every session back online",
        Duration::from_secs(60),
        |all| {
            all.iter()
                .filter(|s| {
                    s.state() == StateName::Online
                        && s.timeline
                            .iter()
                            .any(|e| e.state == StateName::Backoff && e.at >= start)
                })
                .count()
                == N
        },
    )
    .await;
    let elapsed = start.elapsed();
    let dials = f.started.running.handle.metrics.connects.get() - granted_before;
    assert!(dials >= N as u64);
    // The token bucket allows at most burst + rate * t dials in t seconds.
    let allowed = RATE as f64 + RATE as f64 * elapsed.as_secs_f64() + 1.0;
    assert!(
        (dials as f64) <= allowed,
        "{dials} dials in {elapsed:?} exceed the limit ({allowed})"
    );
    let stats = f.sim.stats();
    assert_eq!(
        stats.max_concurrent_per_device, 1,
        "a device had two live logins"
    );
    assert_eq!(stats.conflicts_sent, 0);

    // Shutdown closes every socket within the budget.
    f.phone.cancel();
    let sim = f.sim.clone();
    let stop = Instant::now();
    runner::stop(f.started).await;
    assert!(stop.elapsed() <= Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.stats().connections > 0 {
        assert!(
            Instant::now() < deadline,
            "{} sockets left open",
            sim.stats().connections
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = Arc::new(());
}

/// A graceful stop (what SIGTERM does) during an outage keeps the session meant to be online:
/// the next start resumes it although it is not autostarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_during_an_outage_resumes_the_session_at_the_next_start() {
    let f = fleet(1, 5).await;
    let id = "s000";
    f.steady(id).await;
    let jid = f.jid_of(id);
    let outage = Fault::Failure {
        code: 402,
        expires_s: Some(600),
    };
    f.sim.fault(&jid, outage).await.unwrap();
    f.wait_for(id, "cooldown", |s| s.state() == StateName::Cooldown)
        .await;
    let f = f.restart_without_autostart().await;
    let s = f
        .wait_for(id, "online again", |s| s.state() == StateName::Online)
        .await;
    assert!(
        s.timeline.iter().any(|e| e.cause == "start"),
        "resumed by the start rule: {:?}",
        s.timeline
    );
    runner::stop(f.started).await;
}

/// The contrast: a session the operator stopped stays stopped at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stopped_by_the_operator_stays_stopped_at_the_next_start() {
    let f = fleet(1, 5).await;
    let id = "s000";
    f.steady(id).await;
    let handle = &f.started.running.handle;
    handle.act(id, Command::Disconnect).await.unwrap();
    f.wait_for(id, "stopped", |s| s.state() == StateName::Stopped)
        .await;
    let f = f.restart_without_autostart().await;
    let s = f.wait_for(id, "its first status", |_| true).await;
    assert_eq!(s.state(), StateName::Stopped, "{:?}", s.timeline);
    runner::stop(f.started).await;
}
