//! The WebSocket opening handshake, done here rather than by tungstenite: TLS for `wss://`,
//! the HTTP/1.1 upgrade request, the `101` answer checked (status, `Upgrade`, `Connection`,
//! `Sec-WebSocket-Accept`), then tungstenite's framing over the same stream.
//!
//! Why our own: tungstenite's handshake reads the answer into a 4 KiB buffer and hands that
//! very allocation to the connection as its read buffer, so every idle connection kept 4 KiB
//! whatever `read_buffer_size` said. Here the answer's head is read into a short-lived buffer
//! and the connection starts with only the bytes that followed it (usually none), so its read
//! buffer is the size `ws_config` chooses.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::{Request, generate_request};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::tls::ClientTls;
use super::transport::{WsStream, ws_config};

/// The longest answer head accepted (WhatsApp's is a few hundred bytes).
const MAX_HEAD: usize = 8 * 1024;

/// Why an upgrade failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The server answered with this HTTP status instead of `101`.
    #[error("the server answered HTTP {0} instead of switching protocols")]
    Refused(u16),
    #[error("{0}")]
    Failed(String),
}

fn failed(what: impl std::fmt::Display) -> UpgradeError {
    UpgradeError::Failed(what.to_string())
}

/// Runs TLS (for `wss://`) and the upgrade for `request` over `tcp`.
pub async fn upgrade(
    tcp: TcpStream,
    request: Request,
    tls: &ClientTls,
) -> Result<WsStream, UpgradeError> {
    let _ = tcp.set_nodelay(true);
    let uri = request.uri();
    let stream = if uri.scheme_str() == Some("wss") {
        let host = uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(bare.to_string())
            .map_err(|e| failed(format!("invalid TLS server name {host}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(tls.config());
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| failed(format!("TLS error: {e}")))?;
        MaybeTlsStream::Rustls(stream)
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    over(stream, request).await
}

/// The upgrade itself over an open stream (TLS already done when wanted).
pub async fn over<S>(mut stream: S, request: Request) -> Result<WebSocketStream<S>, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (bytes, key) = generate_request(request).map_err(failed)?;
    stream.write_all(&bytes).await.map_err(failed)?;
    stream.flush().await.map_err(failed)?;
    let (head, tail) = read_head(&mut stream).await?;
    check_answer(&head, &key)?;
    Ok(WebSocketStream::from_partially_read(stream, tail, Role::Client, Some(ws_config())).await)
}

/// Reads the answer up to its blank line; answers the head and, apart, whatever came after
/// it (in an allocation of exactly its size: it becomes the connection's read buffer).
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Vec<u8>, Vec<u8>), UpgradeError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await.map_err(failed)?;
        if n == 0 {
            return Err(failed(
                "the server closed the connection during the upgrade",
            ));
        }
        // Look for the end from a little before the new bytes (it may straddle two reads).
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        let end = head[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| from + at + 4);
        if let Some(end) = end.filter(|&end| end <= MAX_HEAD) {
            let tail = head[end..].to_vec();
            head.truncate(end);
            return Ok((head, tail));
        }
        if head.len() > MAX_HEAD {
            return Err(failed(format!(
                "the server's upgrade answer is longer than {MAX_HEAD} bytes"
            )));
        }
    }
}

/// Checks a complete answer head against the request's key.
fn check_answer(head: &[u8], key: &str) -> Result<(), UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    match answer.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(failed("the upgrade answer is incomplete")),
        Err(e) => return Err(failed(format!("the upgrade answer is not HTTP: {e}"))),
    }
    let status = answer.code.unwrap_or(0);
    if status != 101 {
        return Err(UpgradeError::Refused(status));
    }
    let header = |name: &str| {
        answer
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let upgrade = header("Upgrade").unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(failed(format!(
            "the upgrade answer's Upgrade header is {upgrade:?}, not \"websocket\""
        )));
    }
    let connection = header("Connection").unwrap_or_default();
    if !connection
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    {
        return Err(failed(format!(
            "the upgrade answer's Connection header is {connection:?}, not \"Upgrade\""
        )));
    }
    let expected = derive_accept_key(key.as_bytes());
    match header("Sec-WebSocket-Accept") {
        Some(accept) if accept == expected => Ok(()),
        Some(_) => Err(failed(
            "the upgrade answer's Sec-WebSocket-Accept does not match our key",
        )),
        None => Err(failed("the upgrade answer has no Sec-WebSocket-Accept")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::*;

    /// Runs `over` against a scripted server that answers with `answer(key)`, written in
    /// pieces of `piece` bytes, followed by `after`.
    async fn against(
        answer: impl Fn(&str) -> String,
        piece: usize,
        after: &[u8],
    ) -> (
        Result<WebSocketStream<tokio::io::DuplexStream>, UpgradeError>,
        tokio::io::DuplexStream,
    ) {
        let (client, mut server) = duplex(64 * 1024);
        let request = "ws://127.0.0.1/ws/chat".into_client_request().unwrap();
        let after = after.to_vec();
        let answer_of = move |req: &str| {
            let key = req
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .trim()
                .to_string();
            answer(&key)
        };
        let serve = async move {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = server.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
            }
            let mut bytes = answer_of(std::str::from_utf8(&req).unwrap()).into_bytes();
            bytes.extend_from_slice(&after);
            for part in bytes.chunks(piece) {
                server.write_all(part).await.unwrap();
                tokio::task::yield_now().await;
            }
            server
        };
        tokio::join!(over(client, request), serve)
    }

    fn switching(key: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
    }

    #[tokio::test]
    async fn a_good_answer_in_any_pieces_opens_the_socket_and_keeps_what_followed() {
        use futures::StreamExt;
        // A binary frame (unmasked, server to client) of 3 bytes right after the head.
        let frame = [0x82, 0x03, b'a', b'b', b'c'];
        for piece in [1, 3, 7, 4096] {
            let (ws, _server) = against(switching, piece, &frame).await;
            let mut ws = ws.unwrap();
            let first = ws.next().await.unwrap().unwrap();
            assert_eq!(first.into_data().as_ref(), b"abc", "piece {piece}");
        }
    }

    #[tokio::test]
    async fn wrong_answers_are_refused_with_their_reason() {
        type Answer = Box<dyn Fn(&str) -> String>;
        let cases: Vec<(Answer, &str)> = vec![
            (
                Box::new(|_| "HTTP/1.1 503 Service Unavailable\r\n\r\n".into()),
                "HTTP 503",
            ),
            (
                Box::new(|k| switching(k).replace("websocket", "h2c")),
                "Upgrade header",
            ),
            (
                Box::new(|k| switching(k).replace("Connection: Upgrade", "Connection: close")),
                "Connection header",
            ),
            (
                Box::new(|_| switching("another key")),
                "does not match our key",
            ),
            (
                Box::new(|k| {
                    switching(k)
                        .lines()
                        .filter(|l| !l.starts_with("Sec-WebSocket-Accept"))
                        .map(|l| format!("{l}\r\n"))
                        .collect()
                }),
                "no Sec-WebSocket-Accept",
            ),
            (Box::new(|_| "SSH-2.0-OpenSSH\r\n\r\n".into()), "not HTTP"),
        ];
        for (answer, reason) in cases {
            let error = against(answer, 5, b"").await.0.err().unwrap();
            assert!(error.to_string().contains(reason), "{error} / {reason}");
        }
    }

    #[tokio::test]
    async fn an_endless_head_is_cut_off() {
        let long = |_: &str| format!("HTTP/1.1 101 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let error = against(long, 1000, b"").await.0.err().unwrap();
        assert!(error.to_string().contains("longer than"), "{error}");
    }
}
