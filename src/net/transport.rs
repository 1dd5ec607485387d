//! WebSocket transport: dial a `ws://` or `wss://` URL (rustls with webpki roots) with a
//! connect timeout and WhatsApp's `Origin` header.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::ProxyUrl;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::net::tls::ClientTls;
use crate::net::upgrade::{self, UpgradeError};

/// The WebSocket stream type a dial returns.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The `Origin` header WhatsApp's server expects from a web client.
pub const ORIGIN: &str = "https://web.whatsapp.com";

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("server URL {url} is not a valid ws:// or wss:// URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("connecting to {url} timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("connecting to {url} failed: {reason}")]
    Failed { url: String, reason: String },
    /// The proxy (shown with its password hidden) could not be reached or refused.
    #[error("proxy refused: {proxy}: {reason}")]
    Proxy { proxy: String, reason: String },
    /// The server answered the WebSocket upgrade with an HTTP status instead of 101.
    #[error("{url} refused the WebSocket upgrade with HTTP {status}")]
    Refused { url: String, status: u16 },
}

/// WebSocket settings: messages up to the 16 MiB frame cap plus framing overhead, and small
/// I/O buffers (tungstenite's 128 KiB defaults cost ~150 KiB per idle connection; frames
/// here are mostly tiny, and larger ones still pass, in several reads).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        // Held (and zero-filled) by every idle connection: 512 bytes per read is plenty for
        // the small frames of an idle link (pings, acks, receipts), and a large frame still
        // reserves its whole length at once; it is only read in more pieces. (Our own
        // upgrade, `net::upgrade`, is what lets this size hold.)
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some((1 << 24) + 1024))
        .max_frame_size(Some((1 << 24) + 1024))
}

/// Opens a WebSocket to `url` within `timeout`, trusting the webpki roots for `wss://`.
pub async fn dial(url: &str, timeout: Duration) -> Result<WsStream, DialError> {
    dial_via(url, None, timeout, &ClientTls::webpki()).await
}

/// Opens a WebSocket to `url` within `timeout`, through `proxy` when given; `wss://` with
/// this TLS configuration.
pub async fn dial_via(
    url: &str,
    proxy: Option<&ProxyUrl>,
    timeout: Duration,
    tls: &ClientTls,
) -> Result<WsStream, DialError> {
    let mut request = url.into_client_request().map_err(|e| DialError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_static(ORIGIN));
    if let Some(proxy) = proxy {
        return super::proxy::dial(request, url, proxy, timeout, tls).await;
    }
    let secure = request.uri().scheme_str() == Some("wss");
    let host = request.uri().host().unwrap_or_default().to_string();
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    let connect = async {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(|e| UpgradeError::Failed(format!("cannot connect: {e}")))?;
        upgrade::upgrade(tcp, request, tls).await
    };
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(DialError::Timeout {
            url: url.to_string(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(DialError::of_upgrade(url, e, "")),
        Ok(Ok(ws)) => Ok(ws),
    }
}

impl DialError {
    /// A failed upgrade of a dial to `url`; `via` is appended to the reason (a proxy's name).
    pub(super) fn of_upgrade(url: &str, error: UpgradeError, via: &str) -> Self {
        match error {
            UpgradeError::Refused(status) => DialError::Refused {
                url: url.to_string(),
                status,
            },
            UpgradeError::Failed(reason) => DialError::Failed {
                url: url.to_string(),
                reason: format!("{reason}{via}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::net::conn::ConnError;

    /// A server that answers every upgrade with `status` and closes.
    async fn refusing(status: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = tcp.read(&mut request).await;
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                let _ = tcp.write_all(answer.as_bytes()).await;
            }
        });
        format!("ws://{addr}/ws/chat")
    }

    #[tokio::test]
    async fn a_refused_upgrade_carries_the_servers_status_not_408() {
        for (status, code) in [
            ("503 Service Unavailable", 503),
            ("429 Too Many Requests", 429),
        ] {
            let url = refusing(status).await;
            let error = dial(&url, Duration::from_secs(10)).await.err().unwrap();
            assert!(
                matches!(error, DialError::Refused { status, .. } if status == code),
                "{error}"
            );
            assert!(
                error.to_string().ends_with(&format!("with HTTP {code}")),
                "{error}"
            );
            let cause = ConnError::Dial(error).cause();
            assert_eq!(cause.code(), code, "{cause}");
        }
    }
}
