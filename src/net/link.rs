//! Opening one connection for a session: wait for a handshake slot and the global rate limit,
//! dial the WebSocket, run the Noise handshake with the right ClientPayload, start the connection
//! task. Runs as its own task so the driver stays responsive; reports progress over a channel.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net::chan;
use crate::net::conn::{ClientHandshake, Conn, ConnError, ConnEvent, client_handshake};
use crate::net::ratelimit::RateLimiter;
use crate::net::tls::ClientTls;
use crate::net::transport;
use crate::wa::creds::{Credentials, KeyPair};
use crate::wa::device::DeviceName;
use crate::wa::noise::TrustRoot;
use crate::wa::payload::{self, ClientVersion};

/// Where and how a session connects.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub trust: TrustRoot,
    /// The version at start; a config reload sends drivers a new one.
    pub version: ClientVersion,
    /// The name registrations carry (`DeviceProps`, QR platform letter).
    pub device: DeviceName,
    /// The proxy this session dials through (set per session by its driver; `None` is a
    /// direct connection).
    pub proxy: Option<crate::config::ProxyUrl>,
    /// The TLS every `wss://` dial uses (webpki roots plus `[server] ca_file`).
    pub tls: ClientTls,
    /// Test-only: false makes sessions ack nothing (to provoke `<stream:error><ack/>`).
    #[doc(hidden)]
    pub send_acks: bool,
}

/// Progress of one dial, tagged with the dial's id by the caller.
pub enum LinkEvent {
    /// A rate-limit token was granted (`waited`: after a wait) and the dial is starting.
    Dialling { waited: bool },
    /// The WebSocket is open; the handshake is running.
    Dialled,
    /// Handshake done; the connection task runs.
    Ready(Conn, chan::Receiver<ConnEvent>),
    /// The dial or handshake failed.
    Failed(Box<ConnError>),
}

/// What a dial needs from the credentials (copied so the task owns it).
pub struct DialKeys {
    noise: KeyPair,
    payload: Vec<u8>,
    routing: Option<Vec<u8>>,
}

impl DialKeys {
    /// Login payload when paired, registration payload (as `device`) otherwise.
    pub fn from_credentials(
        creds: &Credentials,
        version: &ClientVersion,
        device: &DeviceName,
    ) -> Result<Self, ConnError> {
        let payload = if creds.is_paired() {
            payload::login_payload(creds, version)
                .map_err(|e| ConnError::Payload(format!("login payload: {e}")))?
        } else {
            payload::registration_payload_as(creds, version, device)
        };
        Ok(DialKeys {
            noise: creds.noise.clone(),
            payload,
            routing: None,
        })
    }

    /// Prefixes the dial with edge-routing bytes the server sent earlier (PROTOCOL.md 1).
    pub fn with_routing(mut self, routing: Option<Vec<u8>>) -> Self {
        self.routing = routing;
        self
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where a dial's tasks live: ended by `cancel`, awaited through `tasks`.
#[derive(Clone)]
pub struct LinkScope {
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
}

/// Runs one dial to completion (or cancellation), sending progress to `progress` (as the
/// owner's own message type, so one channel can carry it beside the owner's other news).
/// `connect_timeout` bounds the dial and the handshake together.
pub async fn open<T: Copy + Send + 'static, M: From<(T, LinkEvent)> + Send + 'static>(
    tag: T,
    endpoint: Endpoint,
    keys: DialKeys,
    connect_timeout: Duration,
    limiter: RateLimiter,
    progress: chan::Sender<M>,
    scope: LinkScope,
) {
    let cancel = &scope.cancel;
    // Held until the handshake has ended, one way or the other.
    let (slot, waited) = tokio::select! {
        _ = cancel.cancelled() => return,
        granted = limiter.acquire_dial() => granted,
    };
    let _ = progress
        .send((tag, LinkEvent::Dialling { waited }).into())
        .await;
    let attempt = async {
        let ws = transport::dial_via(
            &endpoint.url,
            endpoint.proxy.as_ref(),
            connect_timeout,
            &endpoint.tls,
        )
        .await?;
        let _ = progress.send((tag, LinkEvent::Dialled).into()).await;
        let hs = ClientHandshake {
            noise: &keys.noise,
            payload: keys.payload,
            trust: &endpoint.trust,
            now_unix: now_unix(),
            routing: keys.routing.as_deref(),
        };
        client_handshake(ws, hs).await
    };
    let result = tokio::select! {
        _ = cancel.cancelled() => return,
        r = tokio::time::timeout(connect_timeout, attempt) => r,
    };
    drop(slot);
    let event = match result {
        Err(_) => LinkEvent::Failed(Box::new(ConnError::Timeout {
            what: "connect",
            after: connect_timeout,
        })),
        Ok(Err(e)) => LinkEvent::Failed(Box::new(e)),
        Ok(Ok(socket)) => {
            let (conn, events) = socket.spawn_in(&scope.tasks, cancel.child_token(), 256);
            LinkEvent::Ready(conn, events)
        }
    };
    let _ = progress.send((tag, event).into()).await;
}
