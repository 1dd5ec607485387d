//! A real local webhook receiver for the webhook tests: an HTTP server on 127.0.0.1:0 that
//! checks every request's signature and, by its mode, accepts, fails with 500 about half the
//! time and sometimes hangs past the sender's timeout (a seeded coin, so runs repeat), or
//! refuses some sessions' events with a 4xx.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;
use wasp::webhook::WebhookSecret;

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 to everything.
    Accept,
    /// 500 for half the requests, no answer at all (for a minute) for a tenth, else 200.
    Flaky,
    /// This status for events of these sessions, 200 for the rest.
    Refuse(u16, Vec<String>),
}

/// One accepted request.
#[derive(Clone, Debug)]
pub struct Hit {
    pub session: String,
    pub event: String,
    pub body: serde_json::Value,
}

#[derive(Clone)]
struct Shared {
    secret: WebhookSecret,
    mode: Arc<Mutex<Mode>>,
    coin: Arc<Mutex<StdRng>>,
    hits: Arc<Mutex<Vec<Hit>>>,
    requests: Arc<AtomicU64>,
    bad_signatures: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    hung: Arc<AtomicU64>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
    cancel: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Receiver {
    /// Serves on a free loopback port, checking signatures made with `secret`.
    pub async fn start(secret: &str, mode: Mode) -> Receiver {
        let shared = Shared {
            secret: WebhookSecret::new(secret),
            mode: Arc::new(Mutex::new(mode)),
            coin: Arc::new(Mutex::new(StdRng::seed_from_u64(13))),
            hits: Arc::default(),
            requests: Arc::default(),
            bad_signatures: Arc::default(),
            failed: Arc::default(),
            hung: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Receiver {
            url,
            shared,
            cancel,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Every accepted request so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Requests seen, requests with a wrong or missing signature, 5xx answers, hangs.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let s = &self.shared;
        (
            s.requests.load(Ordering::SeqCst),
            s.bad_signatures.load(Ordering::SeqCst),
            s.failed.load(Ordering::SeqCst),
            s.hung.load(Ordering::SeqCst),
        )
    }

    /// Waits (up to `within`) until `done` holds for the accepted requests.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver got only {} events; counts {:?}: {:?}",
                hits.len(),
                self.counts(),
                hits.iter().map(|h| h.body.to_string()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let signed = headers
        .get("x-wasp-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| s.secret.verify(&body, sig));
    if !signed {
        s.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let session = json["session"].as_str().unwrap_or_default().to_string();
    let event = headers
        .get("x-wasp-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Accept => {}
        Mode::Flaky => {
            let roll: f64 = s.coin.lock().unwrap().r#gen();
            if roll < 0.5 {
                s.failed.fetch_add(1, Ordering::SeqCst);
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            if roll < 0.6 {
                s.hung.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
        }
        Mode::Refuse(status, sessions) => {
            if sessions.contains(&session) {
                return StatusCode::from_u16(status).unwrap();
            }
        }
    }
    s.hits.lock().unwrap().push(Hit {
        session,
        event,
        body: json,
    });
    StatusCode::OK
}
