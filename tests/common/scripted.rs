//! A scripted WebSocket server for client tests: Noise handshake from the same `wa` parts,
//! then a per-connection script; it records what the client sends (nodes, pre-key uploads,
//! the first message of later dials, login versions). Plus a one-session pool dialling it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use wasp::config::{Config, SessionConfig};
use wasp::net::conn::{NoiseSocket, server_handshake};
use wasp::net::link::Endpoint;
use wasp::net::pool::{self, Running};
use wasp::session::policy::Policy;
use wasp::session::status::{StateName, Status};
use wasp::store::{CredentialStoreExt, FileStore};
use wasp::wa::creds::{Account, Credentials, KeyPair};
use wasp::wa::node::Node;
use wasp::wa::noise::{CertAuthority, TrustRoot};
use wasp::wa::payload::{self, ClientVersion};
use wasp::wa::stanza;

pub const OWN: &str = "15550001111:3@s.whatsapp.net";
pub const PEER: &str = "15551234567@s.whatsapp.net";
pub const WAIT: Duration = Duration::from_secs(20);

pub type Socket = NoiseSocket<TcpStream>;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the scripted server saw.
#[derive(Default)]
pub struct Log {
    /// Every node the client sent, in order, over all connections.
    pub nodes: Vec<Node>,
    /// The number of keys in each pre-key upload.
    pub uploads: Vec<Vec<u32>>,
    /// The first WebSocket message of each dial after the first.
    pub intros: Vec<Vec<u8>>,
    /// The client versions of the logins.
    pub versions: Vec<ClientVersion>,
}

pub type Shared = Arc<Mutex<Log>>;

pub struct Server {
    pub url: String,
    pub root: [u8; 32],
    pub log: Shared,
}

pub async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a server; `script(index, socket, log)` runs each logged-in connection; when
/// `record_intro_after_first` is set, later dials only have their first message recorded.
pub async fn server<F, Fut>(script: F, record_intro_after_first: bool) -> Server
where
    F: Fn(usize, Socket, Shared) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws/chat", listener.local_addr().unwrap());
    let ca = CertAuthority::generate();
    let root = ca.public();
    let key = KeyPair::generate();
    let log = Shared::default();
    let shared = log.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        for index in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            if index > 0 && record_intro_after_first {
                if let Some(Ok(msg)) = ws.next().await {
                    shared.lock().unwrap().intros.push(msg.into_data().to_vec());
                }
                continue;
            }
            let chain = ca.issue_chain(&key.public, unix_now() - 60, 3600);
            let (log, script, private) = (shared.clone(), script.clone(), key.clone());
            tokio::spawn(async move {
                let Ok((socket, finish)) = server_handshake(ws, &private, chain, None).await else {
                    return;
                };
                let hello = payload::decode_client_payload(&finish.payload).unwrap();
                if let Some(v) = payload::client_version(&hello) {
                    log.lock().unwrap().versions.push(v);
                }
                script(index, socket, log).await;
            });
        }
    });
    Server { url, root, log }
}

/// Reads one node from the client, records it and answers the iqs a logged-in client sends
/// (pre-key count: `count`; upload, passive, ping: a result). `None` once the link ended.
pub async fn serve_node(socket: &mut Socket, log: &Shared, count: u32) -> Option<Node> {
    serve_node_with(socket, log, count, true).await
}

/// [`serve_node`], leaving pre-key uploads unanswered when `confirm_uploads` is false.
pub async fn serve_node_with(
    socket: &mut Socket,
    log: &Shared,
    count: u32,
    confirm_uploads: bool,
) -> Option<Node> {
    let node = socket.recv_node().await.ok()?;
    log.lock().unwrap().nodes.push(node.clone());
    if node.tag == "iq" && matches!(node.get_attr("type"), Some("get" | "set")) {
        let id = node.get_attr("id").unwrap_or_default();
        let reply = if node.get_child("count").is_some() {
            stanza::iq_result(id).child(Node::new("count").attr("value", count.to_string()))
        } else {
            if let Some(list) = node.get_child("list") {
                let ids = list
                    .children_named("key")
                    .map(|k| {
                        let b = k.get_child("id").unwrap().content_bytes().unwrap();
                        u32::from_be_bytes([0, b[0], b[1], b[2]])
                    })
                    .collect();
                log.lock().unwrap().uploads.push(ids);
                if !confirm_uploads {
                    return Some(node);
                }
            }
            stanza::iq_result(id)
        };
        socket.send_node(&reply).await.ok()?;
    }
    Some(node)
}

pub fn fast_policy() -> Policy {
    let ms = Duration::from_millis;
    Policy {
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        backoff_base: ms(100),
        backoff_cap: ms(200),
        ..Policy::default()
    }
}

pub struct Pool {
    pub running: Running,
    pub dir: Option<tempfile::TempDir>,
    pub cancel: CancellationToken,
}

impl Pool {
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.as_ref().unwrap().path().to_path_buf()
    }

    /// Stops the pool (as a restart of the process would) and starts a new one on the same
    /// data directory.
    pub async fn restart(mut self, srv: &Server) -> Pool {
        let dir = self.dir.take().unwrap();
        self.cancel.cancel();
        (&mut self.running.task).await.unwrap();
        start_in(srv, dir, true, None).0
    }

    pub fn status(&self) -> Option<Status> {
        self.running.handle.board.get("c1")
    }

    pub async fn wait_state(&self, state: StateName) -> Status {
        let mut last = None;
        wait_until(&format!("state {state:?}"), || {
            last = self.status();
            last.as_ref().is_some_and(|s| s.state() == state)
        })
        .await;
        last.unwrap()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A pool of one paired session `c1` dialling `srv`.
pub fn pool(srv: &Server, send_acks: bool, version: Option<ClientVersion>) -> (Pool, Config) {
    pool_with_identity(srv, send_acks, version, Vec::new())
}

/// [`pool`] whose account holds `signed_identity` (its `ADVSignedDeviceIdentity`).
pub fn pool_with_identity(
    srv: &Server,
    send_acks: bool,
    version: Option<ClientVersion>,
    signed_identity: Vec<u8>,
) -> (Pool, Config) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new(dir.path()));
    let mut creds = Credentials::generate();
    creds.account = Some(Account {
        jid: OWN.into(),
        lid: None,
        phone: "15550001111".into(),
        device: 3,
        platform: None,
        business_name: None,
        signed_identity,
        key_index: 1,
    });
    store.save_json("c1", &creds).unwrap();
    start_in(srv, dir, send_acks, version)
}

/// A pool on an existing data directory.
pub fn start_in(
    srv: &Server,
    dir: tempfile::TempDir,
    send_acks: bool,
    version: Option<ClientVersion>,
) -> (Pool, Config) {
    let store = Arc::new(FileStore::new(dir.path()));
    let mut config = Config::default();
    // Tests send as fast as the relay takes them: no send limits worth the name.
    config.messages.per_minute = 60_000;
    config.messages.burst = 1_000;
    config.server.url = srv.url.clone();
    config.server.trust_root = Some(srv.root);
    config.server.client_version = version;
    config.storage.data_dir = dir.path().to_path_buf();
    let mut session = SessionConfig::new("c1", fast_policy());
    session.autostart = true;
    config.sessions = vec![session];
    let endpoint = Endpoint {
        url: srv.url.clone(),
        trust: TrustRoot(srv.root),
        version: version.unwrap_or_default(),
        device: Default::default(),
        proxy: None,
        tls: wasp::net::tls::ClientTls::webpki(),
        send_acks,
    };
    let cancel = CancellationToken::new();
    let running = pool::start(&config, endpoint, store, cancel.clone());
    (
        Pool {
            running,
            dir: Some(dir),
            cancel,
        },
        config,
    )
}
