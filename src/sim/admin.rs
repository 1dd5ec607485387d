//! The simulator's admin HTTP API: scan a QR, inject a fault, read the statistics.
//! JSON in and out; bad input gets a 400 with a one-line reason.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{Fault, Handle, SimError};

fn bad(status: StatusCode, why: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": why.into() }))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    qr: String,
    phone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    device: String,
    kind: String,
    code: Option<u16>,
    expires_s: Option<u64>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        let line = e.to_string().lines().next().unwrap_or_default().to_string();
        Box::new(bad(StatusCode::BAD_REQUEST, format!("bad JSON: {line}")))
    })
}

async fn scan(State(sim): State<Handle>, body: Bytes) -> Response {
    let req: ScanRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match sim.scan(&req.qr, req.phone.as_deref()).await {
        Ok(jid) => axum::Json(json!({ "device": jid })).into_response(),
        Err(e @ (SimError::BadQr(_) | SimError::NoSuchPairing)) => {
            bad(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => bad(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn fault(State(sim): State<Handle>, body: Bytes) -> Response {
    let req: FaultRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let parsed = match Fault::parse(&req.kind, req.code, req.expires_s) {
        Ok(f) => f,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match sim.fault(&req.device, parsed.clone()).await {
        Ok(hit) => axum::Json(json!({ "kind": parsed.name(), "connections": hit })).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn stats(State(sim): State<Handle>) -> Response {
    axum::Json(sim.stats()).into_response()
}

async fn not_found() -> Response {
    bad(
        StatusCode::NOT_FOUND,
        "no such endpoint: use /admin/scan, /admin/fault or /admin/stats",
    )
}

/// Serves the admin API; returns its base URL.
pub(super) async fn serve(addr: SocketAddr, sim: Handle) -> Result<String, SimError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let cancel = sim.cancel.clone();
    let app = Router::new()
        .route("/admin/scan", post(scan))
        .route("/admin/fault", post(fault))
        .route("/admin/stats", get(stats))
        .fallback(not_found)
        .with_state(sim);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    });
    Ok(format!("http://{local}"))
}
