//! A proxy password never shows: sessions dial through a SOCKS5 and an HTTP CONNECT proxy
//! that demand it, one proxy is dead and one refuses a wrong password, a reload moves a
//! session onto a proxy; then the password (and the Basic token made from it) is looked for
//! in the logs (text and JSON at TRACE, and the console's log ring), in the Debug of the
//! config and of every status, in every HTTP answer and both `/events` streams, on the drawn
//! console with each session selected, and in what `wasp check-config` prints for a good
//! and a bad file. None is found; the redacted form (`user:***@`) is found where the path
//! is shown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/leaks.rs"]
mod leaks;
#[path = "common/proxies.rs"]
mod proxies;

use std::time::{Duration, Instant};

use base64::Engine;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use leaks::Capture;
use proxies::{Kind, Proxy, closed_port};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use wasp::config::{ProxyUrl, SessionConfig};
use wasp::runner;
use wasp::session::policy::Policy;
use wasp::session::status::StateName;
use wasp::sim::{Server, SimConfig};
use wasp::ui::{LogRing, Model, Msg, Settings, update};

const TOKEN: &str = "proxy-redaction-token";
const SECRET: &str = "Pr0xy-S3cret-pw";
const WAIT: Duration = Duration::from_secs(60);

fn policy() -> Policy {
    Policy {
        connect_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(400),
        max_attempts_network: 1000,
        ..Policy::default()
    }
}

fn session(id: &str, proxy: Option<&str>) -> SessionConfig {
    let mut s = SessionConfig::new(id, policy());
    s.autostart = true;
    s.proxy = proxy.map(|p| ProxyUrl::parse(p).unwrap());
    s
}

/// The password, its %-escaped form and every Basic token that could carry it.
fn needles() -> Vec<String> {
    let mut out = vec![SECRET.to_string(), SECRET.replace('-', "%2D")];
    for user in ["sam", "hal", "ray", "dee"] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{SECRET}"));
        out.push(b64);
    }
    out
}

fn assert_clean(place: &str, text: &str) {
    for needle in needles() {
        assert!(
            !text.contains(&needle),
            "the proxy password shows in {place}: {text}"
        );
    }
}

fn check_config(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasp"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_password_shows_in_no_log_debug_http_answer_event_or_screen() {
    let logs = Capture::default();
    let ring = LogRing::new(20_000);
    let subscriber = tracing_subscriber::registry()
        .with(Targets::new().with_target("wasp", LevelFilter::TRACE))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(logs.clone()),
        )
        .with(ring.layer());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let secret = || Some(("sam".to_string(), SECRET.to_string()));
    let socks = Proxy::start(Kind::Socks5(secret())).await;
    let http = Proxy::start(Kind::HttpConnect(Some(("hal".into(), SECRET.into())))).await;
    let picky = Proxy::start(Kind::Socks5(Some(("dee".into(), "another".into())))).await;
    let dead = closed_port().await;
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::http_config_on(&sim, dir.path(), TOKEN);
    config.policy = policy();
    config.sessions = vec![
        session("socks", Some(&socks.url())),
        session("connect", Some(&http.url())),
        session("dead", Some(&format!("socks5://ray:{SECRET}@{dead}"))),
        session("denied", Some(&picky.url_with(Some(SECRET)))),
        session("moved", None),
    ];
    let started = runner::start(&config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    let mut events = common::EventStream::open(&base).await;
    let phone = common::scanning_phone(started.running.handle.board.clone(), &sim);
    let board = started.running.handle.board.clone();
    for id in ["socks", "connect", "moved"] {
        common::board::wait_for(&board, id, "online", WAIT, |s| {
            s.state() == StateName::Online
        })
        .await;
    }
    for id in ["dead", "denied"] {
        common::board::wait_for(&board, id, "proxy backoff", WAIT, |s| {
            s.state() == StateName::Backoff && s.last_cause.as_deref() == Some("proxy_refused")
        })
        .await;
    }
    // A reload puts "moved" behind the SOCKS proxy: the change is logged, the path shown.
    let mut reloaded = config.clone();
    reloaded.sessions[4].proxy = Some(ProxyUrl::parse(&socks.url()).unwrap());
    started.running.reload.send(reloaded).await.unwrap();
    common::board::wait_for(&board, "moved", "its new path", WAIT, |s| s.proxy.is_some()).await;

    let mut shown: Vec<(String, String)> = Vec::new();
    let (found, seen) = events
        .find("status", WAIT, |data| data.contains("proxy refused"))
        .await;
    assert!(found.is_some(), "a status event named the proxy: {seen:?}");
    shown.extend(seen.into_iter().map(|(n, d)| (format!("/events {n}"), d)));
    let mut full = common::EventStream::open_path(&base, "/events?form=full", Some(TOKEN)).await;
    let (name, data) = full.next().await.unwrap();
    assert!(
        data.contains("sam:***@"),
        "the snapshot carries the path: {data}"
    );
    shown.push((format!("/events?form=full {name}"), data));
    shown.push(("config Debug".into(), format!("{config:?}")));
    let statuses = board.snapshot();
    shown.push(("statuses Debug".into(), format!("{statuses:?}")));
    let mut paths = vec!["/sessions".to_string(), "/metrics".to_string()];
    paths.extend(statuses.iter().map(|s| format!("/sessions/{}", s.id)));
    for path in &paths {
        let answer = common::request(&base, "GET", path, Some(TOKEN), "").await;
        assert!(answer.status < 500, "{path}: {}", answer.body);
        shown.push((path.clone(), answer.body));
    }
    let one = common::request(&base, "GET", "/sessions/socks", Some(TOKEN), "").await;
    assert_eq!(
        one.json()["proxy"],
        format!("socks5://sam:***@{}", socks.addr).as_str()
    );

    // The console, each session selected in turn.
    let now = Instant::now();
    let mut model = Model::new(Settings::default(), ring.clone());
    update(&mut model, Msg::Resize(200, 60), now);
    update(&mut model, Msg::Statuses(statuses.clone()), now);
    let mut screens = String::new();
    for _ in &statuses {
        let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
        terminal
            .draw(|f| wasp::ui::view::draw(f, &model, now))
            .unwrap();
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        screens.push_str(&screen);
        let down = Msg::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
        update(&mut model, down, now);
    }
    assert!(
        screens.contains("via socks5://sam:***@"),
        "the pane shows the path"
    );
    assert!(
        screens.contains("via http://hal:***@"),
        "the pane shows the path"
    );
    assert!(screens.contains("proxy_refused"), "the cause is on screen");
    shown.push(("console".into(), screens));
    let ring_lines: Vec<String> = ring.snapshot().iter().map(|l| format!("{l:?}")).collect();
    shown.push(("log ring".into(), ring_lines.join("\n")));

    // check-config on a good and a bad file.
    let good = format!(
        "[server]\nproxies = [\"socks5://sam:{SECRET}@127.0.0.1:1080\", \"http://hal:{SECRET}@127.0.0.1:3128\"]\n\
         [[session]]\nid = \"a\"\nproxy = \"socks5h://ray:{SECRET}@proxy.example:1080\"\n[[session]]\nid = \"b\"\n"
    );
    let said = check_config(&good);
    assert!(said.contains(": ok,"), "{said}");
    shown.push(("check-config good".into(), said));
    let bad = format!(
        "[server]\nproxy = \"socks5://sam:{SECRET}@127.0.0.1\"\n\
         [[session]]\nid = \"a\"\nproxy = \"ftp://ray:{SECRET}@h:1\"\n[[session]]\nid = \"b\"\nproxy = \"http://hal:{SECRET}@h:1/x\"\n"
    );
    let said = check_config(&bad);
    assert!(
        said.contains("proxy in [server] is not a proxy URL"),
        "{said}"
    );
    assert!(said.contains("proxy in session \"a\""), "{said}");
    assert!(said.contains("sam:***@"), "{said}");
    shown.push(("check-config bad".into(), said));

    phone.cancel();
    runner::stop(started).await;
    sim.shutdown();

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("proxy refused"),
        "the capture saw the proxy failures"
    );
    assert!(
        logs.contains("proxy changed by reload"),
        "the capture saw the reload"
    );
    assert_clean("the logs", &logs);
    for (place, text) in &shown {
        assert_clean(place, text);
    }
}
