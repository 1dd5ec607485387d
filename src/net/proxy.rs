//! Dialing through a session's proxy: a TCP connection to the proxy, a tunnel to the server
//! (SOCKS5 per RFC 1928, with RFC 1929 user/password when given, or an HTTP `CONNECT`), then
//! TLS and the WebSocket over the tunnel exactly as on a direct connection.
//!
//! Anything that goes wrong before the tunnel stands is `DialError::Proxy`, named by the
//! proxy's redacted URL; what fails after it (TLS, the upgrade) is the usual dial error.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_socks::tcp::Socks5Stream;
use tokio_tungstenite::tungstenite::handshake::client::Request;

use super::tls::ClientTls;
use super::transport::{DialError, WsStream};
use crate::config::{ProxyKind, ProxyUrl};

/// The most a `CONNECT` answer's head may take (status line and headers).
pub const MAX_CONNECT_HEAD: usize = 8 * 1024;

/// Opens the WebSocket `request` (for `url`) through `proxy` within `timeout`.
pub(super) async fn dial(
    request: Request,
    url: &str,
    proxy: &ProxyUrl,
    timeout: Duration,
    tls: &ClientTls,
) -> Result<WsStream, DialError> {
    let deadline = Instant::now() + timeout;
    let uri = request.uri();
    let secure = uri.scheme_str() == Some("wss");
    let host = uri.host().unwrap_or_default().to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let refused = |reason: String| DialError::Proxy {
        proxy: proxy.to_string(),
        reason,
    };
    let tcp = match tokio::time::timeout_at(deadline, tunnel(proxy, &host, port)).await {
        Err(_) => return Err(refused(format!("no tunnel within {timeout:?}"))),
        Ok(Err(Failure::Proxy(reason))) => return Err(refused(reason)),
        Ok(Err(Failure::Target(reason))) => {
            let url = url.to_string();
            return Err(DialError::Failed { url, reason });
        }
        Ok(Ok(tcp)) => tcp,
    };
    let upgrade = super::upgrade::upgrade(tcp, request, tls);
    match tokio::time::timeout_at(deadline, upgrade).await {
        Err(_) => Err(DialError::Timeout {
            url: url.to_string(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(DialError::of_upgrade(
            url,
            e,
            &format!(" (through {proxy})"),
        )),
        Ok(Ok(ws)) => Ok(ws),
    }
}

/// Why a tunnel could not be opened: the proxy's fault, or the target's name not resolving.
enum Failure {
    Proxy(String),
    Target(String),
}

/// A TCP stream to the proxy that now carries bytes to `host:port`.
async fn tunnel(proxy: &ProxyUrl, host: &str, port: u16) -> Result<TcpStream, Failure> {
    let tcp = TcpStream::connect(proxy.address())
        .await
        .map_err(|e| Failure::Proxy(format!("cannot reach it ({e})")))?;
    let _ = tcp.set_nodelay(true);
    // `Uri::host` keeps an IPv6 literal's brackets; SOCKS wants the bare address.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match proxy.kind {
        ProxyKind::Socks5h => socks5(tcp, proxy, (bare, port)).await,
        ProxyKind::Socks5 => {
            let target = tokio::net::lookup_host((bare, port))
                .await
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| Failure::Target(format!("cannot resolve {host}")))?;
            socks5(tcp, proxy, target).await
        }
        ProxyKind::Http => http_connect(tcp, proxy, host, port).await,
    }
}

async fn socks5<'t>(
    tcp: TcpStream,
    proxy: &ProxyUrl,
    target: impl tokio_socks::IntoTargetAddr<'t>,
) -> Result<TcpStream, Failure> {
    let stream = match &proxy.auth {
        None => Socks5Stream::connect_with_socket(tcp, target).await,
        Some(auth) => {
            Socks5Stream::connect_with_password_and_socket(
                tcp,
                target,
                &auth.user,
                auth.password.expose(),
            )
            .await
        }
    };
    stream
        .map(Socks5Stream::into_inner)
        .map_err(|e| Failure::Proxy(socks_reason(&e)))
}

/// A SOCKS failure in words (the crate's messages carry no credentials).
fn socks_reason(e: &tokio_socks::Error) -> String {
    use tokio_socks::Error as E;
    match e {
        E::PasswordAuthFailure(status) => {
            format!("it refused the user name and password (status {status})")
        }
        E::NoAcceptableAuthMethods => {
            "it accepts none of the offered authentication methods (does it need a user name and password?)"
                .to_string()
        }
        E::Io(io) => format!("SOCKS5 exchange failed: {io}"),
        other => format!("SOCKS5 reply: {}", other.to_string().to_lowercase()),
    }
}

/// `CONNECT host:port` with optional Basic credentials; a 2xx answer opens the tunnel.
async fn http_connect(
    mut tcp: TcpStream,
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> Result<TcpStream, Failure> {
    let target = format!("{host}:{port}");
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.auth {
        let pair = format!("{}:{}", auth.user, auth.password.expose());
        let token = base64::engine::general_purpose::STANDARD.encode(pair);
        head.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| Failure::Proxy(format!("sending CONNECT failed: {e}")))?;
    let answer = read_head(&mut tcp).await.map_err(Failure::Proxy)?;
    let code = parse_connect_answer(&answer).map_err(Failure::Proxy)?;
    if !(200..300).contains(&code.0) {
        return Err(Failure::Proxy(format!(
            "CONNECT answered {} {}",
            code.0, code.1
        )));
    }
    Ok(tcp)
}

/// Reads up to the blank line ending the answer's head, one byte at a time so nothing of
/// the tunnel's own bytes is taken.
async fn read_head(tcp: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_HEAD {
            return Err(format!(
                "its CONNECT answer is longer than {MAX_CONNECT_HEAD} bytes"
            ));
        }
        match tcp.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err("it closed the connection before answering CONNECT".to_string());
            }
            Err(e) => return Err(format!("reading its CONNECT answer failed: {e}")),
        }
    }
    Ok(head)
}

/// The status code and reason of a `CONNECT` answer's head, checked strictly: an
/// `HTTP/1.0` or `HTTP/1.1` status line with three digits, then `name: value` header lines
/// of visible characters.
pub fn parse_connect_answer(head: &[u8]) -> Result<(u16, String), String> {
    let bad = |what: &str| format!("its CONNECT answer is not HTTP: {what}");
    let text = std::str::from_utf8(head).map_err(|_| bad("it is not text"))?;
    let body = text
        .strip_suffix("\r\n\r\n")
        .ok_or_else(|| bad("its head does not end with a blank line"))?;
    let mut lines = body.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let rest = status
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status.strip_prefix("HTTP/1.0 "))
        .ok_or_else(|| bad("the status line does not start with HTTP/1.1 or HTTP/1.0"))?;
    let (digits, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the status code is not three digits"));
    }
    let code: u16 = digits.parse().map_err(|_| bad("bad status code"))?;
    if reason.chars().any(char::is_control) {
        return Err(bad("the reason phrase has control characters"));
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("a header line has no ':'"));
        };
        let token = |c: char| c.is_ascii_graphic() && c != ':';
        if name.is_empty() || !name.chars().all(token) {
            return Err(bad("a header name is not a token"));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(bad("a header value has control characters"));
        }
    }
    let reason: String = reason.chars().take(80).collect();
    Ok((code, reason))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn connect_answers_parse_strictly() {
        let ok = parse_connect_answer(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
        assert_eq!(ok, (200, "Connection established".to_string()));
        let denied = b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n";
        assert_eq!(parse_connect_answer(denied).unwrap().0, 407);
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 O\x07K\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse_connect_answer(bad).is_err(), "{bad:?}");
        }
    }
}
