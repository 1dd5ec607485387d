//! Which WhatsApp Web version sessions claim: the current revision read from WhatsApp's
//! service worker (`https://web.whatsapp.com/sw.js`, the `client_revision` Baileys reads)
//! when the server is WhatsApp's and discovery is on, else `[server] client_version`, else
//! the built-in one. One small HTTP/1.0 GET with a deadline; any failure falls back.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::ServerConfig;
use crate::wa::payload::ClientVersion;

/// Where the current revision is published.
pub const SW_JS_URL: &str = "https://web.whatsapp.com/sw.js";
/// The whole look-up (connect, TLS, request, body) must finish within this.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The service worker is a few hundred KiB; stop reading beyond this.
const MAX_BODY: usize = 8 << 20;

/// Where the version in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// Read from WhatsApp's service worker at start.
    Discovered,
    /// `[server] client_version`.
    Configured,
    /// wasp's built-in version.
    BuiltIn,
}

/// The version in use and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub version: ClientVersion,
    pub source: VersionSource,
    /// Why discovery was skipped or failed, when it was.
    pub note: Option<String>,
}

impl Resolved {
    /// One sentence for the log: which version and why.
    pub fn describe(&self) -> String {
        let why = match self.source {
            VersionSource::Discovered => "the current revision published by WhatsApp Web",
            VersionSource::Configured => "client_version in [server]",
            VersionSource::BuiltIn => "wasp's built-in version",
        };
        match &self.note {
            Some(note) => format!("client version {} ({why}; {note})", self.version),
            None => format!("client version {} ({why})", self.version),
        }
    }
}

/// Why the look-up failed.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("version URL {0} is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("fetching {url} failed: {reason}")]
    Fetch { url: String, reason: String },
    #[error("fetching {url} timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url} answered {status}")]
    Status { url: String, status: String },
    #[error("{url} holds no client_revision")]
    NoRevision { url: String },
}

/// The version to use for `server`: discovery at `sw_url` when the server is WhatsApp's and
/// `discover_version` is on, then the configured version, then the built-in one.
pub async fn resolve(server: &ServerConfig, sw_url: &str, timeout: Duration) -> Resolved {
    let fallback = |note: Option<String>| match server.client_version {
        Some(version) => Resolved {
            version,
            source: VersionSource::Configured,
            note,
        },
        None => Resolved {
            version: ClientVersion::default(),
            source: VersionSource::BuiltIn,
            note,
        },
    };
    if !server.discover_version {
        return fallback(None);
    }
    if !is_whatsapp(&server.url) {
        return fallback(Some("discovery is only for web.whatsapp.com".into()));
    }
    match discover(sw_url, timeout).await {
        Ok(version) => Resolved {
            version,
            source: VersionSource::Discovered,
            note: None,
        },
        Err(e) => fallback(Some(format!("discovery failed: {e}"))),
    }
}

/// True when `url` points at WhatsApp's own server.
pub fn is_whatsapp(url: &str) -> bool {
    host_of(url).is_some_and(|h| h == "web.whatsapp.com")
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h))
}

/// Fetches `url` (http or https) and reads `client_revision` from it, all within `timeout`.
pub async fn discover(url: &str, timeout: Duration) -> Result<ClientVersion, VersionError> {
    let body = tokio::time::timeout(timeout, fetch(url))
        .await
        .map_err(|_| VersionError::Timeout {
            url: url.to_string(),
            after: timeout,
        })??;
    let revision = parse_revision(&body).ok_or_else(|| VersionError::NoRevision {
        url: url.to_string(),
    })?;
    Ok(ClientVersion::new(2, 3000, revision))
}

/// The number after `client_revision`, in its plain (`"client_revision":123`) or escaped
/// (`\"client_revision\":123`) form, spaces allowed before the digits.
pub fn parse_revision(body: &[u8]) -> Option<u32> {
    let key = b"client_revision";
    let mut from = 0;
    while let Some(at) = find(&body[from..], key) {
        let mut rest = &body[from + at + key.len()..];
        for skip in [b'\\', b'"'] {
            if let Some(r) = rest.strip_prefix(&[skip]) {
                rest = r;
            }
        }
        if let Some(r) = rest.strip_prefix(b":") {
            let r = r.trim_ascii_start();
            let digits = r.iter().take_while(|b| b.is_ascii_digit()).count();
            if let Some(n) = std::str::from_utf8(&r[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
            {
                return Some(n);
            }
        }
        from += at + key.len();
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn fetch(url: &str) -> Result<Vec<u8>, VersionError> {
    let bad = || VersionError::BadUrl(url.to_string());
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = host_of(url).ok_or_else(bad)?;
    let port = match authority.rsplit_once(':') {
        Some((_, p)) => p.parse::<u16>().map_err(|_| bad())?,
        None if tls => 443,
        None => 80,
    };
    let failed = |e: &dyn std::fmt::Display| VersionError::Fetch {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| failed(&e))?;
    // HTTP/1.0: the answer is the body up to the close, never chunked.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; \
         Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
         Sec-Fetch-Site: none\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let response = if tls {
        let connector = tokio_rustls::TlsConnector::from(tls_config().map_err(|e| failed(&e))?);
        let name =
            rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| failed(&e))?;
        let stream = connector.connect(name, tcp).await.map_err(|e| failed(&e))?;
        exchange(stream, &request).await
    } else {
        exchange(tcp, &request).await
    }
    .map_err(|e| failed(&e))?;
    split_response(url, &response)
}

pub(crate) fn tls_config() -> Result<std::sync::Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            // Many servers end TLS without close_notify; what arrived is the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        response.extend_from_slice(&chunk[..n]);
        if response.len() > MAX_BODY {
            break;
        }
    }
    Ok(response)
}

/// The body of a `200` answer.
fn split_response(url: &str, response: &[u8]) -> Result<Vec<u8>, VersionError> {
    let end = find(response, b"\r\n\r\n").ok_or_else(|| VersionError::Fetch {
        url: url.to_string(),
        reason: "the answer is not HTTP".into(),
    })?;
    let head = String::from_utf8_lossy(&response[..end]);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(VersionError::Status {
            url: url.to_string(),
            status: status.to_string(),
        });
    }
    Ok(response[end + 4..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_read_in_both_forms() {
        assert_eq!(
            parse_revision(br#"self.x={"client_revision":1045649367,"y":1}"#),
            Some(1_045_649_367)
        );
        assert_eq!(
            parse_revision(br#"var s="{\"client_revision\": 1043857760}";"#),
            Some(1_043_857_760)
        );
        assert_eq!(
            parse_revision(br#"client_revision_x:1 "client_revision":77"#),
            Some(77)
        );
        assert_eq!(parse_revision(b"<html>nothing here</html>"), None);
        assert_eq!(parse_revision(br#""client_revision":"abc""#), None);
    }

    #[test]
    fn only_whatsapp_urls_are_discovered() {
        assert!(is_whatsapp("wss://web.whatsapp.com/ws/chat"));
        assert!(is_whatsapp("wss://web.whatsapp.com:443/ws/chat"));
        assert!(!is_whatsapp("ws://127.0.0.1:5555/ws/chat"));
        assert!(!is_whatsapp("wss://web.whatsapp.com.evil.example/ws/chat"));
    }
}
