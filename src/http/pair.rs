//! `POST /sessions/{id}/pair` (token only): with no body, starts pairing and answers the QR
//! text; with `{"phone": "+15551234567"}`, answers a pairing code the phone types instead
//! ("Link with phone number"), with its lifetime. The code is in no other answer and no log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::json::Clock;
use super::state::{AppState, error, handle_error};
use crate::net::handle::QR_WAIT;
use crate::session::Command;

/// The body of a pair request.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PairRequest {
    phone: String,
}

/// Reads an optional pair body (empty means pairing by QR) and checks the phone number
/// before anything is started; a refusal is the 400's sentence.
fn parse(id: &str, body: &[u8]) -> Result<Option<PairRequest>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: PairRequest = serde_json::from_slice(body).map_err(|e| {
        format!("the pair body must be {{\"phone\": \"+15551234567\"}} or empty: {e}")
    })?;
    crate::wa::pair_code::phone_digits(&request.phone).map_err(|e| format!("session {id}: {e}"))?;
    Ok(Some(request))
}

/// Starts pairing; answers the QR, or the code for the requested phone.
pub(super) async fn answer(app: &AppState, id: &str, body: &[u8]) -> Response {
    let request = match parse(id, body) {
        Ok(request) => request,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let by_code = request.is_some();
    tracing::info!(session = %id, command = "pair", by_code, "operator command over http");
    let Some(request) = request else {
        if let Err(e) = app.pool.act(id, Command::Pair).await {
            return handle_error(id, e);
        }
        return match app.pool.wait_for_qr(id, QR_WAIT).await {
            Ok(qr) => Json(json!({
                "session": id,
                "qr": qr.text.as_str(),
                "ref": format!("{}/{}", qr.index, qr.count),
            }))
            .into_response(),
            Err(e) => handle_error(id, e),
        };
    };
    match app.pool.pair_code(id, &request.phone).await {
        Ok(shown) => {
            let left = shown
                .expires_at
                .saturating_duration_since(std::time::Instant::now());
            Json(json!({
                "session": id,
                "code": shown.code.shown(),
                "expires_in_s": left.as_secs(),
                "expires_at": Clock::now().wall(shown.expires_at),
            }))
            .into_response()
        }
        Err(e) => handle_error(id, e),
    }
}
