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

/// Operator commands for sessions this node does not run.
pub trait Remote: Send + Sync {
    /// True when this node runs the session (commands go to the local driver).
    fn is_local(&self, session: &str) -> bool;
    /// Sends the command to the owner and waits for its answer; `Ok(node)` names the owner.
    fn forward(&self, session: String, command: Command) -> Pending<Result<String, HandleError>>;
}

/// Both seams, as the pool takes them when clustered.
#[derive(Clone)]
pub struct ClusterSeam {
    pub gate: Arc<dyn DialGate>,
    pub remote: Arc<dyn Remote>,
}
