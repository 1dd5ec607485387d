//! WebSocket transport: dial a `ws://` or `wss://` URL (rustls with webpki roots) with a
//! connect timeout and WhatsApp's `Origin` header.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::net::tls::ClientTls;

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
}

/// WebSocket settings: messages up to the 16 MiB frame cap plus framing overhead, and small
/// I/O buffers (tungstenite's 128 KiB defaults cost ~150 KiB per idle connection; frames
/// here are mostly tiny, and larger ones still pass, in several reads).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some((1 << 24) + 1024))
        .max_frame_size(Some((1 << 24) + 1024))
}

/// Opens a WebSocket to `url` within `timeout`, trusting the webpki roots for `wss://`.
pub async fn dial(url: &str, timeout: Duration) -> Result<WsStream, DialError> {
    dial_with(url, timeout, &ClientTls::webpki()).await
}

/// Opens a WebSocket to `url` within `timeout`; `wss://` with this TLS configuration.
pub async fn dial_with(
    url: &str,
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
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config()),
        true,
        Some(tls.connector()),
    );
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(DialError::Timeout {
            url: url.to_string(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(DialError::Failed {
            url: url.to_string(),
            reason: e.to_string(),
        }),
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}
