//! The endpoint against hostile or careless clients, in process over real sockets: the QR
//! only for the token holder, one JSON error shape, the connection cap with its reserve for
//! `/healthz` and the token, header-read and idle timeouts, and the refusals that must come
//! before the pool starts (public bind without a token, a blank token variable).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use crate::common::request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasp::config::{Config, HttpConfig, HttpToken, SessionConfig};
use wasp::runner;
use wasp::sim::{Server, SimConfig};

const TOKEN: &str = "hardening-token-1";

fn config(dir: &std::path::Path, http: HttpConfig) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_path_buf();
    config.http = Some(HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: Some(HttpToken::new(TOKEN)),
        ..http
    });
    config
}

/// POSTs a 3 MiB body to `path` with the token and reads the answer while still writing (the
/// server answers before it has read everything, then stops reading).
async fn oversized(base: &str, path: &str) -> common::Answer {
    let host = base.trim_start_matches("http://");
    let tcp = TcpStream::connect(host).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    let body = vec![b'x'; 3 << 20];
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let writer = tokio::spawn(async move {
        // The server may stop reading once it has answered: a broken pipe here is expected.
        let _ = write.write_all(head.as_bytes()).await;
        let _ = write.write_all(&body).await;
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline.into(), read.read(&mut buf)).await
    {
        raw.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    common::Answer {
        status,
        body: body.to_string(),
    }
}

/// Reads until the server closes the connection; false if it is still open at the deadline.
async fn closed_by_server(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qr_is_shown_only_to_the_token_holder() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), HttpConfig::default());
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    let mut session = SessionConfig::new("gamma", config.policy.clone());
    session.autostart = true;
    config.sessions = vec![session];
    let started = runner::start(&config, None).await.unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);

    let deadline = Instant::now() + Duration::from_secs(30);
    let with_token = loop {
        let json = request(&base, "GET", "/sessions/gamma", Some(TOKEN), "")
            .await
            .json();
        if json["qr"].is_string() {
            break json;
        }
        assert!(Instant::now() < deadline, "no QR shown: {json}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(with_token["qr_ref"].is_string(), "{with_token}");

    for token in [None, Some("wrong-token")] {
        let json = request(&base, "GET", "/sessions/gamma", token, "")
            .await
            .json();
        assert_eq!(json["state"], "pairing", "{json}");
        for key in ["qr", "qr_ref", "qr_expires_at"] {
            assert!(json.get(key).is_none(), "{key} without the token: {json}");
        }
    }
    runner::stop(started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_one_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let started = runner::start(&config(dir.path(), HttpConfig::default()), None)
        .await
        .unwrap();
    let base = format!("http://{}", started.http.as_ref().unwrap().addr);
    for (method, path, status) in [
        ("POST", "/healthz", 405),
        ("GET", "/sessions/alpha/reconnect", 405),
        ("GET", "/nothing-here", 404),
        ("GET", "/sessions/nobody", 404),
        ("POST", "/sessions/nobody/reconnect", 401),
        ("POST", "/sessions/nobody/reconnect", 404),
    ] {
        let token = (status == 404 && method == "POST").then_some(TOKEN);
        let answer = request(&base, method, path, token, "").await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        let json = answer.json();
        let message = json["error"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{method} {path}: {json}");
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    }
    // The framework's own refusals: a body over the limit, a path that is not UTF-8, a query
    // its extractor cannot read, a body that is not JSON.
    let huge = oversized(&base, "/sessions/alpha/messages").await;
    assert_eq!(huge.status, 413, "{}", huge.body);
    assert!(huge.json()["error"].is_string(), "{}", huge.body);
    assert_eq!(huge.json().as_object().unwrap().len(), 1, "{}", huge.body);
    for (method, path, body, status) in [
        ("GET", "/sessions/%ff%fe", "", 400),
        ("GET", "/events?form=full&form=full", "", 400),
        ("POST", "/sessions/alpha/messages", "{not json", 400),
    ] {
        let answer = request(&base, method, path, Some(TOKEN), body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        let json = answer.json();
        let message = json["error"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{method} {path}: {json}");
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    }
    runner::stop(started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_only_healthz_and_the_token_get_through() {
    let dir = tempfile::tempdir().unwrap();
    let http = HttpConfig {
        max_connections: 2,
        reserve_connections: 1,
        ..HttpConfig::default()
    };
    let started = runner::start(&config(dir.path(), http), None)
        .await
        .unwrap();
    let addr = started.http.as_ref().unwrap().addr;
    let base = format!("http://{addr}");
    // Two idle connections take the whole open share (accept takes them in order).
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // The reserve slot is freed just after its connection closes: retry until it is back.
    async fn until_answered(base: &str, path: &str, token: Option<&str>) -> common::Answer {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = request(base, "GET", path, token, "").await;
            if answer.status != 0 {
                return answer;
            }
            assert!(Instant::now() < deadline, "{path} never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(until_answered(&base, "/healthz", None).await.status, 200);
    let refused = until_answered(&base, "/sessions", None).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.json()["error"].is_string());
    let operator = until_answered(&base, "/sessions", Some(TOKEN)).await;
    assert_eq!(operator.status, 200, "{}", operator.body);

    // Once the idle ones leave, anyone is served again.
    drop(idle);
    let open = until_answered(&base, "/sessions", None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut open = open;
    while open.status != 200 {
        assert!(
            Instant::now() < deadline,
            "never served again: {}",
            open.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        open = until_answered(&base, "/sessions", None).await;
    }
    runner::stop(started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let http = HttpConfig {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        ..HttpConfig::default()
    };
    let started = runner::start(&config(dir.path(), http), None)
        .await
        .unwrap();
    let addr = started.http.as_ref().unwrap().addr;

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut slow, Duration::from_secs(10)).await);

    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(10)).await);

    // A keep-alive connection that answered once and then idles is closed too.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut kept, Duration::from_secs(10)).await);
    runner::stop(started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_bind_without_a_token_is_refused_before_the_pool_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = config(&data, HttpConfig::default());
    let http = config.http.as_mut().unwrap();
    http.listen = "0.0.0.0:0".parse().unwrap();
    http.token = None;
    config.sessions = vec![SessionConfig::new("one", config.policy.clone())];
    config.sessions[0].autostart = true;
    let error = runner::start(&config, None).await.err().unwrap();
    assert!(error.is_config(), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("refusing to listen on 0.0.0.0:0")
    );
    // Nothing ran: not even the data dir was made.
    assert!(!data.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_token_goes_to_a_private_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh").join("data");
    let mut config = config(&data, HttpConfig::default());
    config.http.as_mut().unwrap().token = None;
    let started = runner::start(&config, None).await.unwrap();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let token = std::fs::metadata(data.join("http-token")).unwrap();
    assert_eq!(token.permissions().mode() & 0o777, 0o600);
    runner::stop(started).await;
}

#[test]
fn a_whitespace_token_variable_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "[storage]\ndata_dir = \"{}\"\n\n[http]\nlisten = \"0.0.0.0:0\"\ntoken_env = \"WASP_TEST_TOKEN\"\n",
            data.display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["headless", "--config"])
        .arg(&file)
        .env("WASP_TEST_TOKEN", " \t ")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the variable WASP_TEST_TOKEN named in [http] holds only whitespace"),
        "{stderr}"
    );
    assert!(!data.exists());
}
