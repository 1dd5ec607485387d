//! The Noise socket over a WebSocket: handshake (client and server side), node send/receive,
//! and a connection task that matches iq requests to responses by id, answers with a typed
//! close reason, and never outlives its cancellation token.
//!
//! Everything is generic over the stream under the WebSocket, so tests run it over
//! `tokio::io::duplex` as well as real TCP.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::net::{chan, footprint};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net::transport::DialError;
use crate::wa::creds::KeyPair;
use crate::wa::frame::{self, FrameDecoder, FrameError};
use crate::wa::node::{self, Node, NodeError};
use crate::wa::noise::{ClientFinish, Initiator, NoiseError, Responder, Transport, TrustRoot};
use crate::wa::stanza::{self, Cause};

/// Why a connection step failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("websocket error: {0}")]
    Ws(String),
    #[error("cannot build the client payload: {0}")]
    Payload(String),
    #[error("the server closed the connection")]
    ClosedByPeer,
    #[error("framing error: {0}")]
    Frame(#[from] FrameError),
    #[error("noise error: {0}")]
    Noise(#[from] NoiseError),
    #[error("node error: {0}")]
    Node(#[from] NodeError),
    #[error("{what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("the connection is already closed")]
    Gone,
    #[error("the server answered iq {id} with error {code}")]
    IqError { id: String, code: u16 },
}

impl ConnError {
    /// The disconnect cause this failure means for the session (PROTOCOL.md section 7).
    pub fn cause(&self) -> Cause {
        match self {
            ConnError::Dial(e @ DialError::Timeout { .. }) => Cause::TimedOut(e.to_string()),
            ConnError::Dial(DialError::Proxy { proxy, reason }) => {
                Cause::Proxy(format!("{proxy}: {reason}"))
            }
            // The server is there and said no: its status is the code, not a network 408.
            ConnError::Dial(DialError::Refused { status, .. }) => Cause::Server(*status),
            ConnError::Dial(e) => Cause::Network(e.to_string()),
            ConnError::Ws(e) => Cause::Network(e.clone()),
            ConnError::Payload(e) => Cause::Payload(e.clone()),
            ConnError::ClosedByPeer | ConnError::Gone => Cause::Closed,
            ConnError::Frame(e) => Cause::Protocol(e.to_string()),
            ConnError::Noise(e) => Cause::Protocol(e.to_string()),
            ConnError::Node(e) => Cause::Protocol(e.to_string()),
            ConnError::Timeout { what, .. } => Cause::TimedOut(format!("{what} timed out")),
            ConnError::IqError { code, .. } => Cause::Server(*code),
        }
    }
}

/// A WebSocket with a completed Noise handshake: nodes in, nodes out.
pub struct NoiseSocket<S> {
    ws: WebSocketStream<S>,
    decoder: FrameDecoder,
    transport: Transport,
}

/// What the client side of the handshake needs.
pub struct ClientHandshake<'a> {
    /// The session's static noise key pair.
    pub noise: &'a KeyPair,
    /// The encoded ClientPayload (registration or login).
    pub payload: Vec<u8>,
    pub trust: &'a TrustRoot,
    /// Wall-clock seconds, for certificate validity.
    pub now_unix: u64,
    /// Edge routing bytes from an earlier `<ib><edge_routing>`, if any.
    pub routing: Option<&'a [u8]>,
}

async fn send_raw<S>(ws: &mut WebSocketStream<S>, bytes: Vec<u8>) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::Binary(bytes.into()))
        .await
        .map_err(|e| ConnError::Ws(e.to_string()))
}

/// Reads until the decoder yields one whole frame.
async fn read_frame<S>(
    ws: &mut WebSocketStream<S>,
    decoder: &mut FrameDecoder,
) -> Result<Vec<u8>, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(frame);
        }
        match ws.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(ConnError::ClosedByPeer),
            Some(Ok(Message::Binary(bytes))) => decoder.push(&bytes),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ws_error(e)),
        }
    }
}

/// A socket that ends without a closing handshake is a close (428), not a network error.
fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> ConnError {
    use tokio_tungstenite::tungstenite::Error as E;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        E::ConnectionClosed
        | E::AlreadyClosed
        | E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ConnError::ClosedByPeer,
        E::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => ConnError::ClosedByPeer,
        other => ConnError::Ws(other.to_string()),
    }
}

/// Runs the client side of the handshake on an open WebSocket.
pub async fn client_handshake<S>(
    mut ws: WebSocketStream<S>,
    hs: ClientHandshake<'_>,
) -> Result<NoiseSocket<S>, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut initiator = Initiator::new(hs.noise)?;
    let hello = initiator.client_hello()?;
    let mut out = frame::client_intro(hs.routing);
    frame::encode_frame(&hello, &mut out)?;
    send_raw(&mut ws, out).await?;

    let mut decoder = FrameDecoder::new();
    let server_hello = read_frame(&mut ws, &mut decoder).await?;
    initiator.read_server_hello(&server_hello, hs.trust, hs.now_unix)?;
    let (finish, transport) = initiator.client_finish(&hs.payload)?;
    let mut out = Vec::with_capacity(finish.len() + 3);
    frame::encode_frame(&finish, &mut out)?;
    send_raw(&mut ws, out).await?;
    Ok(NoiseSocket {
        ws,
        decoder,
        transport,
    })
}

/// Runs the server side of the handshake: reads the client's intro and hello, waits
/// `hello_delay` (the simulator's slow-handshake fault), answers with our certificate chain,
/// and returns the client's static key and payload for inspection.
pub async fn server_handshake<S>(
    mut ws: WebSocketStream<S>,
    static_key: &KeyPair,
    cert_chain: Vec<u8>,
    hello_delay: Option<Duration>,
) -> Result<(NoiseSocket<S>, ClientFinish), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut decoder = FrameDecoder::server();
    let hello = read_frame(&mut ws, &mut decoder).await?;
    let mut responder = Responder::new(static_key, cert_chain)?;
    responder.read_client_hello(&hello)?;
    if let Some(delay) = hello_delay {
        tokio::time::sleep(delay).await;
    }
    let server_hello = responder.server_hello()?;
    let mut out = Vec::with_capacity(server_hello.len() + 3);
    frame::encode_frame(&server_hello, &mut out)?;
    send_raw(&mut ws, out).await?;
    let finish = read_frame(&mut ws, &mut decoder).await?;
    let (client, transport) = responder.read_client_finish(&finish)?;
    Ok((
        NoiseSocket {
            ws,
            decoder,
            transport,
        },
        client,
    ))
}

impl<S> NoiseSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Encrypts and sends one node.
    pub async fn send_node(&mut self, node: &Node) -> Result<(), ConnError> {
        let plain = node::encode(node)?;
        send_encrypted(&mut self.ws, &mut self.transport, &plain).await
    }

    /// Encrypts `node` into the write buffer without writing it out: nodes fed one after
    /// another leave in one write at the next [`Self::flush`] (or send).
    pub async fn feed_node(&mut self, node: &Node) -> Result<(), ConnError> {
        feed_sealed(&mut self.ws, &mut self.transport, node).await
    }

    /// Writes out what [`Self::feed_node`] buffered.
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        self.ws
            .flush()
            .await
            .map_err(|e| ConnError::Ws(e.to_string()))
    }

    /// Encrypts and sends `plain` as one frame whatever it holds (tests send broken nodes).
    #[doc(hidden)]
    pub async fn send_plain(&mut self, plain: &[u8]) -> Result<(), ConnError> {
        send_encrypted(&mut self.ws, &mut self.transport, plain).await
    }

    /// Receives the next node (cancel-safe: buffered bytes stay in the decoder).
    pub async fn recv_node(&mut self) -> Result<Node, ConnError> {
        let frame = read_frame(&mut self.ws, &mut self.decoder).await?;
        let plain = self.transport.decrypt(&frame)?;
        Ok(node::decode(&plain)?)
    }

    /// The edge-routing bytes the client sent before its header (server side), if any.
    pub fn routing(&self) -> Option<&[u8]> {
        self.decoder.routing()
    }

    /// Closes the WebSocket politely (best effort).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Starts the connection task; see [`Conn`].
    pub fn spawn(
        self,
        cancel: CancellationToken,
        events: usize,
    ) -> (Conn, chan::Receiver<ConnEvent>) {
        self.spawn_in(&TaskTracker::new(), cancel, events)
    }

    /// Starts the connection task in `tasks`, so its owner can await it.
    pub fn spawn_in(
        self,
        tasks: &TaskTracker,
        cancel: CancellationToken,
        events: usize,
    ) -> (Conn, chan::Receiver<ConnEvent>) {
        let (cmd_tx, cmd_rx) = chan::channel(64);
        let (event_tx, event_rx) = chan::channel(events.max(1));
        let task = run_conn(Box::new(self), cmd_rx, event_tx, cancel.clone());
        tasks.spawn(footprint::noted(footprint::Task::Conn, task));
        (
            Conn {
                querier: Querier {
                    cmd: cmd_tx,
                    ids: Arc::new(IdGen {
                        prefix: id_prefix(),
                        counter: AtomicU64::new(1),
                    }),
                },
                cancel,
            },
            event_rx,
        )
    }
}

async fn send_encrypted<S>(
    ws: &mut WebSocketStream<S>,
    transport: &mut Transport,
    plain: &[u8],
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_raw(ws, seal(transport, plain)?).await
}

/// Encrypts and frames `node` into the sink's buffer; the caller flushes.
async fn feed_sealed<K>(
    sink: &mut K,
    transport: &mut Transport,
    node: &Node,
) -> Result<(), ConnError>
where
    K: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let plain = node::encode(node)?;
    let out = seal(transport, &plain)?;
    sink.feed(Message::Binary(out.into()))
        .await
        .map_err(|e| ConnError::Ws(e.to_string()))
}

/// `plain` encrypted and framed.
fn seal(transport: &mut Transport, plain: &[u8]) -> Result<Vec<u8>, ConnError> {
    let sealed = transport.encrypt(plain)?;
    let mut out = Vec::with_capacity(sealed.len() + 3);
    frame::encode_frame(&sealed, &mut out)?;
    Ok(out)
}

fn id_prefix() -> String {
    let n: u32 = rand::random();
    format!("{:05}", n % 100_000)
}

/// What a connection task reports to its owner.
#[derive(Debug)]
pub enum ConnEvent {
    /// A node that was not the answer to one of our queries.
    Node(Box<Node>),
    /// A frame arrived that went elsewhere (an iq answer to a waiting querier): the link is
    /// alive all the same.
    Received,
    /// A frame decrypted but did not decode as a node (`len` plaintext bytes); it was
    /// skipped and the connection goes on, as the reference clients do.
    Undecodable { len: usize, error: Box<NodeError> },
    /// The connection ended; the task has finished. `by_us` is true when we closed it.
    Closed { cause: Box<Cause>, by_us: bool },
}

pub(crate) enum Command {
    Send(Box<Node>),
    Query {
        node: Box<Node>,
        reply: oneshot::Sender<Node>,
    },
    Forget(String),
    Close,
}

/// Sends nodes and queries on a running connection; cheap to clone, so keepalive pings and
/// background queries can run beside the owner. Dropping a `Querier` does not close anything.
#[derive(Clone)]
pub struct Querier {
    cmd: chan::Sender<Command>,
    ids: Arc<IdGen>,
}

struct IdGen {
    prefix: String,
    counter: AtomicU64,
}

impl Querier {
    /// A fresh iq id for this connection.
    pub fn next_id(&self) -> String {
        let n = self.ids.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.ids.prefix)
    }

    /// Queues a node for sending.
    pub async fn send(&self, node: Node) -> Result<(), ConnError> {
        self.cmd
            .send(Command::Send(Box::new(node)))
            .await
            .map_err(|_| ConnError::Gone)
    }

    /// Sends an iq (its `id` attribute is set here when missing) and waits up to `timeout`
    /// for the matching answer; an `type="error"` answer is an `IqError`.
    pub async fn query(&self, node: Node, timeout: Duration) -> Result<Node, ConnError> {
        let id = match node.get_attr("id") {
            Some(id) => id.to_string(),
            None => self.next_id(),
        };
        let node = node.attr("id", id.clone());
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Query {
                node: Box::new(node),
                reply,
            })
            .await
            .map_err(|_| ConnError::Gone)?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                let _ = self.cmd.try_send(Command::Forget(id));
                Err(ConnError::Timeout {
                    what: "query",
                    after: timeout,
                })
            }
            Ok(Err(_)) => Err(ConnError::Gone),
            Ok(Ok(answer)) => {
                if answer.get_attr("type") == Some("error") {
                    let code = answer
                        .get_child("error")
                        .and_then(|e| e.get_attr("code"))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(500);
                    Err(ConnError::IqError { id, code })
                } else {
                    Ok(answer)
                }
            }
        }
    }

    /// Sends a keepalive ping and returns the round-trip time.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, ConnError> {
        let start = Instant::now();
        self.query(stanza::ping(&self.next_id()), timeout).await?;
        Ok(start.elapsed())
    }
}

/// The owner's handle on a running connection task: one per socket, not cloneable.
/// Dropping it ends the task and closes the socket.
pub struct Conn {
    querier: Querier,
    cancel: CancellationToken,
}

impl Conn {
    /// A cloneable sender/querier for background work on this connection.
    pub fn querier(&self) -> Querier {
        self.querier.clone()
    }

    /// A fresh iq id for this connection.
    pub fn next_id(&self) -> String {
        self.querier.next_id()
    }

    /// Queues a node for sending.
    pub async fn send(&self, node: Node) -> Result<(), ConnError> {
        self.querier.send(node).await
    }

    /// See [`Querier::query`].
    pub async fn query(&self, node: Node, timeout: Duration) -> Result<Node, ConnError> {
        self.querier.query(node, timeout).await
    }

    /// See [`Querier::ping`].
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, ConnError> {
        self.querier.ping(timeout).await
    }

    /// Asks the task to close the socket; the `Closed { by_us: true }` event follows.
    pub async fn close(&self) {
        if self.querier.cmd.send(Command::Close).await.is_err() {
            self.cancel.cancel();
        }
    }

    /// True once the task has ended.
    pub fn is_closed(&self) -> bool {
        self.querier.cmd.is_closed()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The socket has one owner: when the handle goes, the task goes.
        self.cancel.cancel();
    }
}

/// True for an iq answer (`result` or `error`) that can match a pending query.
/// How long a failed write waits for what the server said before it closed.
const LAST_WORDS: Duration = Duration::from_millis(500);

/// After a failed write: reads what is still buffered (for at most `LAST_WORDS`) and returns
/// the end cause the server sent, if any.
async fn read_end_cause<St>(
    stream: &mut St,
    decoder: &mut FrameDecoder,
    transport: &mut Transport,
) -> Option<Cause>
where
    St: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let search = async {
        loop {
            while let Ok(Some(frame)) = decoder.next_frame() {
                let plain = transport.decrypt(&frame).ok()?;
                if let Some(cause) = node::decode(&plain)
                    .ok()
                    .as_ref()
                    .and_then(stanza::end_cause)
                {
                    return Some(cause);
                }
            }
            match stream.next().await {
                Some(Ok(Message::Binary(bytes))) => decoder.push(&bytes),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return None,
            }
        }
    };
    tokio::time::timeout(LAST_WORDS, search)
        .await
        .ok()
        .flatten()
}

fn is_answer(node: &Node) -> bool {
    node.tag == "iq" && matches!(node.get_attr("type"), Some("result") | Some("error"))
}

/// `socket` arrives boxed: an async fn keeps its arguments for its whole life, and this one
/// lives as long as the connection (issue 15's per-session memory).
async fn run_conn<S>(
    socket: Box<NoiseSocket<S>>,
    mut cmd_rx: chan::Receiver<Command>,
    events: chan::Sender<ConnEvent>,
    cancel: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Moved out in a block of its own, so the box is freed now rather than when the
    // connection ends.
    let NoiseSocket {
        ws,
        mut decoder,
        mut transport,
    } = {
        let socket = socket;
        *socket
    };
    let (mut sink, mut stream) = ws.split();
    let mut pending: HashMap<String, oneshot::Sender<Node>> = HashMap::new();

    let (cause, by_us) = 'outer: loop {
        // Deliver every frame already buffered before waiting for more bytes.
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => break 'outer (ConnError::from(e).cause(), false),
            };
            // Only a failed GCM tag ends the link: the stream can no longer be trusted.
            let plain = match transport.decrypt(&frame) {
                Ok(plain) => plain,
                Err(e) => break 'outer (ConnError::from(e).cause(), false),
            };
            let node = match node::decode(&plain) {
                Ok(node) => node,
                Err(error) => {
                    let event = ConnEvent::Undecodable {
                        len: plain.len(),
                        error: Box::new(error),
                    };
                    if events.send(event).await.is_err() {
                        break 'outer (Cause::Closed, true);
                    }
                    continue;
                }
            };
            if is_answer(&node)
                && let Some(reply) = node.get_attr("id").and_then(|id| pending.remove(id))
            {
                let _ = reply.send(node);
                // Counts as life for the owner (liveness), without the node itself.
                let _ = events.try_send(ConnEvent::Received);
                continue;
            }
            if let Some(cause) = stanza::end_cause(&node) {
                let _ = events.send(ConnEvent::Node(Box::new(node))).await;
                break 'outer (cause, false);
            }
            if events.send(ConnEvent::Node(Box::new(node))).await.is_err() {
                break 'outer (Cause::Closed, true);
            }
        }

        tokio::select! {
            _ = cancel.cancelled() => break (Cause::Closed, true),
            cmd = cmd_rx.recv() => {
                // Every command already waiting goes out in the same write (a login's acks
                // and queries come in a burst).
                let mut cmd = cmd;
                let mut close = false;
                let mut sent = Ok(());
                loop {
                    let node = match cmd {
                        None | Some(Command::Close) => { close = true; break; }
                        Some(Command::Forget(id)) => { pending.remove(&id); None }
                        Some(Command::Send(node)) => Some(node),
                        Some(Command::Query { node, reply }) => {
                            if let Some(id) = node.get_attr("id") {
                                pending.insert(id.to_string(), reply);
                            }
                            Some(node)
                        }
                    };
                    if let Some(node) = node {
                        sent = feed_sealed(&mut sink, &mut transport, &node).await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    match cmd_rx.try_recv() {
                        Some(next) => cmd = Some(next),
                        None => break,
                    }
                }
                if sent.is_ok() {
                    sent = sink.flush().await.map_err(|e| ConnError::Ws(e.to_string()));
                }
                if close && sent.is_ok() {
                    break (Cause::Closed, true);
                }
                if let Err(e) = sent {
                    // The server may have ended the stream with a reason (a 440 conflict, a
                    // stream error) just before our write hit the closed socket: that reason,
                    // not the broken pipe, is why the link ended.
                    let said = read_end_cause(&mut stream, &mut decoder, &mut transport).await;
                    break (said.unwrap_or_else(|| e.cause()), false);
                }
            }
            msg = stream.next() => match msg {
                None | Some(Ok(Message::Close(_))) => break (Cause::Closed, false),
                Some(Ok(Message::Binary(bytes))) => decoder.push(&bytes),
                Some(Ok(_)) => {}
                Some(Err(e)) => break (ws_error(e).cause(), false),
            },
        }
    };
    let _ = sink.close().await;
    let cause = Box::new(cause);
    let _ = events.send(ConnEvent::Closed { cause, by_us }).await;
}
