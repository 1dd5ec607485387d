//! The message API (SPEC.md "Messages"): `POST /sessions/{id}/messages` queues a text in the
//! session's outbox (token; 202 with its id and status), `GET /sessions/{id}/messages/{msg_id}`
//! shows one sent message, `GET /sessions/{id}/messages?direction=in|out&limit=N` the newest
//! kept ones. Bad input is refused with one sentence and changes nothing.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::state::{AppState, error};
use crate::net::messages::SendError;
use crate::store::outbox::Direction;

/// The most messages one listing returns.
const LIST_MAX: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    to: String,
    text: String,
    key: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    direction: Option<String>,
    limit: Option<String>,
}

/// The answer for a refused send or read.
fn refused(id: &str, e: &SendError) -> Response {
    let status = match e {
        SendError::UnknownSession { .. } => StatusCode::NOT_FOUND,
        SendError::NotPaired { .. } => StatusCode::CONFLICT,
        SendError::BadRecipient { .. }
        | SendError::EmptyText
        | SendError::TooLong { .. }
        | SendError::BadKey => StatusCode::BAD_REQUEST,
        SendError::Stopped { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match e {
        SendError::EmptyText | SendError::TooLong { .. } | SendError::BadKey => {
            format!("session {id}: {e}")
        }
        _ => e.to_string(),
    };
    error(status, message)
}

pub(super) async fn send(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !app.access.operator(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs Authorization: Bearer <token>",
        );
    }
    let body: SendBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON {{\"to\", \"text\", \"key\"?}}: {e}"),
            );
        }
    };
    match app.pool.send(&id, &body.to, &body.text, body.key).await {
        Ok(entry) => (
            StatusCode::ACCEPTED,
            Json(json!({ "id": entry.id, "status": entry.status })),
        )
            .into_response(),
        Err(e) => refused(&id, &e),
    }
}

pub(super) async fn one(
    State(app): State<AppState>,
    Path((id, msg_id)): Path<(String, String)>,
) -> Response {
    match app.pool.message(&id, &msg_id).await {
        Ok(Some(entry)) => Json(entry).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("session {id} has no message {msg_id}"),
        ),
        Err(e) => refused(&id, &e),
    }
}

pub(super) async fn list(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let direction = match query.direction.as_deref() {
        None | Some("out") => Direction::Out,
        Some("in") => Direction::In,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("direction must be in or out, found {other:?}"),
            );
        }
    };
    let limit = match query.limit.as_deref().map(str::parse::<u32>) {
        None => 50,
        Some(Ok(n)) if (1..=LIST_MAX).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit must be a whole number from 1 to {LIST_MAX}"),
            );
        }
    };
    match app.pool.messages(&id, direction, limit).await {
        Ok(kept) => Json(json!({ "messages": kept })).into_response(),
        Err(e) => refused(&id, &e),
    }
}
