//! Sessions dial the in-process simulator through real proxies on 127.0.0.1 (SOCKS5 with and
//! without credentials, `socks5h`, HTTP CONNECT with Basic credentials), pair by the virtual
//! phone and come online; the simulator records each login's TCP peer, which must be the
//! proxy's outbound address. A dead proxy, refused credentials and a 407 give the proxy cause
//! and backoff while a direct session stays online.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use crate::proxies::{Kind, Proxy, closed_port};
use tokio_util::sync::CancellationToken;
use wasp::config::{Config, ProxyUrl, SessionConfig};
use wasp::runner::{self, Started};
use wasp::session::policy::Policy;
use wasp::session::status::{StateName, Status};
use wasp::sim::{Handle, Server, SimConfig};

use crate::common::board;

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "proxy-e2e-token";

fn policy() -> Policy {
    Policy {
        connect_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(400),
        max_attempts_network: 1000,
        ..Policy::default()
    }
}

/// A session with `proxy` (a URL, or direct when `None`).
fn session(id: &str, proxy: Option<&str>) -> SessionConfig {
    let mut s = SessionConfig::new(id, policy());
    s.autostart = true;
    s.proxy = proxy.map(|p| ProxyUrl::parse(p).unwrap());
    s
}

struct Run {
    sim: Handle,
    started: Started,
    http: String,
    phone: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn run(sessions: Vec<SessionConfig>) -> Run {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config: Config = common::http_config_on(&sim, dir.path(), TOKEN);
    config.policy = policy();
    config.sessions = sessions;
    let listen = Some("127.0.0.1:0".parse().unwrap());
    let started = runner::start(&config, listen).await.unwrap();
    let http = format!("http://{}", started.http.as_ref().unwrap().addr);
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);
    Run {
        sim,
        started,
        http,
        phone,
        _dir: dir,
    }
}

impl Run {
    async fn wait(&self, id: &str, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        board::wait_for(&self.started.running.handle.board, id, what, WAIT, pred).await
    }

    async fn online(&self, id: &str) -> Status {
        self.wait(id, "online", |s| {
            s.state() == StateName::Online && s.account.phone.is_some()
        })
        .await
    }

    /// The TCP peer the simulator saw at the latest login of the device with `phone`.
    fn peer_of(&self, phone: &str) -> std::net::SocketAddr {
        let stats = self.sim.stats();
        let device = stats
            .devices
            .values()
            .find(|d| d.phone == phone && d.logins > 0)
            .unwrap_or_else(|| panic!("no login of {phone}: {:?}", stats.devices));
        device.last_peer.as_ref().unwrap().parse().unwrap()
    }

    async fn stop(self) {
        self.phone.cancel();
        runner::stop(self.started).await;
        self.sim.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_dial_through_socks5_and_http_connect_and_the_simulator_sees_the_proxy() {
    let creds = |u: &str| Some((u.to_string(), format!("{u}-pw")));
    let plain = Proxy::start(Kind::Socks5(None)).await;
    let socks_auth = Proxy::start(Kind::Socks5(creds("sam"))).await;
    let http = Proxy::start(Kind::HttpConnect(creds("hal"))).await;
    let socks5h = socks_auth.url().replacen("socks5://", "socks5h://", 1);
    let run = run(vec![
        session("plain", Some(&plain.url())),
        session("auth", Some(&socks_auth.url())),
        session("remote-dns", Some(&socks5h)),
        session("connect", Some(&http.url())),
        session("direct", None),
    ])
    .await;

    let mut proxied = Vec::new();
    for (id, proxy) in [
        ("plain", &plain),
        ("auth", &socks_auth),
        ("remote-dns", &socks_auth),
        ("connect", &http),
    ] {
        let status = run.online(id).await;
        let peer = run.peer_of(status.account.phone.as_deref().unwrap());
        assert!(
            proxy.outbound().contains(&peer),
            "{id}: the simulator saw {peer}, the proxy opened {:?}",
            proxy.outbound()
        );
        assert_ne!(
            peer, proxy.addr,
            "{id}: the outbound side, not the listener"
        );
        let shown = status.proxy.clone().unwrap();
        assert!(!shown.contains("-pw"), "{id}: {shown}");
        proxied.push(peer);
    }
    // Registration and login both went through: two tunnels at least per session.
    assert!(plain.relayed() >= 2, "{}", plain.relayed());
    assert!(socks_auth.relayed() >= 4, "{}", socks_auth.relayed());
    assert!(http.relayed() >= 2, "{}", http.relayed());
    for proxy in [&plain, &socks_auth, &http] {
        assert!(proxy.refusals().is_empty(), "{:?}", proxy.refusals());
    }

    let direct = run.online("direct").await;
    assert_eq!(direct.proxy, None);
    let peer = run.peer_of(direct.account.phone.as_deref().unwrap());
    assert!(
        !proxied.contains(&peer),
        "the direct session has its own peer"
    );
    for proxy in [&plain, &socks_auth, &http] {
        assert!(
            !proxy.outbound().contains(&peer),
            "direct went through a proxy"
        );
    }

    // The HTTP answers name the path, password hidden.
    let auth = common::request(&run.http, "GET", "/sessions/auth", Some(TOKEN), "").await;
    let expected = format!("socks5://sam:***@{}", socks_auth.addr);
    assert_eq!(auth.json()["proxy"], expected.as_str(), "{}", auth.body);
    let all = common::request(&run.http, "GET", "/sessions", Some(TOKEN), "").await;
    let rows = all.json();
    let row = |id: &str| {
        rows.as_array()
            .or_else(|| rows["sessions"].as_array())
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("direct")["proxy"], serde_json::Value::Null);
    assert_eq!(
        row("connect")["proxy"],
        format!("http://hal:***@{}", http.addr).as_str()
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_proxy_backs_off_with_the_proxy_cause_while_direct_sessions_stay_online() {
    let dead = closed_port().await;
    let socks = Proxy::start(Kind::Socks5(Some(("sam".into(), "right".into())))).await;
    let http = Proxy::start(Kind::HttpConnect(Some(("hal".into(), "right".into())))).await;
    let wrong_socks = socks.url_with(Some("wrong"));
    let wrong_http = http.url_with(Some("wrong"));
    let run = run(vec![
        session("dead", Some(&format!("socks5://u:pw@{dead}"))),
        session("dead-http", Some(&format!("http://{dead}"))),
        session("socks-denied", Some(&wrong_socks)),
        session("http-denied", Some(&wrong_http)),
        session("direct", None),
    ])
    .await;
    run.online("direct").await;

    let cases = [
        ("dead", "cannot reach it"),
        ("dead-http", "cannot reach it"),
        ("socks-denied", "refused the user name and password"),
        ("http-denied", "CONNECT answered 407"),
    ];
    for (id, words) in cases {
        // Backed off, then tried again and backed off again: retried like a network error.
        let status = run
            .wait(id, "a second backoff for the proxy", |s| {
                s.state() == StateName::Backoff && s.attempt >= 2
            })
            .await;
        assert_eq!(status.last_cause.as_deref(), Some("proxy_refused"), "{id}");
        assert_eq!(status.last_code, Some(408), "{id}");
        let detail = &status.timeline.last().unwrap().detail;
        assert!(detail.starts_with("proxy refused: "), "{id}: {detail}");
        assert!(detail.contains(words), "{id}: {detail}");
        assert!(
            !detail.contains("wrong") && !detail.contains(":pw@"),
            "{id}: {detail}"
        );
    }
    assert_eq!(socks.relayed(), 0);
    assert_eq!(http.relayed(), 0);
    assert!(!socks.refusals().is_empty() && !http.refusals().is_empty());
    // The direct session was never disturbed.
    let direct = run.online("direct").await;
    assert_eq!(direct.disconnects_1h, 0);
    assert!(
        !direct.timeline.iter().any(|e| e.cause == "proxy_refused"),
        "{:?}",
        direct.timeline
    );
    run.stop().await;
}
