//! A real fleet for the cluster tests: a `redis-server` child on a free loopback port, `wasp
//! headless` children of the test binary as nodes (JSON logs captured), the simulator in
//! process, and helpers that read each node over HTTP and wait on conditions with deadlines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasp::sim::{Handle, Server, SimConfig};

/// The lease TTL every cluster test runs with.
pub const TTL: &str = "2s";

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A redis-server child with an append-only file (so a restart keeps the credentials).
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again, on the same port and data) and waits until it answers.
    pub fn restart(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server could not start (is it installed?): {e}"));
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut con).is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server cleanly (it writes its append-only file) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{name} {pid} failed");
}

/// The simulator, as strict as WhatsApp.
pub async fn simulator() -> Handle {
    Server::start(SimConfig::default()).await.unwrap()
}

/// One `wasp headless` node.
pub struct Node {
    pub name: String,
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub http: String,
    pub token: String,
}

/// Writes a node's config: fast policy, a generous rate limit, the cluster with `TTL` and
/// credentials in Redis, `n` sessions that start by themselves.
pub fn write_config(root: &Path, sim: &Handle, redis_url: &str, node: &str, n: usize) -> PathBuf {
    write_config_with(root, sim, redis_url, node, n, "redis")
}

/// [`write_config`] with credentials in `"redis"` or `"file"`.
pub fn write_config_with(
    root: &Path,
    sim: &Handle,
    redis_url: &str,
    node: &str,
    n: usize,
    credentials: &str,
) -> PathBuf {
    write_config_extra(root, sim, redis_url, node, n, credentials, "")
}

/// [`write_config_with`] plus `extra` sections (TOML) before the sessions.
pub fn write_config_extra(
    root: &Path,
    sim: &Handle,
    redis_url: &str,
    node: &str,
    n: usize,
    credentials: &str,
    extra: &str,
) -> PathBuf {
    let data = root.join(node);
    std::fs::create_dir_all(&data).unwrap();
    let mut text = format!(
        "[server]\nurl = \"{}\"\ntrust_root = \"{}\"\n\n[storage]\ndata_dir = \"{}\"\n\n\
         [policy]\nbackoff_base = \"100ms\"\nbackoff_cap = \"400ms\"\n\n\
         [limits]\nconnects_per_second = 50\nconnect_burst = 50\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n\
         [cluster]\nredis_url = \"{redis_url}\"\nnode_id = \"{node}\"\nlease_ttl = \"{TTL}\"\ncredentials = \"{credentials}\"\n",
        sim.ws_url,
        sim.trust_root_base64(),
        data.display()
    );
    text.push_str(extra);
    for i in 0..n {
        text.push_str(&format!(
            "\n[[session]]\nid = \"s{i:02}\"\nautostart = true\n"
        ));
    }
    let path = root.join(format!("{node}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

impl Node {
    pub async fn spawn(root: &Path, sim: &Handle, redis_url: &str, name: &str, n: usize) -> Node {
        Node::spawn_with(root, sim, redis_url, name, n, "redis").await
    }

    /// A node whose credentials live in `"redis"` or `"file"`.
    pub async fn spawn_with(
        root: &Path,
        sim: &Handle,
        redis_url: &str,
        name: &str,
        n: usize,
        credentials: &str,
    ) -> Node {
        let config = write_config_with(root, sim, redis_url, name, n, credentials);
        Node::spawn_config(&config, root, name).await
    }

    /// A node on a config written before (see [`write_config_extra`]).
    pub async fn spawn_config(config: &Path, root: &Path, name: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasp"))
            .args(["headless", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let http = wait_until(
            &format!("{name} serves HTTP"),
            Duration::from_secs(30),
            || {
                let found = lines.lock().unwrap().iter().find_map(|l| {
                    let v: Value = serde_json::from_str(l).ok()?;
                    (v["message"] == "http endpoint ready")
                        .then(|| v["fields"]["addr"].as_str().map(str::to_string))?
                });
                async move { found }
            },
        )
        .await;
        let token = std::fs::read_to_string(root.join(name).join("http-token"))
            .unwrap()
            .trim()
            .to_string();
        Node {
            name: name.to_string(),
            child,
            lines,
            reader: Some(reader),
            http,
            token,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /sessions` rows.
    pub async fn rows(&self) -> Vec<Value> {
        let answer = super::request(&self.http, "GET", "/sessions", None, "").await;
        match answer.json() {
            Value::Array(rows) => rows,
            other => panic!("GET /sessions on {} answered {other}", self.name),
        }
    }

    /// Ids of the sessions this node runs (its `owner` rows) in `state`.
    pub async fn ids_in(&self, state: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .rows()
            .await
            .into_iter()
            .filter(|r| r["state"] == state && r["owner"] == self.name.as_str())
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    /// Log lines (parsed) whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    /// Waits for the process to exit (after a signal) and lets its log reader finish.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 100 ms until it answers `Some`, panicking with `what` at the deadline.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Online ids per node; panics if a session is online on two nodes at once.
pub async fn online_by_node(nodes: &[&Node]) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for node in nodes {
        let ids = node.ids_in("online").await;
        for id in &ids {
            assert!(
                seen.insert(id.clone()),
                "session {id} is online on two nodes"
            );
        }
        all.push(ids);
    }
    all
}

/// Scans every QR the nodes show until the simulator has paired `n` devices.
pub async fn pair_all(sim: &Handle, nodes: &[&Node], n: usize) {
    let mut scanned = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while (sim.stats().pairings as usize) < n {
        assert!(
            Instant::now() < deadline,
            "gave up waiting: {n} sessions paired ({} so far)",
            sim.stats().pairings
        );
        for node in nodes {
            for id in node.ids_in("pairing").await {
                let path = format!("/sessions/{id}");
                // The QR is shown only to the token holder.
                let token = Some(node.token.as_str());
                let detail = super::request(&node.http, "GET", &path, token, "").await;
                // A QR counts as scanned only once the simulator paired it: a scan that
                // failed (its pairing socket gone as the session moved) is tried again.
                if let Some(qr) = detail.json()["qr"].as_str()
                    && !scanned.contains(qr)
                    && sim.scan(qr, None).await.is_ok()
                {
                    scanned.insert(qr.to_string());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `n` sessions are online across `nodes` (each on one node) and returns them.
pub async fn all_online(nodes: &[&Node], n: usize, within: Duration) -> Vec<Vec<String>> {
    wait_until(&format!("{n} sessions online"), within, || async {
        let by_node = online_by_node(nodes).await;
        (by_node.iter().map(Vec::len).sum::<usize>() == n).then_some(by_node)
    })
    .await
}
