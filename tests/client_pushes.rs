//! The client's answers to what the server pushes after login, against a small scripted
//! server on 127.0.0.1 (not the simulator): acks in the reference shape, `offline_batch`,
//! edge routing kept for the next dial, pre-keys uploaded 812 then refilled and stored, no
//! acks with the test switch (and the ack stream error shown as `stream_error_ack`), an
//! undecodable node skipped and counted, and a 405 cured by a reload with a new version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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
use wasp::store::keys::KeyStore;
use wasp::store::{CredentialStoreExt, FileStore};
use wasp::wa::creds::{Account, Credentials, KeyPair};
use wasp::wa::node::Node;
use wasp::wa::noise::{CertAuthority, TrustRoot};
use wasp::wa::payload::{self, ClientVersion};
use wasp::wa::{ack, stanza};

const OWN: &str = "15550001111:3@s.whatsapp.net";
const PEER: &str = "15551234567@s.whatsapp.net";
const ROUTING: &[u8] = &[0x08, 0x08, 0x02, 0x10, 0x05];
const WAIT: Duration = Duration::from_secs(20);

type Socket = NoiseSocket<TcpStream>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the scripted server saw.
#[derive(Default)]
struct Log {
    /// Every node the client sent, in order, over all connections.
    nodes: Vec<Node>,
    /// The number of keys in each pre-key upload.
    uploads: Vec<Vec<u32>>,
    /// The first WebSocket message of each dial after the first.
    intros: Vec<Vec<u8>>,
    /// The client versions of the logins.
    versions: Vec<ClientVersion>,
}

type Shared = Arc<Mutex<Log>>;

struct Server {
    url: String,
    root: [u8; 32],
    log: Shared,
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a server; `script(index, socket, log)` runs each logged-in connection; when
/// `record_intro_after_first` is set, later dials only have their first message recorded.
async fn server<F, Fut>(script: F, record_intro_after_first: bool) -> Server
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
            let (log, script, private) = (shared.clone(), script.clone(), key.private.clone());
            tokio::spawn(async move {
                let Ok((socket, finish)) =
                    server_handshake(ws, private.expose(), chain, None).await
                else {
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
async fn serve_node(socket: &mut Socket, log: &Shared, count: u32) -> Option<Node> {
    serve_node_with(socket, log, count, true).await
}

/// [`serve_node`], leaving pre-key uploads unanswered when `confirm_uploads` is false.
async fn serve_node_with(
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

fn fast_policy() -> Policy {
    let ms = Duration::from_millis;
    Policy {
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(10),
        backoff_base: ms(100),
        backoff_cap: ms(200),
        ..Policy::default()
    }
}

struct Pool {
    running: Running,
    dir: Option<tempfile::TempDir>,
    cancel: CancellationToken,
}

impl Pool {
    fn path(&self) -> std::path::PathBuf {
        self.dir.as_ref().unwrap().path().to_path_buf()
    }

    /// Stops the pool (as a restart of the process would) and starts a new one on the same
    /// data directory.
    async fn restart(mut self, srv: &Server) -> Pool {
        let dir = self.dir.take().unwrap();
        self.cancel.cancel();
        (&mut self.running.task).await.unwrap();
        start_in(srv, dir, true, None).0
    }

    fn status(&self) -> Option<Status> {
        self.running.handle.board.get("c1")
    }

    async fn wait_state(&self, state: StateName) -> Status {
        let mut last = None;
        wait_until(&format!("state {state:?}"), || {
            last = self.status();
            last.as_ref().is_some_and(|s| s.state == state)
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
fn pool(srv: &Server, send_acks: bool, version: Option<ClientVersion>) -> (Pool, Config) {
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
        signed_identity: Vec::new(),
        key_index: 1,
    });
    store.save_json("c1", &creds).unwrap();
    start_in(srv, dir, send_acks, version)
}

/// A pool on an existing data directory.
fn start_in(
    srv: &Server,
    dir: tempfile::TempDir,
    send_acks: bool,
    version: Option<ClientVersion>,
) -> (Pool, Config) {
    let store = Arc::new(FileStore::new(dir.path()));
    let mut config = Config::default();
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

fn pushes() -> Vec<Node> {
    vec![
        Node::new("message")
            .attr("id", "M1")
            .attr("from", PEER)
            .attr("type", "text")
            .attr("t", "1700000000")
            .child(Node::new("enc").attr("type", "pkmsg").bytes(vec![1, 2, 3])),
        Node::new("receipt")
            .attr("id", "R1")
            .attr("from", "120363000@g.us")
            .attr("participant", PEER)
            .attr("recipient", "15559990000@s.whatsapp.net")
            .attr("type", "read"),
        Node::new("notification")
            .attr("id", "N1")
            .attr("from", "s.whatsapp.net")
            .attr("type", "encrypt")
            .attr("t", "1700000000")
            .child(Node::new("count").attr("value", "3")),
        Node::new("call").attr("id", "C1").attr("from", PEER),
        Node::new("ib").child(
            Node::new("offline_preview")
                .attr("count", "4")
                .attr("message", "1")
                .attr("notification", "1")
                .attr("receipt", "1")
                .attr("appdata", "0"),
        ),
        ack::edge_routing_node(ROUTING),
        Node::new("ib").child(Node::new("offline").attr("count", "4")),
    ]
}

fn attr<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get_attr(key)
}

fn ack_for<'a>(log: &'a Log, class: &str, id: &str) -> Option<&'a Node> {
    log.nodes
        .iter()
        .find(|n| n.tag == "ack" && attr(n, "class") == Some(class) && attr(n, "id") == Some(id))
}

/// The answers of the first test's connection: ack shapes, offline batch, uploads, routing.
fn check_answers(log: &Log) {
    let message = ack_for(log, "message", "M1").expect("message acked");
    let mut attrs = message.attrs.clone();
    attrs.sort();
    let mut want: Vec<(String, String)> = [
        ("class", "message"),
        ("from", OWN),
        ("id", "M1"),
        ("to", PEER),
        ("type", "text"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    want.sort();
    assert_eq!(attrs, want, "plain ack, no error attribute");
    let receipt = ack_for(log, "receipt", "R1").expect("receipt acked");
    assert_eq!(attr(receipt, "to"), Some("120363000@g.us"));
    assert_eq!(attr(receipt, "participant"), Some(PEER));
    assert_eq!(
        attr(receipt, "recipient"),
        Some("15559990000@s.whatsapp.net")
    );
    assert_eq!(attr(receipt, "from"), None);
    let notification = ack_for(log, "notification", "N1").expect("notification acked");
    assert_eq!(attr(notification, "type"), Some("encrypt"));
    assert_eq!(attr(notification, "to"), Some("s.whatsapp.net"));
    assert!(ack_for(log, "call", "C1").is_some(), "call acked");
    let batch = log
        .nodes
        .iter()
        .find_map(|n| n.get_child("offline_batch"))
        .expect("offline_batch sent");
    assert_eq!(attr(batch, "count"), Some("100"));
    assert!(
        log.nodes.iter().all(|n| attr(n, "error").is_none()),
        "never a nack"
    );

    // 812 at login (the server had none), 50 for the encrypt notification's count of 3,
    // in either order, never the same id twice.
    let mut sizes: Vec<usize> = log.uploads.iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 812]);
    let mut ids: Vec<u32> = log.uploads.iter().flatten().copied().collect();
    ids.sort();
    assert_eq!(ids, (1..=862).collect::<Vec<_>>());

    // The next dial starts with the edge routing: "ED", 0, 1, 3-byte length, bytes, header.
    let intro = &log.intros[0];
    let mut want = b"ED\x00\x01".to_vec();
    want.extend_from_slice(&(ROUTING.len() as u32).to_be_bytes()[1..]);
    want.extend_from_slice(ROUTING);
    want.extend_from_slice(b"WA\x06\x03");
    assert!(intro.starts_with(&want), "intro {intro:02x?}");
}

#[tokio::test]
async fn pushes_are_acked_routing_is_kept_and_prekeys_are_uploaded_and_stored() {
    let srv = server(
        |_, mut socket, log| async move {
            socket
                .send_node(&stanza::success(Some("99:3@lid"), 1))
                .await
                .unwrap();
            for push in pushes() {
                socket.send_node(&push).await.unwrap();
            }
            // Serve until both uploads and every answer arrived, then ask for a restart.
            loop {
                let done = {
                    let l = log.lock().unwrap();
                    l.uploads.len() == 2
                        && ["M1", "R1", "N1", "C1"].iter().all(|id| {
                            l.nodes
                                .iter()
                                .any(|n| n.tag == "ack" && attr(n, "id") == Some(id))
                        })
                        && l.nodes
                            .iter()
                            .any(|n| n.get_child("offline_batch").is_some())
                        && l.nodes.iter().any(|n| n.get_child("active").is_some())
                };
                if done {
                    break;
                }
                if serve_node(&mut socket, &log, 0).await.is_none() {
                    return;
                }
            }
            let _ = socket.send_node(&stanza::stream_error(515)).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        },
        true,
    )
    .await;
    let (pool, _) = pool(&srv, true, None);
    wait_until("the redial after 515", || {
        !srv.log.lock().unwrap().intros.is_empty()
    })
    .await;

    check_answers(&srv.log.lock().unwrap());

    // Stored durably, all confirmed.
    let keys = KeyStore::in_data_dir(&pool.path());
    let counts = tokio::task::spawn_blocking(move || keys.counts("c1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (counts.stored, counts.uploaded, counts.next_id),
        (862, 862, 863)
    );
    let metrics = &pool.running.handle.metrics;
    assert_eq!(metrics.prekeys_uploaded.get(), 862);
    assert!(metrics.acks_sent.get() >= 4);
}

#[tokio::test]
async fn without_acks_the_ack_stream_error_is_shown_as_itself() {
    let srv = server(
        |index, mut socket, log| async move {
            if index > 0 {
                // Later logins: stay quiet.
                while serve_node(&mut socket, &log, 812).await.is_some() {}
                return;
            }
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            socket.send_node(&pushes()[0]).await.unwrap();
            // A server ping: its answer comes after any ack the client would send.
            let ping = Node::new("iq")
                .attr("id", "sp1")
                .attr("type", "get")
                .attr("xmlns", "urn:xmpp:ping")
                .attr("from", "s.whatsapp.net");
            socket.send_node(&ping).await.unwrap();
            loop {
                let Some(node) = serve_node(&mut socket, &log, 812).await else {
                    return;
                };
                if node.tag == "iq" && attr(&node, "id") == Some("sp1") {
                    break;
                }
            }
            let _ = socket.send_node(&stanza::stream_error_ack("M1")).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        },
        false,
    )
    .await;
    let (pool, _) = pool(&srv, false, None);
    let mut seen = None;
    wait_until("the ack stream error", || {
        seen = pool.status();
        seen.as_ref()
            .is_some_and(|s| s.last_cause.as_deref() == Some("stream_error_ack"))
    })
    .await;
    let status = seen.unwrap();
    assert_eq!(status.last_code, Some(500));
    let entry = status
        .timeline
        .iter()
        .rev()
        .find(|e| e.cause == "stream_error_ack")
        .unwrap();
    assert!(entry.detail.contains("<ack id=M1/>"), "{}", entry.detail);
    let log = srv.log.lock().unwrap();
    assert!(
        log.nodes.iter().all(|n| n.tag != "ack"),
        "the switch sends no ack"
    );
}

#[tokio::test]
async fn an_undecodable_node_is_skipped_counted_and_the_link_goes_on() {
    let srv = server(
        |_, mut socket, log| async move {
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            // Decrypts fine, but is not a node: a list marker with an impossible size.
            socket.send_plain(&[0x00, 0xf8, 0xff, 0xff]).await.unwrap();
            socket.send_node(&pushes()[3]).await.unwrap();
            while serve_node(&mut socket, &log, 812).await.is_some() {}
        },
        false,
    )
    .await;
    let (pool, _) = pool(&srv, true, None);
    wait_until("the call after the bad frame acked", || {
        ack_for(&srv.log.lock().unwrap(), "call", "C1").is_some()
    })
    .await;
    let metrics = &pool.running.handle.metrics;
    assert_eq!(metrics.undecodable_nodes.get(), 1);
    let text = metrics.render(&[]);
    assert!(text.contains("wasp_undecodable_nodes_total 1"), "{text}");
    let status = pool.wait_state(StateName::Online).await;
    assert!(status.liveness.last_frame_at.is_some());
}

#[tokio::test]
async fn a_refused_version_is_named_and_a_reload_with_a_newer_one_brings_it_online() {
    let min = ClientVersion::new(2, 3000, 100);
    let srv = server(
        move |_, mut socket, log| async move {
            let version = *log.lock().unwrap().versions.last().unwrap();
            if version < min {
                let _ = socket
                    .send_node(&stanza::failure(405, &[("location", "frc")]))
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            while serve_node(&mut socket, &log, 812).await.is_some() {}
        },
        false,
    )
    .await;
    let old = ClientVersion::new(2, 3000, 5);
    let (pool, mut config) = pool(&srv, true, Some(old));
    let failed = pool.wait_state(StateName::Failed).await;
    assert!(failed.reason.contains("2.3000.5"), "{}", failed.reason);
    assert!(
        failed.reason.contains("client_version in [server]"),
        "{}",
        failed.reason
    );
    assert_eq!(failed.client_version, "2.3000.5");

    config.server.client_version = Some(ClientVersion::new(2, 3000, 200));
    pool.running.reload.send(config).await.unwrap();
    let online = pool.wait_state(StateName::Online).await;
    assert_eq!(online.client_version, "2.3000.200");
    assert_eq!(
        srv.log.lock().unwrap().versions.last(),
        Some(&ClientVersion::new(2, 3000, 200))
    );
}

#[tokio::test]
async fn iq_answers_count_as_received_frames_for_liveness() {
    // After <success> the server sends nothing of its own: only answers to our iqs.
    let srv = server(
        |_, mut socket, log| async move {
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            while serve_node(&mut socket, &log, 812).await.is_some() {}
        },
        false,
    )
    .await;
    let (pool, _) = pool(&srv, true, None);
    let mut seen = None;
    wait_until("a frame after the login", || {
        seen = pool.status();
        seen.as_ref().is_some_and(|s| {
            s.state == StateName::Online
                && matches!((s.liveness.last_frame_at, s.online_since), (Some(f), Some(o)) if f > o)
        })
    })
    .await;
}

#[tokio::test]
async fn keys_written_but_never_confirmed_are_uploaded_again_with_the_same_ids() {
    // First process: the server never confirms the upload. After the restart it does.
    let srv = server(
        |index, mut socket, log| async move {
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            while serve_node_with(&mut socket, &log, 0, index > 0)
                .await
                .is_some()
            {}
        },
        false,
    )
    .await;
    let (first, _) = pool(&srv, true, None);
    wait_until("the first upload", || {
        srv.log.lock().unwrap().uploads.len() == 1
    })
    .await;
    let second = first.restart(&srv).await;
    wait_until("the upload after the restart", || {
        srv.log.lock().unwrap().uploads.len() == 2
    })
    .await;
    let uploads = srv.log.lock().unwrap().uploads.clone();
    assert_eq!(uploads[0], (1..=812).collect::<Vec<_>>());
    assert_eq!(uploads[1], uploads[0], "the same slots again, no new ids");
    let keys = KeyStore::in_data_dir(&second.path());
    let mut counts = None;
    wait_until("the upload confirmed in the store", || {
        let c = keys.counts("c1").unwrap();
        counts = Some(c);
        c.uploaded == 812
    })
    .await;
    let counts = counts.unwrap();
    assert_eq!((counts.stored, counts.next_id), (812, 813));
}
