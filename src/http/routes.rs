//! The routes: reads are open (loopback by default); actions and the pairing QR need the
//! bearer token. Every error answer is `{"error": "<one sentence>"}`, including the
//! framework's own (bad path, wrong method).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::auth::LiveAccess;
use super::json::{Clock, SessionDetail, SessionRow};
use super::state::{AppState, error, handle_error};
use super::wipe;
use super::{events, fleet, messages, pair, webhook};
use crate::logging::LogFeed;
use crate::net::handle::PoolHandle;
use crate::session::Command;

pub(super) fn router(pool: PoolHandle, access: LiveAccess) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", get(session))
        .route(
            "/sessions/{id}/messages",
            post(messages::send).get(messages::list),
        )
        .route("/sessions/{id}/messages/{msg_id}", get(messages::one))
        .route("/sessions/{id}/{command}", post(act))
        .route("/cluster", get(fleet::view))
        .route("/sessions/{id}/wipe", post(wipe::with_backup))
        .route(
            "/sessions/{id}/wipe-without-backup",
            post(wipe::without_backup),
        )
        .route("/webhook/dead", get(webhook::dead))
        .route("/webhook/dead/redeliver", post(webhook::redeliver))
        .route("/metrics", get(metrics))
        .route("/events", get(events::events))
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
        .with_state(AppState {
            pool,
            access,
            logs: LogFeed::global().clone(),
        })
}

/// Rewrites an error answer that is not JSON (axum's rejections are plain text, a wrong
/// method has no body) into the one error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() {
        match status {
            StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not take that method".to_string(),
            other => other
                .canonical_reason()
                .unwrap_or("request refused")
                .to_string(),
        }
    } else {
        text
    };
    error(status, message)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(app): State<AppState>) -> Response {
    if app.pool.is_ready() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pool is still starting: not every session has reported its state yet",
        )
    }
}

async fn sessions(State(app): State<AppState>) -> Response {
    if let Some(cluster) = app.pool.cluster().cloned() {
        return fleet::sessions(&app, cluster.as_ref()).await;
    }
    let clock = Clock::now();
    let rows: Vec<SessionRow> = app
        .pool
        .board
        .snapshot()
        .iter()
        .map(|s| SessionRow::new(s, &clock))
        .collect();
    Json(rows).into_response()
}

async fn session(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let with_qr = app.access.operator(&headers);
    match app.pool.board.get(&id) {
        Some(s) => Json(SessionDetail::new(&s, &Clock::now(), with_qr)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no session named {id}")),
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let text = app.pool.metrics.render(&app.pool.board.snapshot());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn act(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let admitted = app.access.operator(&headers);
    if !admitted {
        return error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs Authorization: Bearer <token>",
        );
    }
    if name == "move" {
        return fleet::move_session(&app, &id, &body).await;
    }
    // A destructive command (the wipe) is the console's alone: it asks for the session id.
    let Some(command) = name.parse::<Command>().ok().filter(|c| !c.is_destructive()) else {
        let offered: Vec<&str> = Command::ALL
            .iter()
            .filter(|c| !c.is_destructive())
            .map(|c| c.name())
            .collect();
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown action {name}: use {}", offered.join(", ")),
        );
    };
    if command == Command::Pair {
        return pair::answer(&app, &id, &body).await;
    }
    if let Err(e) = app.pool.act(&id, command).await {
        return handle_error(&id, e);
    }
    tracing::info!(session = %id, command = command.name(), "operator command over http");
    (
        StatusCode::ACCEPTED,
        Json(json!({ "session": id, "action": command.name(), "accepted": true })),
    )
        .into_response()
}
