//! The attached console's node list: every second `GET /cluster` on the attached pool; when it
//! is clustered, its live nodes with their heartbeats go to the header (as the local console
//! shows them). A pool running alone answers 404 and the header keeps no node line.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use crate::net::gate::{FleetView, NodeBeat};
use crate::ui::PoolUpdate;

/// How often the node list is read.
const EVERY: Duration = Duration::from_secs(1);

pub(super) async fn follow_nodes(
    client: Arc<Client>,
    tx: mpsc::Sender<PoolUpdate>,
    cancel: CancellationToken,
) {
    loop {
        if let Ok(answer) = client.get_json("/cluster").await
            && let Some(fleet) = fleet_of(&answer)
        {
            let lines = crate::console::node_lines(&fleet, SystemTime::now());
            if tx.send(PoolUpdate::Nodes(lines)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// `{"node": .., "nodes": [..]}` as a fleet view; `None` for any other answer (not clustered).
fn fleet_of(answer: &serde_json::Value) -> Option<FleetView> {
    let node = answer.get("node")?.as_str()?.to_string();
    let nodes: Vec<NodeBeat> = serde_json::from_value(answer.get("nodes")?.clone()).ok()?;
    Some(FleetView {
        node,
        nodes,
        sessions: Vec::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_cluster_answer_gives_the_nodes_and_a_refusal_gives_none() {
        let answer = serde_json::json!({
            "node": "node-a",
            "nodes": [
                {"node": "node-a", "sessions": 3, "heartbeat_ms": 1000},
                {"node": "node-b", "sessions": 2, "heartbeat_ms": 900}
            ],
            "states": {"online": 5}
        });
        let fleet = fleet_of(&answer).unwrap();
        assert_eq!(fleet.node, "node-a");
        assert_eq!(fleet.nodes.len(), 2);
        assert_eq!(fleet.nodes[1].sessions, 2);
        let alone =
            serde_json::json!({"error": "this wasp is not clustered ([cluster] is not set)"});
        assert!(fleet_of(&alone).is_none());
    }
}
