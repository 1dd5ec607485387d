//! Typed stanzas: how a connection ends (PROTOCOL.md section 7) as a `Cause` with its code,
//! what a received node means to the client (`Incoming`), and builders for the nodes both
//! the client and the simulated server send, so the two sides agree byte for byte.

use std::fmt;

use crate::wa::node::Node;

/// The server's address, as `to`/`from` of iqs.
pub const SERVER: &str = "s.whatsapp.net";

/// Why a connection ended, with the numeric code clients report for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// 440: another client logged in with these credentials (`conflict type="replaced"`).
    Conflict,
    /// 401: logged out or device removed.
    LoggedOut,
    /// 515: restart required (normal right after pairing).
    RestartRequired,
    /// 500 or 503 (or another server code): the server failed or is unavailable.
    Server(u16),
    /// 403: account locked.
    Locked,
    /// 406: account banned.
    Banned,
    /// 402: temporary ban, with the expiry in seconds from now when the server gave one.
    TempBanned { expires_s: Option<u64> },
    /// 405: client version outdated.
    ClientOutdated,
    /// 411: multi-device mismatch (`<ib><downgrade_webclient/>`).
    Mismatch,
    /// 428: the stream ended (`xmlstreamend`) or the socket closed.
    Closed,
    /// 408: keepalive unanswered, connect or query timeout.
    TimedOut(String),
    /// 408: the network failed (DNS, refused, reset, TLS), with the OS's words.
    Network(String),
    /// 408: the session's proxy could not be reached or refused the tunnel (unreachable,
    /// bad credentials, a SOCKS reply code, a `CONNECT` answered other than 200). Retried
    /// like a network failure; the words name the proxy with its password hidden.
    Proxy(String),
    /// A code-less `<stream:error>` whose child is not a conflict: the child's tag
    /// (`ack` when a stanza went unacked, `xml-not-well-formed`, ...) and its `id`, if any.
    /// Reported as 500 like the reference clients do, but named after the child.
    StreamError { child: String, id: Option<String> },
    /// 409: the server refused the registration's user agent (`<failure reason="409">`).
    UserAgentRejected,
    /// The ClientPayload could not be built from the stored credentials (a local bug or
    /// damaged credentials, not a network outage).
    Payload(String),
    /// Malformed bytes or an impossible message from the server (reported as 500).
    Protocol(String),
    /// A failure reason this client does not know.
    UnknownFailure(u16),
}

impl Cause {
    /// The numeric code clients report for this cause.
    pub fn code(&self) -> u16 {
        match self {
            Cause::Conflict => 440,
            Cause::LoggedOut => 401,
            Cause::RestartRequired => 515,
            Cause::Server(code) => *code,
            Cause::Locked => 403,
            Cause::Banned => 406,
            Cause::TempBanned { .. } => 402,
            Cause::ClientOutdated => 405,
            Cause::Mismatch => 411,
            Cause::Closed => 428,
            Cause::TimedOut(_) | Cause::Network(_) | Cause::Proxy(_) => 408,
            Cause::StreamError { .. } | Cause::Payload(_) => 500,
            Cause::UserAgentRejected => 409,
            Cause::Protocol(_) => 500,
            Cause::UnknownFailure(code) => *code,
        }
    }

    /// A short lower-case name for tables, metrics labels and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Cause::Conflict => "conflict",
            Cause::LoggedOut => "logged_out",
            Cause::RestartRequired => "restart_required",
            Cause::Server(_) => "server_error",
            Cause::Locked => "locked",
            Cause::Banned => "banned",
            Cause::TempBanned { .. } => "temp_banned",
            Cause::ClientOutdated => "client_outdated",
            Cause::Mismatch => "mismatch",
            Cause::Closed => "closed",
            Cause::TimedOut(_) => "timed_out",
            Cause::Network(_) => "network_error",
            Cause::Proxy(_) => "proxy_refused",
            Cause::StreamError { child, .. } => match child.as_str() {
                "ack" => "stream_error_ack",
                "xml-not-well-formed" => "stream_error_xml_not_well_formed",
                _ => "stream_error",
            },
            Cause::UserAgentRejected => "user_agent_rejected",
            Cause::Payload(_) => "payload_error",
            Cause::Protocol(_) => "protocol_error",
            Cause::UnknownFailure(_) => "failure",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::TimedOut(why)
            | Cause::Protocol(why)
            | Cause::Network(why)
            | Cause::Payload(why) => {
                write!(f, "{} ({}): {why}", self.name(), self.code())
            }
            Cause::StreamError { child, id } => {
                write!(f, "{} ({}): <{child}", self.name(), self.code())?;
                if let Some(id) = id {
                    write!(f, " id={id}")?;
                }
                f.write_str("/>")
            }
            Cause::Proxy(why) => write!(f, "proxy refused: {why}"),
            Cause::TempBanned { expires_s: Some(s) } => write!(f, "temp_banned (402) for {s}s"),
            _ => write!(f, "{} ({})", self.name(), self.code()),
        }
    }
}

// ---------------------------------------------------------------------------
// How a connection ends
// ---------------------------------------------------------------------------

/// The cause a node announces when it ends the connection (PROTOCOL.md section 7), or `None`
/// when the node is not one that ends it.
pub fn end_cause(node: &Node) -> Option<Cause> {
    match node.tag.as_str() {
        "stream:error" => Some(stream_error_cause(node)),
        "failure" => Some(failure_cause(node)),
        "ib" if node.get_child("downgrade_webclient").is_some() => Some(Cause::Mismatch),
        "xmlstreamend" => Some(Cause::Closed),
        _ => None,
    }
}

/// A `code` attribute wins over the child and is kept as the server said it (an unknown
/// code stays itself); without one, the `conflict` child decides, and any other child names
/// the cause (`<ack id=..>` -> `stream_error_ack`).
fn stream_error_cause(node: &Node) -> Cause {
    let code = node.get_attr("code").and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(401) => return Cause::LoggedOut,
        Some(440) => return Cause::Conflict,
        Some(515) => return Cause::RestartRequired,
        Some(code) => return Cause::Server(code),
        None => {}
    }
    match node.get_child("conflict").map(|c| c.get_attr("type")) {
        Some(Some("device_removed")) => Cause::LoggedOut,
        // `replaced`, or a conflict of a type we do not know: another client took over.
        Some(_) => Cause::Conflict,
        None => match node.nodes().first() {
            Some(child) => Cause::StreamError {
                child: child.tag.clone(),
                id: child.get_attr("id").map(str::to_owned),
            },
            None => Cause::Server(500),
        },
    }
}

/// `<failure reason=N>`; a temporary ban (402) carries its length in seconds in `expire`
/// (whatsmeow reads the same attribute, with the ban reason in `code`).
fn failure_cause(node: &Node) -> Cause {
    let Some(reason) = node.get_attr("reason").and_then(|r| r.parse::<u16>().ok()) else {
        return Cause::Protocol("failure without a numeric reason".into());
    };
    match reason {
        401 => Cause::LoggedOut,
        402 => Cause::TempBanned {
            expires_s: node.get_attr("expire").and_then(|e| e.parse().ok()),
        },
        403 => Cause::Locked,
        405 => Cause::ClientOutdated,
        406 => Cause::Banned,
        409 => Cause::UserAgentRejected,
        other => Cause::UnknownFailure(other),
    }
}

// ---------------------------------------------------------------------------
// What a received node means to the client
// ---------------------------------------------------------------------------

/// A received node, sorted by what the client must do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `<success>`: logged in and online.
    Success {
        lid: Option<String>,
        t: Option<String>,
    },
    /// `<iq type="set"><pair-device><ref>..`: show these QR refs (ack with `iq_result(id)`).
    PairDevice { id: String, refs: Vec<String> },
    /// `<iq type="set"><pair-success>..`: the phone paired; `node` is the whole iq, as
    /// `pair::parse_pair_success` reads it.
    PairSuccess { id: String, node: Node },
    /// `<iq type="result">`: the answer to one of our iqs; `node` is the whole iq.
    IqResult { id: String, node: Node },
    /// `<iq type="error"><error code text/>`: an iq of ours failed (code 0 when none given).
    IqError { id: String, code: u16, text: String },
    /// `<iq type="get" xmlns="urn:xmpp:ping">`: the server pings us; answer `iq_result(id)`.
    Ping { id: String },
    /// The connection is ending (see [`end_cause`]).
    End(Cause),
    /// Any other `<ib>` (offline counts, edge routing, ...).
    Ib(Node),
    /// `<notification>`.
    Notification(Node),
    /// Anything else (messages, receipts, other iqs, ...).
    Other(Node),
}

/// Sorts a received node for the client.
pub fn classify(node: Node) -> Incoming {
    if let Some(cause) = end_cause(&node) {
        return Incoming::End(cause);
    }
    match node.tag.as_str() {
        "success" => Incoming::Success {
            lid: node.get_attr("lid").map(str::to_owned),
            t: node.get_attr("t").map(str::to_owned),
        },
        "iq" => classify_iq(node),
        "ib" => Incoming::Ib(node),
        "notification" => Incoming::Notification(node),
        _ => Incoming::Other(node),
    }
}

fn classify_iq(node: Node) -> Incoming {
    let id = node.get_attr("id").unwrap_or_default().to_owned();
    match node.get_attr("type") {
        Some("result") => return Incoming::IqResult { id, node },
        Some("error") => {
            let error = node.get_child("error");
            let code = error
                .and_then(|e| e.get_attr("code"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let text = error
                .and_then(|e| e.get_attr("text"))
                .unwrap_or_default()
                .to_owned();
            return Incoming::IqError { id, code, text };
        }
        Some("get") if node.get_attr("xmlns") == Some("urn:xmpp:ping") => {
            return Incoming::Ping { id };
        }
        _ => {}
    }
    if let Some(pair) = node.get_child("pair-device") {
        let refs = pair
            .children_named("ref")
            .filter_map(|r| r.content_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        return Incoming::PairDevice { id, refs };
    }
    if node.get_child("pair-success").is_some() {
        return Incoming::PairSuccess { id, node };
    }
    Incoming::Other(node)
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/// Client keepalive: `<iq id to="s.whatsapp.net" type="get" xmlns="w:p"><ping/></iq>`.
pub fn ping(id: &str) -> Node {
    Node::new("iq")
        .attr("id", id)
        .attr("to", SERVER)
        .attr("type", "get")
        .attr("xmlns", "w:p")
        .child(Node::new("ping"))
}

/// Positive answer to an iq: `<iq type="result" id to="s.whatsapp.net"/>`.
pub fn iq_result(id: &str) -> Node {
    Node::new("iq")
        .attr("type", "result")
        .attr("id", id)
        .attr("to", SERVER)
}

/// Negative answer to an iq:
/// `<iq type="error" id to="s.whatsapp.net"><error code text/></iq>`.
pub fn iq_error(id: &str, code: u16, text: &str) -> Node {
    Node::new("iq")
        .attr("type", "error")
        .attr("id", id)
        .attr("to", SERVER)
        .child(
            Node::new("error")
                .attr("code", code.to_string())
                .attr("text", text),
        )
}

/// How many pre-keys the server holds:
/// `<iq id xmlns="encrypt" type="get" to="s.whatsapp.net"><count/></iq>`.
pub fn prekey_count_query(id: &str) -> Node {
    Node::new("iq")
        .attr("id", id)
        .attr("xmlns", "encrypt")
        .attr("type", "get")
        .attr("to", SERVER)
        .child(Node::new("count"))
}

/// Marks this device active after login:
/// `<iq id xmlns="passive" type="set" to="s.whatsapp.net"><active/></iq>`.
pub fn passive_active(id: &str) -> Node {
    Node::new("iq")
        .attr("id", id)
        .attr("xmlns", "passive")
        .attr("type", "set")
        .attr("to", SERVER)
        .child(Node::new("active"))
}

/// Server -> client QR refs: `<iq from="s.whatsapp.net" type="set" id xmlns="md">
/// <pair-device><ref>R1</ref>..</pair-device></iq>`, each ref as raw bytes like the real
/// server sends them (whatsmeow also requires `from` to be the server).
pub fn pair_device(id: &str, refs: &[String]) -> Node {
    let refs = refs
        .iter()
        .map(|r| Node::new("ref").bytes(r.as_bytes()))
        .collect();
    Node::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .child(Node::new("pair-device").children(refs))
}

/// `<stream:error code="N"/>` (515 restart required, 503/500 server errors, ...).
pub fn stream_error(code: u16) -> Node {
    Node::new("stream:error").attr("code", code.to_string())
}

/// Another client took over: `<stream:error><conflict type="replaced"/></stream:error>`.
pub fn conflict_replaced() -> Node {
    Node::new("stream:error").child(Node::new("conflict").attr("type", "replaced"))
}

/// The phone removed this device:
/// `<stream:error code="401"><conflict type="device_removed"/></stream:error>`.
pub fn device_removed() -> Node {
    Node::new("stream:error")
        .attr("code", "401")
        .child(Node::new("conflict").attr("type", "device_removed"))
}

/// Login refused: `<failure reason="N" ..extra/>` (e.g. `expire` for 402, `location` for 405).
pub fn failure(reason: u16, extra: &[(&str, &str)]) -> Node {
    extra.iter().fold(
        Node::new("failure").attr("reason", reason.to_string()),
        |n, (k, v)| n.attr(*k, *v),
    )
}

/// The stream ends: `<xmlstreamend/>`.
pub fn xmlstreamend() -> Node {
    Node::new("xmlstreamend")
}

/// Login accepted: `<success t=".." lid=".."/>` (`lid` left out when `None`).
pub fn success(lid: Option<&str>, t: u64) -> Node {
    let node = Node::new("success").attr("t", t.to_string());
    match lid {
        Some(lid) => node.attr("lid", lid),
        None => node,
    }
}

/// A code-less stream error naming an unacked stanza:
/// `<stream:error><ack id=".."/></stream:error>`.
pub fn stream_error_ack(id: &str) -> Node {
    Node::new("stream:error").child(Node::new("ack").attr("id", id))
}

/// Multi-device mismatch: `<ib><downgrade_webclient/></ib>`.
pub fn downgrade_webclient() -> Node {
    Node::new("ib").child(Node::new("downgrade_webclient"))
}

#[cfg(test)]
#[path = "stanza_tests.rs"]
mod tests;
