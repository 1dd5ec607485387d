//! What every handler shares: the pool handle, the bearer token, the log feed, and the JSON
//! error answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::LiveAccess;
use crate::logging::LogFeed;
use crate::net::handle::PoolHandle;

#[derive(Clone)]
pub(super) struct AppState {
    pub pool: PoolHandle,
    /// Who may act and see the QR (replaceable while serving).
    pub access: LiveAccess,
    /// Log lines for `GET /events`.
    pub logs: LogFeed,
}

/// A JSON error answer: `{"error": "<one sentence>"}`.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The answer for a request the pool handle refused.
pub(super) fn handle_error(id: &str, e: crate::net::handle::HandleError) -> Response {
    use crate::net::handle::HandleError;
    match e {
        HandleError::UnknownSession(_) => {
            error(StatusCode::NOT_FOUND, format!("no session named {id}"))
        }
        HandleError::Closed => error(StatusCode::SERVICE_UNAVAILABLE, "the pool is shutting down"),
        HandleError::Remote(why) => error(StatusCode::BAD_GATEWAY, why),
        HandleError::Refused(why) => error(StatusCode::CONFLICT, why),
        HandleError::TimedOut(why) => error(StatusCode::GATEWAY_TIMEOUT, why),
    }
}
