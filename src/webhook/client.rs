//! One webhook POST: a fresh HTTP/1.1 connection (TLS through rustls for `https://`), the
//! body and its headers, and the answer's status, all within one timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::WebhookUrl;

/// How a POST ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this status.
    Status(u16),
    /// No answer: connect, TLS or I/O failure, or the timeout (the words say which).
    Failed(String),
}

/// The most of an answer's body read (it is only drained, so the connection ends cleanly).
const MAX_ANSWER: usize = 64 * 1024;

/// POSTs `body` to `url` with `headers`; gives up after `timeout`.
pub async fn post(
    url: &WebhookUrl,
    headers: &[(&str, String)],
    body: String,
    timeout: Duration,
) -> Answer {
    match tokio::time::timeout(timeout, exchange(url, headers, body)).await {
        Ok(Ok(status)) => Answer::Status(status),
        Ok(Err(why)) => Answer::Failed(why),
        Err(_) => Answer::Failed(format!("no answer within {timeout:?}")),
    }
}

async fn exchange(
    url: &WebhookUrl,
    headers: &[(&str, String)],
    body: String,
) -> Result<u16, String> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("could not connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if !url.tls {
        return request(tcp, url, headers, body).await;
    }
    let config = crate::net::version::tls_config().map_err(|e| format!("TLS setup: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| format!("bad TLS name: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    request(tls, url, headers, body).await
}

async fn request<S>(
    stream: S,
    url: &WebhookUrl,
    headers: &[(&str, String)],
    body: String,
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection task ends with the request (or with the timeout dropping this future).
    let driver = tokio::spawn(conn);
    let authority = match (url.tls, url.port) {
        (true, 443) | (false, 80) => url.host.clone(),
        _ => format!("{}:{}", url.host, url.port),
    };
    let mut builder = Request::post(url.path.as_str())
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("wasp/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad request: {e}"))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        let status = response.status().as_u16();
        // Drain a little of the answer; its content does not matter.
        let mut body = response.into_body();
        let mut read = 0usize;
        while read < MAX_ANSWER {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        Ok(status)
    }
    .await;
    driver.abort();
    result
}
