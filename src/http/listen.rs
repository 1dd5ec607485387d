//! The accept loop under the routes: a cap on open connections with a small reserve that
//! serves only `/healthz`, requests carrying the token and GETs with the read-only token, a header-read timeout, an idle
//! timeout, and a pause (not a spin) when accept fails for lack of descriptors, so holding
//! sockets open against the endpoint cannot take descriptors from dials and backups.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::auth::{Access, LiveAccess};
use super::state::error;
use crate::config::HttpConfig;

/// How long accept pauses after "too many open files" before trying again.
const EMFILE_PAUSE: Duration = Duration::from_millis(100);
/// A connection taken on the reserve gets this long for its one request's headers.
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a closing connection may take to finish its answer at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// At most one warning about refused connections per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The endpoint's connection limits, from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    pub reserve_connections: u32,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn of(http: &HttpConfig) -> Limits {
        Limits {
            max_connections: http.max_connections,
            reserve_connections: http.reserve_connections,
            header_timeout: http.header_timeout,
            idle_timeout: http.idle_timeout,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::of(&HttpConfig::default())
    }
}

/// Which share of the cap a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    Open,
    /// Only `/healthz` and token holders are answered; one request, then close.
    Reserve,
}

/// Rate-limited warnings and counts of refused connections.
struct Refusals {
    last_warning: Option<Instant>,
    refused: u64,
    emfile: u64,
}

impl Refusals {
    fn warn(&mut self) {
        let now = Instant::now();
        if self.last_warning.is_some_and(|at| now - at < WARN_EVERY) {
            return;
        }
        self.last_warning = Some(now);
        tracing::warn!(
            refused = self.refused,
            out_of_descriptors = self.emfile,
            "http: connection cap reached or out of descriptors; refusing connections"
        );
    }
}

/// Accepts until `cancel` fires; each connection is served on its own task.
pub(super) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    access: LiveAccess,
    limits: Limits,
    cancel: CancellationToken,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections as usize));
    let reserve = Arc::new(Semaphore::new(limits.reserve_connections as usize));
    let tracker = TaskTracker::new();
    let mut refusals = Refusals {
        last_warning: None,
        refused: 0,
        emfile: 0,
    };
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_out_of_descriptors(&e) => {
                refusals.emfile += 1;
                refusals.warn();
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(EMFILE_PAUSE) => continue,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "http: accept failed");
                continue;
            }
        };
        let (share, permit) = match open.clone().try_acquire_owned() {
            Ok(p) => (Share::Open, p),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => (Share::Reserve, p),
                Err(_) => {
                    // Closing at once gives the descriptor back.
                    drop(stream);
                    refusals.refused += 1;
                    refusals.warn();
                    continue;
                }
            },
        };
        let connection = Connection {
            router: router.clone(),
            access: access.clone(),
            limits,
            share,
            _permit: permit,
        };
        tracker.spawn(connection.serve(stream, cancel.clone()));
    }
    tracker.close();
    tracker.wait().await;
}

fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether a request on a connection of `share` is answered: everything on the open share;
/// on the reserve, `/healthz`, the operator's token, and GETs with the read-only token.
fn admits<B>(share: Share, access: &Access, request: &Request<B>) -> bool {
    let headers = request.headers();
    share == Share::Open
        || request.uri().path() == "/healthz"
        || access.operator(headers)
        || (request.method() == Method::GET && access.reader(headers))
}

struct Connection {
    router: Router,
    access: LiveAccess,
    limits: Limits,
    share: Share,
    /// Held while the connection is open.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, cancel: CancellationToken) {
        let started = Instant::now();
        // Milliseconds after `started` of the latest request.
        let last_request = Arc::new(AtomicU64::new(0));
        let seen = last_request.clone();
        let (router, access, share) = (self.router, self.access, self.share);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let elapsed = Instant::now().saturating_duration_since(started);
            seen.store(
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let admitted = admits(share, &access.current(), &request);
            let router = router.clone();
            async move {
                if !admitted {
                    return Ok::<Response, Infallible>(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many connections: only /healthz and requests with the token are answered now",
                    ));
                }
                router.oneshot(request.map(Body::new)).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new());
        match share {
            Share::Open => builder.header_read_timeout(self.limits.header_timeout),
            Share::Reserve => builder
                .header_read_timeout(RESERVE_HEADER_TIMEOUT.min(self.limits.header_timeout))
                .keep_alive(false),
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let idle = self.limits.idle_timeout;
        loop {
            let last = Duration::from_millis(last_request.load(Ordering::Relaxed));
            let idle_at = started + last + idle;
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(idle_at) => {
                    let last = Duration::from_millis(last_request.load(Ordering::Relaxed));
                    if Instant::now() >= started + last + idle {
                        break;
                    }
                }
            }
        }
        // Idle or shutting down: finish an answer in progress, then close. A long answer
        // (the event stream) keeps its connection until it ends or the endpoint stops.
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = cancel.cancelled() => {}
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Token;

    fn request(method: Method, path: &str, bearer: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_reserve_answers_health_the_operator_and_monitoring_reads_only() {
        let access = Access {
            token: Token::new("operator-token"),
            read_token: Token::new("monitor-token"),
        };
        let reserve = |m, p, t| admits(Share::Reserve, &access, &request(m, p, t));
        assert!(reserve(Method::GET, "/healthz", None));
        assert!(reserve(
            Method::POST,
            "/sessions/a/reconnect",
            Some("operator-token")
        ));
        assert!(reserve(Method::GET, "/metrics", Some("monitor-token")));
        assert!(!reserve(
            Method::POST,
            "/sessions/a/reconnect",
            Some("monitor-token")
        ));
        assert!(!reserve(Method::GET, "/metrics", None));
        assert!(!reserve(Method::GET, "/metrics", Some("guess")));
        assert!(admits(
            Share::Open,
            &access,
            &request(Method::GET, "/metrics", None)
        ));
        // The read-only token never counts as the operator's (the QR, actions).
        let monitor = request(Method::GET, "/sessions/a", Some("monitor-token"));
        assert!(!access.operator(monitor.headers()));
    }
}
