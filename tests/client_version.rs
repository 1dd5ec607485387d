//! The client version at start: the revision read from a `sw.js` served on 127.0.0.1, and
//! the fallbacks (configured, then built-in) when the answer is garbage, an error status or
//! never comes. Also: a refused dial is a network error with the OS's words, not a timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wasp::config::ServerConfig;
use wasp::net::conn::ConnError;
use wasp::net::transport;
use wasp::net::version::{self, VersionSource};
use wasp::wa::payload::ClientVersion;

/// Serves every connection the `answer` bytes (or holds it open, silent, when `None`).
async fn http(answer: Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sw.js", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let _ = tcp.read(&mut request).await;
                match answer {
                    Some(bytes) => {
                        let _ = tcp.write_all(&bytes).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    url
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn whatsapp(configured: Option<ClientVersion>) -> ServerConfig {
    ServerConfig {
        client_version: configured,
        ..ServerConfig::default()
    }
}

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn the_revision_in_sw_js_is_used_when_the_server_is_whatsapps() {
    let body = r#"self.__swData=JSON.parse("{\"dynamic_data\":{\"SiteData\":{\"client_revision\":1046000001,\"x\":1}}}");"#;
    let url = http(Some(ok(body))).await;
    let found = version::discover(&url, version::DISCOVERY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(found, ClientVersion::new(2, 3000, 1_046_000_001));
    let resolved = version::resolve(&whatsapp(None), &url, version::DISCOVERY_TIMEOUT).await;
    assert_eq!(resolved.source, VersionSource::Discovered);
    assert_eq!(resolved.version, found);
    assert!(resolved.describe().contains("2.3000.1046000001"));
}

#[tokio::test]
async fn garbage_an_error_status_or_silence_fall_back() {
    let configured = ClientVersion::new(2, 3000, 42);
    let garbage = http(Some(ok("<html>no revision here</html>"))).await;
    let resolved = version::resolve(&whatsapp(Some(configured)), &garbage, SHORT).await;
    assert_eq!(resolved.source, VersionSource::Configured);
    assert_eq!(resolved.version, configured);
    let note = resolved.note.unwrap();
    assert!(note.contains("no client_revision"), "{note}");

    let refused = http(Some(b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec())).await;
    let resolved = version::resolve(&whatsapp(None), &refused, SHORT).await;
    assert_eq!(resolved.source, VersionSource::BuiltIn);
    assert_eq!(resolved.version, ClientVersion::default());
    assert!(resolved.note.unwrap().contains("404"));

    let silent = http(None).await;
    let resolved = version::resolve(&whatsapp(Some(configured)), &silent, SHORT).await;
    assert_eq!(resolved.source, VersionSource::Configured);
    assert!(resolved.note.unwrap().contains("timed out"));
}

#[tokio::test]
async fn no_lookup_for_other_servers_or_when_switched_off() {
    let url = http(Some(ok(r#""client_revision":7"#))).await;
    let sim = ServerConfig {
        url: "ws://127.0.0.1:1/ws/chat".into(),
        ..ServerConfig::default()
    };
    let resolved = version::resolve(&sim, &url, SHORT).await;
    assert_eq!(resolved.source, VersionSource::BuiltIn);
    let off = ServerConfig {
        discover_version: false,
        ..whatsapp(None)
    };
    let resolved = version::resolve(&off, &url, SHORT).await;
    assert_eq!(
        (resolved.source, resolved.note),
        (VersionSource::BuiltIn, None)
    );
}

#[tokio::test]
async fn a_refused_dial_is_a_network_error_in_the_os_words() {
    // A port nobody listens on: bind, note the port, close.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("ws://{addr}/ws/chat");
    let err = transport::dial(&url, Duration::from_secs(5))
        .await
        .unwrap_err();
    let cause = ConnError::from(err).cause();
    assert_eq!(cause.name(), "network_error");
    assert_eq!(cause.code(), 408);
    assert!(
        cause.to_string().to_lowercase().contains("refused"),
        "{cause}"
    );
}
