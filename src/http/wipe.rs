//! `POST /sessions/{id}/wipe?confirm={id}` (and `wipe-without-backup`): the credential wipe for a
//! console attached over HTTP. Like the console's own dialog it needs the session id typed
//! again, here as `confirm`; and the token, like every action.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::{AppState, error, handle_error};
use crate::session::Command;

#[derive(serde::Deserialize)]
pub(super) struct Confirm {
    confirm: Option<String>,
}

pub(super) async fn with_backup(
    app: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    confirm: Query<Confirm>,
) -> Response {
    wipe(app, headers, id, confirm, true).await
}

pub(super) async fn without_backup(
    app: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    confirm: Query<Confirm>,
) -> Response {
    wipe(app, headers, id, confirm, false).await
}

async fn wipe(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(confirm): Query<Confirm>,
    backup: bool,
) -> Response {
    if !app.access.operator(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs Authorization: Bearer <token>",
        );
    }
    if confirm.confirm.as_deref() != Some(id.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a wipe of {id} needs the session id again: ?confirm={id}"),
        );
    }
    let command = Command::WipeCredentials { backup };
    match app.pool.act(&id, command).await {
        Err(e) => handle_error(&id, e),
        Ok(()) => {
            tracing::warn!(session = %id, command = command.name(), "credentials wiped over http");
            (
                StatusCode::ACCEPTED,
                Json(json!({ "session": id, "action": command.name(), "accepted": true })),
            )
                .into_response()
        }
    }
}
