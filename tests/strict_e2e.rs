//! Issue 11 end to end: wasp's real pool against the strict simulator. A session stays
//! online through pushes, pre-key consumption and refills with nothing unacked; after a
//! graceful stop and after a kill the stanzas pushed meanwhile are redelivered and acked and
//! nothing is uploaded twice. Without acks the console shows `stream_error_ack`. A refused
//! version is named by `wasp headless` and cured by `client_version` and SIGHUP. 200
//! sessions with every push on: all online, one login per device, no ack error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::ui_support;

use std::time::Duration;

use base64::Engine;
use tokio::time::Instant;
use wasp::session::status::{StateName, Status};
use wasp::sim::stats::{DeviceStats, Stats};
use wasp::sim::{Handle, Server, SimConfig, StrictPatch, Strictness, pushes};
use wasp::ui::{Model, Msg, Settings, update};
use wasp::wa::payload::ClientVersion;

use crate::common::board::{wait_for, wait_for_all};
use crate::common::headless::Headless;
use crate::common::live::{LivePool, config, short_policy};

const WAIT: Duration = Duration::from_secs(60);

async fn strict_sim(ack_timeout: Duration) -> Handle {
    Server::start(SimConfig {
        strict: Strictness {
            ack_timeout,
            ..Strictness::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Waits until the simulator's figures satisfy `pred`; panics with them after `within`.
async fn wait_stats(sim: &Handle, what: &str, within: Duration, pred: impl Fn(&Stats) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let stats = sim.stats();
        if pred(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {stats:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn device(sim: &Handle) -> (String, DeviceStats) {
    let stats = sim.stats();
    let (jid, d) = stats.devices.iter().next().expect("one device");
    (jid.clone(), d.clone())
}

fn online(s: &Status) -> bool {
    s.state() == StateName::Online
}

/// Online, paired, and a keepalive answered on this link (the login's queries are done).
async fn steady(pool: &LivePool, id: &str) {
    let board = pool.board();
    let first = wait_for(&board, id, "online", WAIT, |s| {
        online(s) && s.account.paired
    })
    .await;
    let rtt = first.liveness.last_rtt;
    wait_for(&board, id, "a keepalive answered", WAIT, |s| {
        online(s) && s.liveness.last_rtt != rtt
    })
    .await;
}

/// Pushes an account_sync notification and a read receipt to `jid`.
async fn push_pair(sim: &Handle, jid: &str) {
    let phone = jid.split(':').next().unwrap();
    let now = 1_700_000_000;
    sim.push(jid, pushes::account_sync(phone, &[0, 1], now))
        .await
        .unwrap();
    sim.push(jid, pushes::read_receipt(now)).await.unwrap();
}

/// The soak: pairs one session, then for `rounds` rounds waits `pause`, consumes 200
/// pre-keys and pushes an account_sync and a receipt; the last rounds drain the keys under
/// the low water so the `encrypt` notification asks for a refill. Answers keys consumed.
async fn soak(sim: &Handle, pool: &LivePool, rounds: usize, pause: Duration) -> usize {
    steady(pool, "s000").await;
    // The first upload runs beside the login; on a loaded machine it may end after the
    // first keepalive.
    wait_stats(sim, "the first pre-key upload", WAIT, |s| {
        s.devices.values().any(|d| d.prekey_uploads >= 1)
    })
    .await;
    let (jid, d) = device(sim);
    assert_eq!((d.prekeys, d.prekey_uploads), (812, 1), "{d:?}");
    let mut consumed = 0;
    for round in 0..rounds {
        tokio::time::sleep(pause).await;
        let left = sim.stats().devices[&jid].prekeys as usize;
        // Leave 2 in the fourth round of each five: the refill brings 50 back.
        let take = if round % 5 == 3 {
            left - 2
        } else {
            200.min(left / 2)
        };
        sim.consume_prekeys(&jid, take).await.unwrap();
        consumed += take;
        push_pair(sim, &jid).await;
        assert!(online(&pool.board().get("s000").unwrap()), "round {round}");
    }
    consumed
}

/// End of a stretch: everything acked, no ack error, and the server holds exactly the 812
/// first keys, less the `consumed` ones, plus 50 for each refill.
async fn settled(sim: &Handle, consumed: usize, what: &str) -> DeviceStats {
    wait_stats(sim, what, WAIT, |s| {
        s.devices.values().all(|d| d.unacked == 0)
    })
    .await;
    let (_, d) = device(sim);
    assert_eq!(sim.stats().stream_errors_ack, 0, "{what}");
    assert_eq!(d.stream_errors_ack, 0, "{what}");
    let refills = (d.prekey_uploads - 1) as usize;
    assert_eq!(
        d.prekeys as usize + consumed,
        812 + 50 * refills,
        "{what}: {d:?} after {consumed} consumed"
    );
    assert!(d.prekeys >= 5, "{what}: {d:?}");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stays_online_and_restarts_ack_what_came_meanwhile() {
    let sim = strict_sim(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path(), 1, short_policy());
    let pool = LivePool::start(&config, true);
    let phone = pool.phone(&sim);
    let consumed = soak(&sim, &pool, 10, Duration::from_millis(400)).await;
    let d = settled(&sim, consumed, "acked in the soak").await;
    assert_eq!(d.logins, 1, "one login for the whole stretch: {d:?}");
    assert!(
        d.prekey_uploads >= 2,
        "the encrypt notification refilled: {d:?}"
    );
    assert!(d.acks_received >= 20, "{d:?}");
    assert_eq!(pool.metrics().undecodable_nodes.get(), 0);
    phone.cancel();

    // Graceful stop, then pushes and a drained key store while it is away.
    let (jid, _) = device(&sim);
    pool.stop().await;
    wait_stats(&sim, "logged out", WAIT, |s| s.logged_in == 0).await;
    let (uploads, taken) = run_away(&sim, &jid).await;
    let mut consumed = consumed + taken;
    let pool = LivePool::start(&config, true);
    steady(&pool, "s000").await;
    let d = settled(&sim, consumed, "redelivered after a graceful stop").await;
    assert_eq!(
        d.prekey_uploads,
        uploads + 1,
        "one refill, no second 812: {d:?}"
    );
    assert_eq!(d.prekeys, 52, "{d:?}");

    // Killed: the runtime is dropped with the socket open.
    pool.kill().await;
    wait_stats(&sim, "logged out", WAIT, |s| s.logged_in == 0).await;
    let (uploads, taken) = run_away(&sim, &jid).await;
    consumed += taken;
    let pool = LivePool::start(&config, true);
    steady(&pool, "s000").await;
    let d = settled(&sim, consumed, "redelivered after a kill").await;
    assert_eq!(
        d.prekey_uploads,
        uploads + 1,
        "one refill, no second 812: {d:?}"
    );
    assert_eq!(d.logins, 3, "{d:?}");
    assert_eq!(d.max_concurrent, 1);
    assert_eq!(pool.metrics().undecodable_nodes.get(), 0);
    pool.stop().await;
}

/// While the client is away: an account_sync and a receipt pushed, and pre-keys drained to 2
/// (the `encrypt` notification waits in the queue). Answers the uploads so far and the keys
/// taken.
async fn run_away(sim: &Handle, jid: &str) -> (u64, usize) {
    push_pair(sim, jid).await;
    let left = sim.stats().devices[jid].prekeys as usize;
    sim.consume_prekeys(jid, left - 2).await.unwrap();
    let d = &sim.stats().devices[jid];
    assert!(d.unacked >= 3, "stanzas wait for the next login: {d:?}");
    (d.prekey_uploads, left - 2)
}

/// Ten real minutes with the default timers (20 s ack timeout, default keepalive); prints
/// its figures for docs/benchmarks.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs 10 minutes"]
async fn ten_minutes_online_with_default_timers() {
    let sim = strict_sim(Strictness::default().ack_timeout).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&sim, dir.path(), 1, Default::default());
    config.policy.connect_timeout = Duration::from_secs(20);
    let pool = LivePool::start(&config, true);
    let phone = pool.phone(&sim);
    let started = std::time::Instant::now();
    let consumed = soak(&sim, &pool, 20, Duration::from_secs(30)).await;
    let d = settled(&sim, consumed, "acked after ten minutes").await;
    assert_eq!(d.logins, 1, "{d:?}");
    let stats = sim.stats();
    println!(
        "strict soak: {:?} online, logins {}, pushed {}, acks {}, unacked {}, stream_errors_ack {}, \
         prekeys {} after {} consumed, uploads {}, undecodable {}",
        started.elapsed(),
        d.logins,
        stats.pushed,
        d.acks_received,
        d.unacked,
        stats.stream_errors_ack,
        d.prekeys,
        consumed,
        d.prekey_uploads,
        pool.metrics().undecodable_nodes.get()
    );
    phone.cancel();
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_the_stream_ends_with_the_ack_error_and_the_console_says_so() {
    let sim = strict_sim(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path(), 1, short_policy());
    let pool = LivePool::start(&config, false);
    let phone = pool.phone(&sim);
    let board = pool.board();
    let status = wait_for(&board, "s000", "the ack stream error", WAIT, |s| {
        s.last_cause.as_deref() == Some("stream_error_ack")
    })
    .await;
    phone.cancel();
    assert!(sim.stats().stream_errors_ack >= 1);
    let entry = status
        .timeline
        .iter()
        .rev()
        .find(|e| e.cause == "stream_error_ack")
        .unwrap();
    assert!(entry.detail.contains("<ack id="), "{}", entry.detail);

    // The console, table and detail, at 160x48.
    let now = std::time::Instant::now();
    let mut model = Model::new(Settings::default(), ui_support::ring());
    update(&mut model, Msg::Resize(160, 48), now);
    update(&mut model, Msg::Statuses(board.snapshot()), now);
    model.select("s000");
    update(&mut model, Msg::Tick, now);
    let screen = ui_support::draw(&model, now).backend().to_string();
    assert!(screen.contains("stream_error_ack"), "{screen}");
    pool.stop().await;
}

/// Polls `GET /sessions/{id}` until `pred` holds for its JSON; answers it.
async fn wait_detail(
    addr: &str,
    id: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = common::request(addr, "GET", &format!("/sessions/{id}"), None, "").await;
        if answer.status == 200 && pred(&answer.json()) {
            return answer.json();
        }
        assert!(Instant::now() < deadline, "never {what}: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_names_a_refused_version_and_a_sighup_with_a_newer_one_cures_it() {
    // Paired first, while the simulator accepts wasp's built-in version.
    let sim = strict_sim(Strictness::default().ack_timeout).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pool = LivePool::start(&config(&sim, &data, 1, short_policy()), true);
    let phone = pool.phone(&sim);
    steady(&pool, "s000").await;
    phone.cancel();
    pool.stop().await;

    let built_in = ClientVersion::default();
    let newer = ClientVersion::new(built_in.primary, built_in.secondary, built_in.tertiary + 1);
    sim.set_strict(&StrictPatch {
        min_version: Some(newer.to_string()),
        ..StrictPatch::default()
    })
    .unwrap();
    let root = base64::engine::general_purpose::STANDARD.encode(sim.trust_root.0);
    let file = dir.path().join("sessions.toml");
    let write = |extra: &str| {
        let text = format!(
            "[server]\nurl = \"{}\"\ntrust_root = \"{root}\"\n{extra}\n[storage]\ndata_dir = \"{}\"\n\n\
             [[session]]\nid = \"s000\"\nautostart = true\n",
            sim.ws_url,
            data.display()
        );
        std::fs::write(&file, text).unwrap();
    };
    write("");
    let mut child = Headless::spawn(&file, WAIT);
    let addr = child.http_base();

    let failed = wait_detail(&addr, "s000", "failed with 405", |d| {
        d["state"] == "failed" && d["last_code"] == 405
    })
    .await;
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains(&built_in.to_string()), "{failed}");
    assert!(reason.contains("client_version"), "{failed}");
    assert_eq!(failed["client_version"], built_in.to_string());
    assert!(sim.stats().version_refused >= 1);

    write(&format!("client_version = \"{newer}\"\n"));
    child.signal("-HUP");
    child.line_with("config reloaded");
    let online = wait_detail(&addr, "s000", "online with the newer version", |d| {
        d["state"] == "online"
    })
    .await;
    assert_eq!(online["client_version"], newer.to_string());

    child.signal("-TERM");
    assert!(child.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_with_every_push_on_stay_online_with_one_login_each() {
    const N: usize = 200;
    let sim = strict_sim(Strictness::default().ack_timeout).await;
    assert!(sim.strictness().pushes && sim.strictness().prekeys);
    let dir = tempfile::tempdir().unwrap();
    let mut policy = short_policy();
    policy.keepalive_interval_min = Duration::from_secs(2);
    policy.keepalive_interval_max = Duration::from_secs(3);
    policy.keepalive_deadline = Duration::from_secs(5);
    policy.dead_after = Duration::from_secs(20);
    let pool = LivePool::start(&config(&sim, dir.path(), N, policy), true);
    let phone = pool.phone(&sim);
    let board = pool.board();
    wait_for_all(&board, "all online", Duration::from_secs(240), |all| {
        all.len() == N && all.iter().all(|s| online(s) && s.account.paired)
    })
    .await;
    phone.cancel();
    wait_stats(
        &sim,
        "every push acked and keys uploaded",
        Duration::from_secs(120),
        |s| {
            s.devices.len() == N
                && s.devices
                    .values()
                    .all(|d| d.unacked == 0 && d.prekeys >= 812)
        },
    )
    .await;
    let stats = sim.stats();
    assert_eq!(
        stats.max_concurrent_per_device, 1,
        "a device had two logins"
    );
    assert_eq!(stats.stream_errors_ack, 0);
    assert!(
        stats
            .devices
            .values()
            .all(|d| d.stream_errors_ack == 0 && d.acks_received > 0)
    );
    assert!(
        stats.pushed >= 3 * N as u64,
        "every push on: {}",
        stats.pushed
    );
    assert_eq!(
        stats.acks_received, stats.pushed,
        "everything pushed was acked"
    );
    let all = board.snapshot();
    assert!(all.iter().all(online), "still online after the settle");
    pool.stop().await;
}
