//! The webhook's dead letters: `GET /webhook/dead?limit=N` lists the newest and counts them
//! all, `POST /webhook/dead/redeliver` (`{"seq": [..]}`, or no body for all of them) puts
//! them back in the queue. Both need the operator's token: the bodies are people's messages.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::state::{AppState, error};
use crate::store::keys::KeyStore;

/// The most dead letters one listing returns.
const LIST_MAX: u32 = 1000;

#[derive(Deserialize)]
pub(super) struct DeadQuery {
    limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    seq: Vec<i64>,
}

/// The key database, or the answer when the request may not or cannot see it.
fn guarded(app: &AppState, headers: &HeaderMap) -> Result<std::sync::Arc<KeyStore>, Box<Response>> {
    if !app.access.operator(headers) {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs Authorization: Bearer <token>",
        )));
    }
    app.pool.keys().cloned().ok_or_else(|| {
        Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this pool keeps no webhook queue here",
        ))
    })
}

fn failed(e: &crate::store::keys::KeysError) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) async fn dead(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<DeadQuery>,
) -> Response {
    let keys = match guarded(&app, &headers) {
        Ok(keys) => keys,
        Err(answer) => return *answer,
    };
    let limit = match query.limit.as_deref().map(str::parse::<u32>) {
        None => 100,
        Some(Ok(n)) if (1..=LIST_MAX).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit must be a whole number from 1 to {LIST_MAX}"),
            );
        }
    };
    match tokio::task::spawn_blocking(move || keys.webhook_dead(limit)).await {
        Ok(Ok((list, count))) => {
            let dead: Vec<serde_json::Value> = list
                .into_iter()
                .map(|d| {
                    let body = serde_json::from_str::<serde_json::Value>(&d.body)
                        .unwrap_or(serde_json::Value::String(d.body));
                    json!({
                        "seq": d.seq,
                        "session": d.session,
                        "event": d.event,
                        "body": body,
                        "attempts": d.attempts,
                        "queued_at": d.queued_at,
                        "dead_at": d.dead_at,
                        "reason": d.reason,
                    })
                })
                .collect();
            Json(json!({ "count": count, "dead": dead })).into_response()
        }
        Ok(Err(e)) => failed(&e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the pool is shutting down"),
    }
}

pub(super) async fn redeliver(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let keys = match guarded(&app, &headers) {
        Ok(keys) => keys,
        Err(answer) => return *answer,
    };
    let seqs = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<RedeliverBody>(&body) {
            Ok(b) => Some(b.seq),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be empty or JSON {{\"seq\": [numbers]}}: {e}"),
                );
            }
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    match tokio::task::spawn_blocking(move || keys.webhook_redeliver(seqs.as_deref(), now)).await {
        Ok(Ok(n)) => {
            tracing::info!(requeued = n, "webhook dead letters requeued over http");
            Json(json!({ "requeued": n })).into_response()
        }
        Ok(Err(e)) => failed(&e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the pool is shutting down"),
    }
}
