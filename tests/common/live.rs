//! A pool in a runtime of its own, as a process would hold it: started on a config (acks on
//! or off), stopped gracefully, or killed by dropping its runtime without a goodbye (what
//! SIGKILL leaves: sockets closed by the OS, nothing flushed by the pool).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wasp::config::{Config, SessionConfig};
use wasp::net::board::StatusBoard;
use wasp::net::metrics::Metrics;
use wasp::net::pool::{self, Running};
use wasp::runner;
use wasp::session::policy::Policy;
use wasp::sim::Handle;
use wasp::store::FileStore;

/// Keepalive every ~200 ms, quick backoff: many frames and timers in a short run.
pub fn short_policy() -> Policy {
    let ms = Duration::from_millis;
    Policy {
        keepalive_interval_min: ms(180),
        keepalive_interval_max: ms(220),
        // A missed deadline replaces the link at once: keep it well above a loaded machine's
        // scheduling delays.
        keepalive_deadline: ms(1500),
        dead_after: ms(3000),
        connect_timeout: Duration::from_secs(20),
        query_timeout: Duration::from_secs(10),
        backoff_base: ms(100),
        backoff_cap: ms(400),
        ..Policy::default()
    }
}

/// `n` autostarted sessions `s000`.. against the simulator, data in `dir`.
pub fn config(sim: &Handle, dir: &std::path::Path, n: usize, policy: Policy) -> Config {
    let mut config = Config::default();
    config.server.url = sim.ws_url.clone();
    config.server.trust_root = Some(sim.trust_root.0);
    config.storage.data_dir = dir.to_path_buf();
    config.policy = policy.clone();
    config.limits.connects_per_second = 50;
    config.limits.connect_burst = 50;
    config.sessions = (0..n)
        .map(|i| {
            let mut s = SessionConfig::new(format!("s{i:03}"), policy.clone());
            s.autostart = true;
            s
        })
        .collect();
    config
}

/// A running pool and the runtime that drives it.
pub struct LivePool {
    runtime: tokio::runtime::Runtime,
    pub running: Running,
}

impl LivePool {
    /// Starts the pool on `config`; `send_acks` false is the client's test-only switch.
    pub fn start(config: &Config, send_acks: bool) -> LivePool {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut endpoint = runner::endpoint(config);
        endpoint.send_acks = send_acks;
        let store = Arc::new(FileStore::new(&config.storage.data_dir));
        let running = {
            let _inside = runtime.enter();
            pool::start(config, endpoint, store, CancellationToken::new())
        };
        LivePool { runtime, running }
    }

    pub fn board(&self) -> Arc<StatusBoard> {
        self.running.handle.board.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.running.handle.metrics
    }

    /// Starts the virtual phone that scans every QR this pool shows; cancel the token to end it.
    pub fn phone(&self, sim: &Handle) -> CancellationToken {
        super::scanning_phone(self.board(), sim)
    }

    /// What SIGTERM does: every session closed, the pool task ended.
    pub async fn stop(self) {
        let LivePool { runtime, running } = self;
        running.handle.shutdown().await;
        tokio::time::timeout(Duration::from_secs(10), running.task)
            .await
            .expect("the pool stops")
            .expect("the pool task ends cleanly");
        tokio::task::spawn_blocking(move || drop(runtime))
            .await
            .unwrap();
    }

    /// What SIGKILL does: the runtime is dropped mid-flight, no shutdown step runs.
    pub async fn kill(self) {
        let LivePool { runtime, running } = self;
        tokio::task::spawn_blocking(move || runtime.shutdown_background())
            .await
            .unwrap();
        drop(running);
    }
}
