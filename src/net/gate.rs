//! The seams a cluster plugs into the pool: a "may I dial?" gate every driver asks before it
//! opens a socket (the lease), and a way to send an operator command to the node that owns a
//! session. Without `[cluster]` the pool has neither and nothing changes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::net::handle::HandleError;
use crate::session::Command;

/// A boxed future, as the object-safe traits here return.
pub type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Asked by a driver before every dial: true only while this node holds a valid lease.
pub trait DialGate: Send + Sync {
    fn may_dial(&self, session: &str) -> bool;
}

/// A node's heartbeat, as every node reads it (JSON in Redis and in `GET /cluster`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeBeat {
    pub node: String,
    /// Sessions it holds.
    pub sessions: usize,
    /// When it last wrote its heartbeat (ms since the Unix epoch).
    pub heartbeat_ms: u64,
}

/// One session's state as its owner shares it with the fleet (JSON in Redis, with a TTL).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SharedState {
    pub id: String,
    pub owner: String,
    pub state: String,
    pub reason: String,
    pub phone: Option<String>,
    pub reconnect_attempts: u32,
    pub conflicts_1h: u32,
    pub disconnects_1h: u32,
    /// ms since the Unix epoch, when online.
    pub connected_at_ms: Option<u64>,
    /// The last frame received from the server (ms since the Unix epoch).
    pub last_activity_ms: Option<u64>,
    pub written_ms: u64,
}

/// The whole fleet as one node sees it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FleetView {
    /// This node.
    pub node: String,
    /// Live nodes with their heartbeats.
    pub nodes: Vec<NodeBeat>,
    /// Every configured session's shared state (`None`: no node runs it now).
    pub sessions: Vec<(String, Option<SharedState>)>,
}

/// Operator commands for sessions this node does not run, and the fleet around it.
pub trait Remote: Send + Sync {
    /// This node's id.
    fn node(&self) -> &str;
    /// True when this node runs the session (commands go to the local driver).
    fn is_local(&self, session: &str) -> bool;
    /// Sends the command to the owner and waits for its answer; `Ok(node)` names the owner.
    fn forward(&self, session: String, command: Command) -> Pending<Result<String, HandleError>>;
    /// Reads the fleet from Redis.
    fn fleet(&self) -> Pending<Result<FleetView, HandleError>>;
    /// Asks the session's owner to let it go so that `node` (a live node) takes it.
    fn move_to(&self, session: String, node: String) -> Pending<Result<(), HandleError>>;
}

/// Both seams, as the pool takes them when clustered.
#[derive(Clone)]
pub struct ClusterSeam {
    pub gate: Arc<dyn DialGate>,
    pub remote: Arc<dyn Remote>,
    /// `credentials = "redis"`: the key store's write-through to Redis.
    pub mirror: Option<Arc<crate::store::mirror::Mirror>>,
}
