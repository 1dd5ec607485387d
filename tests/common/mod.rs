//! Helpers shared by the integration tests: a minimal HTTP/1.1 client over a real socket, and
//! waiting on the status board.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod board;
pub mod cluster;
pub mod delivery;
pub mod headless;
pub mod live;
pub mod receiver;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the virtual phone that scans every QR `board` shows (10 ms after it appears, 50 ms
/// apart); cancel the token to end it.
pub fn scanning_phone(
    board: std::sync::Arc<wasp::net::board::StatusBoard>,
    sim: &wasp::sim::Handle,
) -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(wasp::runner::virtual_phone(
        board,
        sim.clone(),
        std::time::Duration::from_millis(10),
        std::time::Duration::from_millis(50),
        token.clone(),
    ));
    token
}

/// Starts `wasp sim ARGS` as a child process and reads its ready line (JSON with `ws_url`,
/// `admin_url`, `trust_root`); returns the child and the line as written.
pub fn spawn_sim<I, S>(args: I) -> (std::process::Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wasp"))
        .arg("sim")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// A config on `sim` with data in `dir`, quick backoff, and the HTTP endpoint on a free
/// loopback port with `token`; no sessions yet.
pub fn http_config_on(
    sim: &wasp::sim::Handle,
    dir: &std::path::Path,
    token: &str,
) -> wasp::config::Config {
    use std::time::Duration;
    use wasp::config::{Config, HttpConfig, HttpToken};
    use wasp::session::policy::Policy;
    let mut config = Config::default();
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = dir.to_path_buf();
    config.policy = Policy {
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(300),
        ..Policy::default()
    };
    config.http = Some(HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_env: None,
        token: Some(HttpToken::new(token)),
        ..HttpConfig::default()
    });
    config
}

/// A config on `sim` with data in `dir`, send limits lifted far above any test's traffic, and
/// the HTTP endpoint (default address) with `token`; no sessions yet.
pub fn messages_config_on(
    sim: &wasp::sim::Handle,
    dir: &std::path::Path,
    token: &str,
) -> wasp::config::Config {
    use wasp::config::{Config, HttpConfig, HttpToken};
    let mut config = Config::default();
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = dir.to_path_buf();
    config.messages.per_minute = 60_000;
    config.messages.burst = 100;
    config.http = Some(HttpConfig {
        token: Some(HttpToken::new(token)),
        ..HttpConfig::default()
    });
    config
}

/// An HTTP answer: status code and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Answer {
    let host = addr.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(host).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Answer { status, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n.min(tail.len())]);
        rest = tail.get(n + 2..).unwrap_or("");
    }
    out
}

/// The session view of `id` once its state is `state` (30 s at most).
pub async fn wait_state(base: &str, id: &str, state: &str) -> serde_json::Value {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = request(base, "GET", &format!("/sessions/{id}"), None, "").await;
        let json = answer.json();
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

/// A follower of `GET /events` over a real socket.
pub struct EventStream {
    lines: tokio::io::Lines<tokio::io::BufReader<TcpStream>>,
}

impl EventStream {
    /// Connects and waits for the answer's status line (the server has subscribed us then).
    pub async fn open(addr: &str) -> EventStream {
        Self::open_path(addr, "/events", None).await
    }

    /// `open` for another path (`/events?form=full`), with the bearer token when given.
    pub async fn open_path(addr: &str, path: &str, token: Option<&str>) -> EventStream {
        use tokio::io::AsyncBufReadExt;
        let host = addr.trim_start_matches("http://");
        let mut tcp = TcpStream::connect(host).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: text/event-stream\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut lines = tokio::io::BufReader::new(tcp).lines();
        let status = lines.next_line().await.unwrap().unwrap_or_default();
        assert!(status.contains("200"), "{status}");
        EventStream { lines }
    }

    /// The next event as (name, data); `None` when the stream ends.
    pub async fn next(&mut self) -> Option<(String, String)> {
        let mut name = String::new();
        while let Ok(Some(line)) = self.lines.next_line().await {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                return Some((name, data.to_string()));
            }
        }
        None
    }

    /// The first event named `name` whose data satisfies `wanted`, within `within`; every
    /// event seen on the way is returned too (for assertions on what else was sent).
    pub async fn find(
        &mut self,
        name: &str,
        within: std::time::Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> (Option<String>, Vec<(String, String)>) {
        let mut seen = Vec::new();
        let search = async {
            while let Some((n, data)) = self.next().await {
                let hit = n == name && wanted(&data);
                seen.push((n, data.clone()));
                if hit {
                    return Some(data);
                }
            }
            None
        };
        let found = tokio::time::timeout(within, search).await.ok().flatten();
        (found, seen)
    }
}
