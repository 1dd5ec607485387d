//! A small HTTP/1 client for `wasp attach`: GET and POST against a pool's API, over TCP
//! (`http://host:port`) or the pool's local Unix socket, with the bearer token when one is
//! held. One connection per request; the event stream keeps its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::AttachError;
use crate::http::Token;

/// How long connecting may take before the pool counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a POST may take (a pair request waits up to 15 s for its QR).
const POST_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the pool's API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port`, and a path prefix (empty or starting with `/`, no trailing `/`).
    Tcp { authority: String, base: String },
    /// The pool's local socket file.
    Unix(PathBuf),
}

impl Target {
    /// `http://host:port[/prefix]`, or a path: the socket file itself or the data directory
    /// holding `wasp.sock`.
    pub fn parse(text: &str) -> Result<Target, AttachError> {
        if let Some(rest) = text.strip_prefix("http://") {
            let (authority, base) = match rest.find('/') {
                Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
                None => (rest, ""),
            };
            if authority.is_empty() {
                return Err(AttachError::BadTarget(format!("{text} names no host")));
            }
            let authority = if authority.contains(':') {
                authority.to_string()
            } else {
                format!("{authority}:80")
            };
            return Ok(Target::Tcp {
                authority,
                base: base.to_string(),
            });
        }
        if text.contains("://") {
            return Err(AttachError::BadTarget(format!(
                "{text}: only http:// is spoken (reach a remote pool through an SSH tunnel)"
            )));
        }
        let path = Path::new(text);
        if path.is_dir() {
            return Ok(Target::Unix(path.join(crate::http::SOCKET_NAME)));
        }
        Ok(Target::Unix(path.to_path_buf()))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { authority, base } => write!(f, "http://{authority}{base}"),
            Target::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Requests to one pool, with or without the token.
#[derive(Debug, Clone)]
pub struct Client {
    pub target: Target,
    token: Option<Token>,
}

/// The one-sentence error of a JSON error answer (`{"error": "..."}`), else the body text.
fn error_sentence(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends with its response body; an error there reaches the reader.
        let _ = conn.await;
    });
    Ok(sender)
}

impl Client {
    pub fn new(target: Target, token: Option<Token>) -> Client {
        Client { target, token }
    }

    /// Whether actions can be sent (a token is held).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, AttachError> {
        let unreachable = |source| AttachError::Unreachable {
            target: self.target.to_string(),
            source,
        };
        let timed_out = || {
            unreachable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting took too long",
            ))
        };
        let sender = match &self.target {
            Target::Tcp { authority, .. } => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(unreachable)?;
                handshake(stream).await
            }
            Target::Unix(path) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(unreachable)?;
                handshake(stream).await
            }
        };
        sender.map_err(|e| self.broken(e))
    }

    fn broken(&self, e: hyper::Error) -> AttachError {
        AttachError::Broken {
            target: self.target.to_string(),
            why: e.to_string(),
        }
    }

    /// Sends one request; a non-2xx answer becomes `AttachError::Refused` with its sentence.
    async fn send(&self, method: Method, path: &str) -> Result<Response<Incoming>, AttachError> {
        self.send_body(method, path, None).await
    }

    /// Sends one request with an optional JSON body.
    async fn send_body(
        &self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> Result<Response<Incoming>, AttachError> {
        let mut sender = self.connect().await?;
        let (authority, base) = match &self.target {
            Target::Tcp { authority, base } => (authority.as_str(), base.as_str()),
            Target::Unix(_) => ("localhost", ""),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header(HOST, authority);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let body = match json {
            Some(json) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(json))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| AttachError::BadTarget(format!("{}{path}: {e}", self.target)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.broken(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(AttachError::Refused {
            status,
            message: error_sentence(&body),
        })
    }

    /// A GET whose body is read as it comes (the event stream).
    pub async fn stream(&self, path: &str) -> Result<Incoming, AttachError> {
        Ok(self.send(Method::GET, path).await?.into_body())
    }

    /// A POST (an operator action); its answer is not needed beyond success.
    pub async fn post(&self, path: &str) -> Result<(), AttachError> {
        self.post_body(path, None).await.map(|_| ())
    }

    /// A POST with a JSON body (a move); its answer is not needed beyond success.
    pub async fn post_json(&self, path: &str, json: String) -> Result<(), AttachError> {
        self.post_body(path, Some(json)).await.map(|_| ())
    }

    async fn post_body(&self, path: &str, json: Option<String>) -> Result<(), AttachError> {
        self.call(Method::POST, path, json).await.map(|_| ())
    }

    /// A POST with a JSON body whose JSON answer is wanted (a message queued, a pairing
    /// code).
    pub async fn post_json_answer(
        &self,
        path: &str,
        json: String,
    ) -> Result<serde_json::Value, AttachError> {
        let body = self.call(Method::POST, path, Some(json)).await?;
        self.json(&body)
    }

    /// A GET whose JSON answer is wanted (a listing).
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, AttachError> {
        let body = self.call(Method::GET, path, None).await?;
        self.json(&body)
    }

    fn json(&self, body: &[u8]) -> Result<serde_json::Value, AttachError> {
        serde_json::from_slice(body).map_err(|e| AttachError::Broken {
            target: self.target.to_string(),
            why: format!("the answer is not JSON: {e}"),
        })
    }

    /// One request and its whole answer, within `POST_TIMEOUT`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> Result<Bytes, AttachError> {
        let answer = async {
            let body = self.send_body(method, path, json).await?.into_body();
            let body = body.collect().await.map_err(|e| self.broken(e))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(POST_TIMEOUT, answer)
            .await
            .map_err(|_| AttachError::Broken {
                target: self.target.to_string(),
                why: format!("no answer within {POST_TIMEOUT:?}"),
            })?
    }
}

/// A path segment with everything but `A-Z a-z 0-9 - _ .` percent-encoded.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("http://127.0.0.1:8080").unwrap(),
            Target::Tcp {
                authority: "127.0.0.1:8080".into(),
                base: String::new()
            }
        );
        assert_eq!(
            Target::parse("http://pool.lan/wasp/").unwrap(),
            Target::Tcp {
                authority: "pool.lan:80".into(),
                base: "/wasp".into()
            }
        );
        assert!(matches!(
            Target::parse("https://pool.lan"),
            Err(AttachError::BadTarget(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Target::parse(dir.path().to_str().unwrap()).unwrap(),
            Target::Unix(dir.path().join("wasp.sock"))
        );
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("sales-1_a.b"), "sales-1_a.b");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn error_answers_give_their_sentence() {
        assert_eq!(
            error_sentence(br#"{"error":"no session named x"}"#),
            "no session named x"
        );
        assert_eq!(error_sentence(b"plain\n"), "plain");
    }
}
