//! The HTTP endpoint over real HTTP against a pool on the simulator: sessions follow faults,
//! reconnect brings a conflict back, metrics parse and move, auth and 404s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{EventStream, request, wait_state};
use tokio_util::sync::CancellationToken;
use wasp::config::{Config, SessionConfig};
use wasp::runner;
use wasp::sim::{Fault, Server, SimConfig};

const TOKEN: &str = "test-token-123";

fn metric(text: &str, name: &str) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("metrics parse");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// A config for `sessions` on `sim`, with the HTTP endpoint on a free loopback port behind
/// `TOKEN` and short backoffs.
fn config_on(
    sim: &wasp::sim::Handle,
    dir: &std::path::Path,
    sessions: &[&str],
    autostart: bool,
) -> Config {
    let mut config = common::http_config_on(sim, dir, TOKEN);
    config.sessions = sessions
        .iter()
        .map(|id| {
            let mut s = SessionConfig::new(*id, config.policy.clone());
            s.autostart = autostart;
            s
        })
        .collect();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_metrics_and_actions_over_http() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_on(&sim, dir.path(), &["alpha", "beta"], true);
    let started = runner::start(&config, None).await.unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);

    assert_eq!(
        request(&base, "GET", "/healthz", None, "").await.status,
        200
    );
    // Ready once every session's driver has published its first status.
    let deadline = Instant::now() + Duration::from_secs(30);
    while request(&base, "GET", "/readyz", None, "").await.status != 200 {
        assert!(Instant::now() < deadline, "/readyz never answered 200");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // While pairing, the session view carries the QR text.
    let alpha = wait_state(&base, "alpha", "online").await;
    assert_eq!(alpha["paired"], true);
    // The version the session dials with (the simulator is not WhatsApp: no discovery).
    assert_eq!(alpha["client_version"], "2.3000.1045649367");
    wait_state(&base, "beta", "online").await;
    let list = request(&base, "GET", "/sessions", None, "").await.json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for key in [
        "id",
        "label",
        "phone",
        "state",
        "since",
        "attempt",
        "retry_at",
        "cooldown_until",
        "conflicts_1h",
        "last_cause",
        "last_code",
        "uptime_pct",
        "last_rtt_ms",
    ] {
        assert!(rows[0].get(key).is_some(), "row lacks {key}: {}", rows[0]);
    }
    assert!(
        alpha["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["state"] == "pairing")
    );

    let metrics_before = request(&base, "GET", "/metrics", None, "").await.body;
    assert_eq!(metric(&metrics_before, "wasp_conflicts_total"), 0.0);
    assert!(metrics_before.contains("wasp_session_state{session=\"alpha\",state=\"online\"} 1"));
    assert!(metric(&metrics_before, "wasp_qr_shown_total") >= 2.0);

    // A conflict shows in /sessions; a reconnect over HTTP brings it back.
    let phone_of_alpha = alpha["phone"].as_str().unwrap().to_string();
    let jid = sim
        .devices()
        .into_iter()
        .find(|j| j.starts_with(&format!("{phone_of_alpha}:")))
        .unwrap();
    // Follow the live event stream while the conflict happens.
    let mut events = EventStream::open(&base).await;
    let follower = tokio::spawn(async move {
        let (found, _) = events
            .find("status", Duration::from_secs(10), |data| {
                data.contains("\"alpha\"") && data.contains("\"conflict\"")
            })
            .await;
        found.unwrap_or_default()
    });
    sim.fault(&jid, Fault::Conflict).await.unwrap();
    let conflicted = wait_state(&base, "alpha", "conflict").await;
    let event = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .unwrap()
        .unwrap();
    assert!(event.contains("\"last_code\":440"), "{event}");
    assert_eq!(conflicted["last_code"], 440);
    assert_eq!(conflicted["conflicts_1h"], 1);

    let unauthorized = request(&base, "POST", "/sessions/alpha/reconnect", None, "").await;
    assert_eq!(unauthorized.status, 401);
    assert!(unauthorized.json()["error"].is_string());
    let wrong = request(&base, "POST", "/sessions/alpha/reconnect", Some("nope"), "").await;
    assert_eq!(wrong.status, 401);
    let ok = request(&base, "POST", "/sessions/alpha/reconnect", Some(TOKEN), "").await;
    assert_eq!(ok.status, 202, "{}", ok.body);
    wait_state(&base, "alpha", "online").await;

    let metrics_after = request(&base, "GET", "/metrics", None, "").await.body;
    assert_eq!(metric(&metrics_after, "wasp_conflicts_total"), 1.0);
    assert!(
        metric(&metrics_after, "wasp_connects_total")
            > metric(&metrics_before, "wasp_connects_total")
    );

    // A drop is counted as a reconnect by cause.
    sim.fault(&jid, Fault::Drop).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = request(&base, "GET", "/metrics", None, "").await.body;
        if metric(&text, "wasp_reconnects_total") >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no reconnect counted: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Unknown session: 404 with a JSON error, for reads and actions.
    let missing = request(&base, "GET", "/sessions/nobody", None, "").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().unwrap().contains("nobody"));
    let missing = request(&base, "POST", "/sessions/nobody/reconnect", Some(TOKEN), "").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());

    // Disconnect stops the session.
    let stop = request(&base, "POST", "/sessions/beta/disconnect", Some(TOKEN), "").await;
    assert_eq!(stop.status, 202);
    wait_state(&base, "beta", "stopped").await;

    phone.cancel();
    runner::stop(started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_log_lines_as_documented() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The logger a run installs: the live feed under an info filter.
    let _ = tracing_subscriber::registry()
        .with(wasp::logging::LogFeed::global().layer())
        .with(tracing_subscriber::EnvFilter::new("info"))
        .try_init();
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_on(&sim, dir.path(), &["gamma"], false);
    let started = runner::start(&config, None).await.unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);

    let mut events = EventStream::open(&base).await;
    let answer = request(&base, "POST", "/sessions/gamma/connect", Some(TOKEN), "").await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let (found, seen) = events
        .find("log", Duration::from_secs(10), |data| {
            data.contains("operator command over http")
        })
        .await;
    let line = found.unwrap_or_else(|| panic!("no log event for the command; saw {seen:?}"));
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(json["session"], "gamma", "{json}");
    assert_eq!(json["level"], "info", "{json}");
    assert_eq!(json["fields"]["command"], "connect", "{json}");
    // Every command's name works over HTTP; the wipe only with the id again (`?confirm=`).
    let reset = request(
        &base,
        "POST",
        "/sessions/gamma/reset-cooldown",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(reset.status, 202, "{}", reset.body);
    assert_eq!(reset.json()["action"], "reset-cooldown");
    for wipe in ["wipe", "wipe-without-backup"] {
        let path = format!("/sessions/gamma/{wipe}");
        let answer = request(&base, "POST", &path, Some(TOKEN), "").await;
        assert_eq!(answer.status, 400, "{wipe}: {}", answer.body);
        assert!(answer.body.contains("?confirm=gamma"), "{}", answer.body);
    }
    for refused in ["reset cooldown", "explode"] {
        let path = format!("/sessions/gamma/{}", refused.replace(' ', "%20"));
        let answer = request(&base, "POST", &path, Some(TOKEN), "").await;
        assert_eq!(answer.status, 404, "{refused}: {}", answer.body);
        let message = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let offered = message.split_once(": use ").map_or("", |(_, list)| list);
        assert!(offered.contains("reset-cooldown"), "{message}");
        assert!(!offered.contains("wipe"), "{message}");
    }
    // The token that admitted the command is never in what the stream sends.
    assert!(
        seen.iter().all(|(_, data)| !data.contains(TOKEN)),
        "{seen:?}"
    );

    runner::stop(started).await;
}

#[tokio::test]
async fn readyz_is_503_until_every_driver_has_published_once() {
    use std::sync::Arc;
    use wasp::net::board::StatusBoard;
    use wasp::net::handle::PoolHandle;
    use wasp::net::metrics::Metrics;
    use wasp::session::status::Status;

    let board = Arc::new(StatusBoard::new());
    board.expect("early");
    board.expect("late");
    let (requests, _keep) = tokio::sync::mpsc::channel(1);
    let pool = PoolHandle::new(board.clone(), Arc::new(Metrics::new()), requests);
    let cancel = CancellationToken::new();
    let addr = "127.0.0.1:0".parse().unwrap();
    let access = wasp::http::Access {
        token: None,
        read_token: None,
    };
    let limits = wasp::http::Limits::default();
    let server = wasp::http::serve(addr, access, limits, pool, cancel.clone())
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);

    let answer = request(&base, "GET", "/readyz", None, "").await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    board.publish(Status::new("early", "Early", Instant::now()));
    assert_eq!(request(&base, "GET", "/readyz", None, "").await.status, 503);
    board.publish(Status::new("late", "Late", Instant::now()));
    let answer = request(&base, "GET", "/readyz", None, "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["status"], "ready");
    cancel.cancel();
}
