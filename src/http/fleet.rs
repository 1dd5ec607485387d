//! The fleet over HTTP when clustered: `GET /sessions` gains an `owner` on every row and rows
//! for sessions other nodes run (from their shared state), `GET /cluster` lists the nodes with
//! heartbeats and fleet-wide counts, and `POST /sessions/{id}/move {"node": ..}` moves one.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::json::{Clock, SessionRow};
use super::state::{AppState, error};
use crate::net::gate::Remote;
use crate::net::handle::HandleError;

fn remote_error(e: HandleError) -> Response {
    match e {
        HandleError::UnknownSession(id) => {
            error(StatusCode::NOT_FOUND, format!("no session named {id}"))
        }
        other => error(StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

/// Every session of the fleet: this node's rows with `owner`, then the others' shared state.
pub(super) async fn sessions(app: &AppState, cluster: &dyn Remote) -> Response {
    let clock = Clock::now();
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    for status in app.pool.board.snapshot() {
        let mut row = serde_json::to_value(SessionRow::new(&status, &clock)).unwrap_or(Value::Null);
        let owner = if cluster.is_local(&status.id) {
            Some(cluster.node())
        } else {
            None
        };
        row["owner"] = json!(owner);
        rows.insert(status.id.clone(), row);
    }
    // Redis unreachable: this node's rows are still the truth about this node.
    if let Ok(fleet) = cluster.fleet().await {
        for (id, shared) in fleet.sessions {
            if rows.get(&id).is_some_and(|r| !r["owner"].is_null()) {
                continue;
            }
            let row = match shared {
                Some(s) if s.owner != cluster.node() => json!({
                    "id": s.id, "label": s.id, "phone": s.phone, "state": s.state,
                    "reason": s.reason, "attempt": s.reconnect_attempts,
                    "conflicts_1h": s.conflicts_1h, "owner": s.owner,
                    "connected_at_ms": s.connected_at_ms, "last_activity_ms": s.last_activity_ms,
                }),
                _ if rows.contains_key(&id) => continue,
                _ => json!({ "id": id, "label": id, "state": "unowned", "owner": null }),
            };
            rows.insert(id, row);
        }
    }
    Json(rows.into_values().collect::<Vec<_>>()).into_response()
}

/// `GET /cluster`: this node, the live nodes with heartbeats, and counts over the fleet.
pub(super) async fn view(State(app): State<AppState>) -> Response {
    let Some(cluster) = app.pool.cluster() else {
        return error(
            StatusCode::NOT_FOUND,
            "this wasp is not clustered ([cluster] is not set)",
        );
    };
    match cluster.fleet().await {
        Ok(fleet) => {
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for (_, shared) in &fleet.sessions {
                let state = shared.as_ref().map_or("unowned", |s| s.state.as_str());
                *states.entry(state.to_string()).or_default() += 1;
            }
            Json(json!({ "node": fleet.node, "nodes": fleet.nodes, "states": states }))
                .into_response()
        }
        Err(e) => remote_error(e),
    }
}

/// `POST /sessions/{id}/move` with `{"node": "<node id>"}`.
pub(super) async fn move_session(app: &AppState, id: &str, body: &[u8]) -> Response {
    let Some(cluster) = app.pool.cluster() else {
        return error(
            StatusCode::NOT_FOUND,
            "moving needs [cluster]: this wasp runs alone",
        );
    };
    let node = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["node"].as_str().map(str::to_string));
    let Some(node) = node else {
        return error(
            StatusCode::BAD_REQUEST,
            "move needs a JSON body {\"node\": \"<node id>\"}",
        );
    };
    match cluster.move_to(id.to_string(), node.clone()).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "session": id, "action": "move", "node": node, "accepted": true })),
        )
            .into_response(),
        Err(e) => remote_error(e),
    }
}
