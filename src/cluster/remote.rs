//! Operator commands across nodes: a command for a session owned elsewhere is published on
//! the owner's channel (`wasp:cmd:<node>`, pub/sub: delivered once to the one subscriber, or
//! to nobody, which the sender sees), the owner runs it on its own driver and pushes the answer
//! to `wasp:reply:<request id>`, which the sender waits for.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Core, lease, node};
use crate::net::gate::{FleetView, Pending, Remote};
use crate::net::handle::{HandleError, PoolHandle};
use crate::session::Command;
use crate::store::redis::keys;

/// How long the sender waits for the owner's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: String,
    session: String,
    command: Command,
    from: String,
}

/// The [`Remote`] the pool's handle uses when clustered.
pub struct Forwarder {
    core: Arc<Core>,
}

impl Forwarder {
    pub fn new(core: Arc<Core>) -> Self {
        Forwarder { core }
    }
}

impl Remote for Forwarder {
    fn node(&self) -> &str {
        &self.core.node
    }

    fn fleet(&self) -> Pending<Result<FleetView, HandleError>> {
        let core = self.core.clone();
        Box::pin(async move {
            let sessions = node::fleet_states(&core).await.map_err(|e| {
                HandleError::Remote(format!(
                    "cluster: cannot reach Redis to read the fleet: {e}"
                ))
            })?;
            Ok(FleetView {
                node: core.node.clone(),
                nodes: core.fleet().into_values().collect(),
                sessions,
            })
        })
    }

    fn move_to(&self, session: String, node: String) -> Pending<Result<(), HandleError>> {
        let core = self.core.clone();
        Box::pin(async move {
            if !core.sessions().contains(&session) {
                return Err(HandleError::UnknownSession(session));
            }
            if core.files.is_some() {
                return Err(HandleError::Remote(
                    "moving a session needs [cluster] credentials = \"redis\": with files it stays on the node that has them".to_string(),
                ));
            }
            if !core.fleet().contains_key(&node) {
                return Err(HandleError::Remote(format!("no live node named {node}")));
            }
            node::request_move(&core, &session, &node)
                .await
                .map_err(|e| HandleError::Remote(format!("cluster: cannot reach Redis: {e}")))?;
            info!(session = %session, to = %node, "session move requested");
            Ok(())
        })
    }

    fn is_local(&self, session: &str) -> bool {
        self.core.held().contains_key(session)
    }

    fn forward(&self, session: String, command: Command) -> Pending<Result<String, HandleError>> {
        let core = self.core.clone();
        Box::pin(async move { forward(&core, session, command).await })
    }
}

async fn forward(core: &Core, session: String, command: Command) -> Result<String, HandleError> {
    if !core.sessions().contains(&session) {
        return Err(HandleError::UnknownSession(session));
    }
    let remote = |m: String| HandleError::Remote(m);
    let lease: Option<String> = core
        .call(redis::cmd("GET").arg(keys::lease(&session)))
        .await
        .map_err(|e| {
            remote(format!(
                "cluster: cannot reach Redis to find the owner of {session}: {e}"
            ))
        })?;
    let Some(owner) = lease
        .as_deref()
        .and_then(lease::owner_of)
        .map(str::to_string)
    else {
        return Err(remote(format!(
            "session {session} is not running on any node right now"
        )));
    };
    let request = Request {
        id: format!("{}-{:016x}", core.node, rand::random::<u64>()),
        session: session.clone(),
        command,
        from: core.node.clone(),
    };
    let json = serde_json::to_string(&request).map_err(|e| remote(e.to_string()))?;
    // A dedicated connection: BLPOP blocks it while waiting.
    let mut con = core
        .client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| remote(format!("cluster: cannot reach Redis: {e}")))?;
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(keys::commands(&owner))
        .arg(json)
        .query_async(&mut con)
        .await
        .map_err(|e| remote(format!("cluster: cannot reach Redis: {e}")))?;
    if receivers == 0 {
        return Err(remote(format!(
            "node {owner}, which runs {session}, is not listening"
        )));
    }
    let answer: Option<(String, String)> = tokio::time::timeout(
        ANSWER_WITHIN + Duration::from_secs(1),
        redis::cmd("BLPOP")
            .arg(keys::reply(&request.id))
            .arg(ANSWER_WITHIN.as_secs())
            .query_async(&mut con),
    )
    .await
    .map_err(|_| {
        remote(format!(
            "node {owner} did not answer within {ANSWER_WITHIN:?}"
        ))
    })?
    .map_err(|e| remote(format!("cluster: cannot reach Redis: {e}")))?;
    match answer {
        Some((_, text)) if text == "ok" => Ok(owner),
        Some((_, text)) => Err(remote(format!("node {owner}: {text}"))),
        None => Err(remote(format!(
            "node {owner} did not answer within {ANSWER_WITHIN:?}"
        ))),
    }
}

/// Subscribes to this node's command channel (again after every Redis loss) and runs each
/// command on the local driver, answering on the request's reply list.
pub(super) async fn listen(core: Arc<Core>, pool: PoolHandle, cancel: CancellationToken) {
    let channel = keys::commands(&core.node);
    while !cancel.is_cancelled() {
        let subscribed = async {
            let mut pubsub = core.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(lease::round(core.ttl), subscribed).await {
            Ok(Ok(p)) => p,
            _ => {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(lease::round(core.ttl)) => continue,
                }
            }
        };
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return,
                msg = messages.next() => msg,
            };
            let Some(msg) = msg else {
                break;
            };
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let Ok(request) = serde_json::from_str::<Request>(&payload) else {
                warn!("cluster: ignored a malformed command message");
                continue;
            };
            info!(session = %request.session, command = request.command.name(), from = %request.from, "command from another node");
            let answer = match pool.act_here(&request.session, request.command).await {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            let key = keys::reply(&request.id);
            let _: Result<(), _> = core.call(redis::cmd("RPUSH").arg(&key).arg(answer)).await;
            let _: Result<(), _> = core.call(redis::cmd("PEXPIRE").arg(&key).arg(30_000)).await;
        }
    }
}
