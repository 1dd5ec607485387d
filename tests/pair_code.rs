//! Pairing by phone-number code, end to end over real sockets: the operator asks wasp's HTTP
//! API for a code, the simulator's phone types it (`POST /admin/enter-code`), and the session
//! comes online. A wrong code is refused with its cause and the session stays unpaired; the
//! code is only in the authenticated answer, never in a log line (any level) or an open answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::request;
use wasp::config::{Config, SessionConfig};
use wasp::runner;
use wasp::sim::{Server, SimConfig};

const TOKEN: &str = "pair-code-token";
const PHONE: &str = "+1 555 123 4567";

/// Every log line of the test process, at every level of wasp's own targets.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("wasp=trace,info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    captured
}

fn config_on(sim: &wasp::sim::Handle, dir: &std::path::Path) -> Config {
    let mut config = common::http_config_on(sim, dir, TOKEN);
    config.sessions = vec![SessionConfig::new("alpha", config.policy.clone())];
    config
}

async fn wait_state(base: &str, id: &str, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let json = request(base, "GET", &format!("/sessions/{id}"), None, "")
            .await
            .json();
        if json["state"] == state {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {state}: {json}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks for a code for `PHONE`; answers (code, whole answer body).
async fn ask_code(base: &str) -> (String, String) {
    let body = format!(r#"{{"phone": "{PHONE}"}}"#);
    let answer = request(base, "POST", "/sessions/alpha/pair", Some(TOKEN), &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    let code = json["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 9, "{json}");
    assert_eq!(&code[4..5], "-", "{json}");
    let left = json["expires_in_s"].as_u64().unwrap();
    assert!(left > 0 && left <= 160, "{json}");
    (code, answer.body)
}

async fn enter(admin: &str, code: &str) -> common::Answer {
    let body = format!(r#"{{"phone": "+15551234567", "code": "{code}"}}"#);
    request(admin, "POST", "/admin/enter-code", None, &body).await
}

/// The same code with its last character changed to another of the alphabet.
fn other_code(code: &str) -> String {
    let last = code.chars().last().unwrap();
    let swap = if last == 'Z' { 'Y' } else { 'Z' };
    format!("{}{swap}", &code[..code.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_pairs_by_code_and_a_wrong_code_is_refused() {
    let logs = capture_logs();
    let sim = Server::start(SimConfig {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let admin = sim.admin_url.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = runner::start(&config_on(&sim, dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);

    // Without the token: no code, and no pairing started.
    let body = format!(r#"{{"phone": "{PHONE}"}}"#);
    let open = request(&base, "POST", "/sessions/alpha/pair", None, &body).await;
    assert_eq!(open.status, 401, "{}", open.body);
    // Bad input is one sentence naming what is wrong.
    let bad = request(
        &base,
        "POST",
        "/sessions/alpha/pair",
        Some(TOKEN),
        r#"{"phone":"0123"}"#,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("session alpha") && bad.body.contains("0123"),
        "{}",
        bad.body
    );
    let typo = request(
        &base,
        "POST",
        "/sessions/alpha/pair",
        Some(TOKEN),
        r#"{"fone":"1"}"#,
    )
    .await;
    assert_eq!(typo.status, 400, "{}", typo.body);

    // The phone types a wrong code: refused with the cause; the session stays unpaired.
    let (first, first_body) = ask_code(&base).await;
    let wrong = enter(&admin, &other_code(&first)).await;
    assert_eq!(wrong.status, 409, "{}", wrong.body);
    let cause = wrong.json()["error"].as_str().unwrap().to_string();
    assert!(cause.contains("wrong code"), "{cause}");
    assert!(cause.contains("does not decrypt"), "{cause}");
    // The refused code is spent: typing the right one now finds nobody waiting.
    let spent = enter(&admin, &first).await;
    assert_eq!(spent.status, 404, "{}", spent.body);
    let view = request(&base, "GET", "/sessions/alpha", None, "")
        .await
        .json();
    assert_eq!(view["paired"], false, "{view}");
    assert_ne!(view["state"], "online", "{view}");
    assert!(sim.devices().is_empty());

    // A new code, typed right: paired as a device of that number, then online.
    let (code, second_body) = ask_code(&base).await;
    assert_ne!(code, first);
    let done = enter(&admin, &code.to_lowercase()).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let device = done.json()["device"].as_str().unwrap().to_string();
    assert!(device.starts_with("15551234567:"), "{device}");
    let online = wait_state(&base, "alpha", "online").await;
    assert_eq!(online["paired"], true, "{online}");
    assert_eq!(online["phone"], "15551234567", "{online}");
    assert_eq!(sim.devices(), vec![device]);

    // Only the authenticated answers carried the codes.
    let everything_open = [
        request(&base, "GET", "/sessions", None, "").await.body,
        request(&base, "GET", "/sessions/alpha", None, "")
            .await
            .body,
        request(&base, "GET", "/sessions/alpha", Some(TOKEN), "")
            .await
            .body,
        open.body,
    ];
    let logged = logs.text();
    assert!(logged.contains("pairing code issued"), "the capture works");
    for shown in [&first, &code] {
        let bare = shown.replace('-', "");
        assert!(first_body.contains(&first) && second_body.contains(&code));
        for text in everything_open.iter().chain([&logged]) {
            assert!(
                !text.contains(shown.as_str()) && !text.contains(&bare),
                "{shown} leaked"
            );
        }
    }

    runner::stop(started).await;
}
