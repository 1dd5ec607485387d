//! A fleet shared through Redis (`[cluster]`): per-session leases with fencing tokens, node
//! heartbeats and placement, shared per-session state, and operator commands that travel to
//! the node owning a session. The pool only sees two seams (`net::gate`): the lease gate its
//! drivers ask before dialling, and `Claim`/`Release` requests that start and stop drivers.

pub mod lease;
mod node;
mod remote;
pub mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::{ClusterConfig, Config};
use crate::net::gate::{ClusterSeam, DialGate};
use crate::store::Fences;
use lease::Held;

pub use crate::net::gate::{NodeBeat, SharedState};

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster: cannot reach Redis at {url}: {detail}")]
    Unreachable { url: String, detail: String },
}

/// What every part of the cluster on this node shares.
pub struct Core {
    node: String,
    ttl: Duration,
    client: redis::Client,
    redis: ConnectionManager,
    fences: Fences,
    held: Mutex<HashMap<String, Held>>,
    /// Sessions whose driver is being stopped after their lease was lost.
    closing: Mutex<HashSet<String>>,
    /// Configured session ids, sorted (placement walks them).
    sessions: Mutex<Vec<String>>,
    connects_per_second: u32,
    /// `credentials = "file"`: this node's files, which pin each paired session to its node.
    files: Option<crate::store::FileStore>,
    /// The fleet as last read from Redis: node id -> heartbeat.
    fleet: Mutex<BTreeMap<String, NodeBeat>>,
}

/// A started cluster member: the seams for the pool and the core for the loop.
#[derive(Clone)]
pub struct Cluster {
    core: Arc<Core>,
}

fn url_for_logs(url: &str) -> String {
    // A password in the URL never reaches a message.
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}<redacted>@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Cluster {
    /// Connects to Redis and checks it answers; one sentence naming the URL when it does not.
    pub async fn connect(
        cluster: &ClusterConfig,
        config: &Config,
        fences: Fences,
    ) -> Result<Cluster, ClusterError> {
        let fail = |detail: String| ClusterError::Unreachable {
            url: url_for_logs(&cluster.redis_url),
            detail,
        };
        let client =
            redis::Client::open(cluster.redis_url.as_str()).map_err(|e| fail(e.to_string()))?;
        let op = lease::round(cluster.lease_ttl);
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(op)
            .set_response_timeout(op)
            .set_number_of_retries(1);
        let mut redis = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(settings),
        )
        .await
        .map_err(|_| fail("no answer within 5 s".to_string()))?
        .map_err(|e| fail(e.to_string()))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut redis)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut sessions: Vec<String> = config.sessions.iter().map(|s| s.id.clone()).collect();
        sessions.sort();
        Ok(Cluster {
            core: Arc::new(Core {
                node: cluster.node_id.clone(),
                ttl: cluster.lease_ttl,
                client,
                redis,
                fences,
                held: Mutex::new(HashMap::new()),
                closing: Mutex::new(HashSet::new()),
                sessions: Mutex::new(sessions),
                connects_per_second: config.limits.connects_per_second,
                files: (cluster.credentials == crate::config::CredentialStore::File)
                    .then(|| crate::store::FileStore::new(&config.storage.data_dir)),
                fleet: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// The seams the pool is started with.
    pub fn seam(&self) -> ClusterSeam {
        ClusterSeam {
            gate: self.core.clone(),
            remote: Arc::new(remote::Forwarder::new(self.core.clone())),
            mirror: None,
        }
    }

    /// Runs the member until `cancel`: heartbeats, leases, placement, shared state and the
    /// command listener. Releases every lease it holds on the way out.
    pub fn spawn(
        &self,
        pool: crate::net::handle::PoolHandle,
        cancel: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let core = self.core.clone();
        tokio::spawn(remote::listen(core.clone(), pool.clone(), cancel.clone()));
        tokio::spawn(node::run(core, pool, cancel))
    }

    /// A reloaded config: sessions added are placed from the next round; removed ones are
    /// stopped by the pool and their leases expire (they are no longer renewed).
    pub fn set_sessions(&self, config: &Config) {
        let mut ids: Vec<String> = config.sessions.iter().map(|s| s.id.clone()).collect();
        ids.sort();
        *self.core.sessions.lock().unwrap_or_else(|p| p.into_inner()) = ids;
    }

    /// A client on the same Redis (for the credential store).
    pub fn redis_client(&self) -> redis::Client {
        self.core.client.clone()
    }

    /// The node list with heartbeats, as last read.
    pub fn fleet(&self) -> BTreeMap<String, NodeBeat> {
        self.core.fleet()
    }
}

impl Core {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closing(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.closing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> Vec<String> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `credentials = "file"`: true when this node's data dir holds the session's credentials.
    fn has_files(&self, session: &str) -> bool {
        self.files
            .as_ref()
            .and_then(|f| f.credentials_path(session).ok())
            .is_some_and(|p| p.exists())
    }

    fn fleet(&self) -> BTreeMap<String, NodeBeat> {
        self.fleet.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A Redis call bounded by one round, so a lost Redis never stalls the loop.
    async fn call<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut con = self.redis.clone();
        match tokio::time::timeout(lease::round(self.ttl), cmd.query_async(&mut con)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer from Redis".to_string()),
        }
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, String> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut con = self.redis.clone();
        let ran = invocation.invoke_async(&mut con);
        match tokio::time::timeout(lease::round(self.ttl), ran).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer from Redis".to_string()),
        }
    }
}

impl DialGate for Core {
    fn may_dial(&self, session: &str) -> bool {
        self.held()
            .get(session)
            .is_some_and(|h| !h.leaving && Instant::now() < h.valid_until)
    }
}

#[cfg(test)]
mod tests {
    use super::url_for_logs;

    #[test]
    fn a_password_in_the_redis_url_never_reaches_a_message() {
        assert_eq!(
            url_for_logs("redis://:hunter2@10.0.0.5:6379/"),
            "redis://<redacted>@10.0.0.5:6379/"
        );
        assert_eq!(
            url_for_logs("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
    }
}
