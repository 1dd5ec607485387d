//! Binary XML nodes: our own `Node` type and the facade over `wacore-binary`'s codec.
//!
//! Every other module speaks `Node`; only this file knows the codec crate, so swapping or
//! upgrading it touches nothing else. Encoding writes the one-byte frame flag in front
//! (0 = plain, 2 = zlib body); decoding reads it and inflates zlib bodies (flag bit 2) up to
//! 16 MiB.
//!
//! What survives a round trip, exactly:
//! - Attribute values that are JIDs (`user@server`, `user:device@server`, and the bare
//!   servers `s.whatsapp.net` and `g.us`) go out in the wire's JID forms (`JID_PAIR`, or
//!   `AD_JID` when a device is set), as WhatsApp Web and whatsmeow send them; they decode
//!   back to the same string. Any other value containing `@` is refused with
//!   [`NodeError::Encode`], because the codec would read it as a JID and mangle it.
//! - Tags and attribute names must not contain `@` (same reason).
//! - The wire has no text type of its own, only dictionary tokens, packed digit/hex strings,
//!   JIDs and raw bytes. So [`Content::Text`] goes out as a token or packed string when it is
//!   one, and as raw bytes otherwise; decoding gives [`Content::Text`] for tokens, packed
//!   strings and JIDs, and [`Content::Bytes`] for raw bytes. A `Text("hello")` therefore
//!   comes back as `Bytes(b"hello")`; read text content with [`Node::content_text`], which
//!   accepts both.
//! - An empty child list is sent as no content at all and decodes as [`Content::None`].
//!
//! Hostile input never panics and never allocates without bound: before the codec sees a
//! body, a non-allocating walk checks that every declared length and count is backed by
//! real bytes, that nodes nest at most 128 deep and that JIDs do not nest (the codec would
//! otherwise recurse on a chain of JID markers until the stack overflows).

use std::fmt;

/// What a node holds between its tags.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Content {
    #[default]
    None,
    Nodes(Vec<Node>),
    Bytes(Vec<u8>),
    Text(String),
}

/// One binary XML element. Attribute order is kept as built or decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub tag: String,
    pub attrs: Vec<(String, String)>,
    pub content: Content,
}

impl Node {
    /// A node with a tag and nothing else.
    pub fn new(tag: impl Into<String>) -> Self {
        Node {
            tag: tag.into(),
            attrs: Vec::new(),
            content: Content::None,
        }
    }

    /// Adds (or replaces) an attribute; builder style.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(key, value);
        self
    }

    /// Sets an attribute in place, replacing an earlier value of the same key.
    pub fn set_attr(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key, value)),
        }
    }

    /// Sets the children; builder style.
    pub fn children(mut self, children: Vec<Node>) -> Self {
        self.content = Content::Nodes(children);
        self
    }

    /// Adds one child; builder style.
    pub fn child(mut self, child: Node) -> Self {
        match &mut self.content {
            Content::Nodes(list) => list.push(child),
            _ => self.content = Content::Nodes(vec![child]),
        }
        self
    }

    /// Sets raw bytes as content; builder style.
    pub fn bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.content = Content::Bytes(bytes.into());
        self
    }

    /// Sets text as content; builder style.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.content = Content::Text(text.into());
        self
    }

    /// The value of attribute `key`, if present.
    pub fn get_attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The child nodes (empty when the content is not a list).
    pub fn nodes(&self) -> &[Node] {
        match &self.content {
            Content::Nodes(list) => list,
            _ => &[],
        }
    }

    /// The first child with this tag.
    pub fn get_child(&self, tag: &str) -> Option<&Node> {
        self.nodes().iter().find(|n| n.tag == tag)
    }

    /// Every child with this tag.
    pub fn children_named<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes().iter().filter(move |n| n.tag == tag)
    }

    /// The content as bytes: raw bytes, or the UTF-8 of text content.
    pub fn content_bytes(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Bytes(b) => Some(b),
            Content::Text(t) => Some(t.as_bytes()),
            _ => None,
        }
    }

    /// The content as text: text content, or raw bytes that are valid UTF-8 (the wire sends
    /// most text as raw bytes, see the module notes).
    pub fn content_text(&self) -> Option<&str> {
        match &self.content {
            Content::Text(t) => Some(t),
            Content::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// XML-like rendering for logs and test failures. Byte content shows only its length,
/// so key material inside a node never reaches a log line through `Debug`.
impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}", self.tag)?;
        for (k, v) in &self.attrs {
            write!(f, " {k}=\"{v}\"")?;
        }
        match &self.content {
            Content::None => write!(f, "/>"),
            Content::Bytes(b) => write!(f, ">[{} bytes]</{}>", b.len(), self.tag),
            Content::Text(t) => write!(f, ">{t}</{}>", self.tag),
            Content::Nodes(list) => {
                write!(f, ">")?;
                for n in list {
                    write!(f, "{n:?}")?;
                }
                write!(f, "</{}>", self.tag)
            }
        }
    }
}

/// Like `Node`'s rendering: byte content shows only its length.
impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::None => write!(f, "None"),
            Content::Nodes(list) => f.debug_tuple("Nodes").field(list).finish(),
            Content::Bytes(b) => write!(f, "Bytes([{} bytes])", b.len()),
            Content::Text(t) => f.debug_tuple("Text").field(t).finish(),
        }
    }
}

/// Why a node could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("empty node frame")]
    Empty,
    #[error("compressed node body could not be inflated: {0}")]
    Inflate(String),
    #[error("compressed node body inflates to more than {limit} bytes")]
    InflatedTooLarge { limit: usize },
    #[error("malformed node: {0}")]
    Malformed(String),
    #[error("node could not be encoded: {0}")]
    Encode(String),
}

/// The largest body a compressed frame may inflate to (the frame size cap, 16 MiB).
pub const MAX_INFLATED: usize = 1 << 24;

/// How deep nodes may nest; the codec refuses deeper frames, so we refuse to write them.
const MAX_DEPTH: usize = 128;

/// Frame flag: the body is zlib-deflated.
const FLAG_COMPRESSED: u8 = 2;

/// Encodes a node into a frame payload (flag byte 0 then the binary XML).
pub fn encode(node: &Node) -> Result<Vec<u8>, NodeError> {
    let wire = to_wire(node, 0)?;
    // `marshal` writes the plain flag byte (0) itself before the body.
    wacore_binary::marshal(&wire).map_err(|e| NodeError::Encode(e.to_string()))
}

/// Encodes a node into a compressed frame payload (flag byte 2 then the zlib-deflated body).
pub fn encode_compressed(node: &Node) -> Result<Vec<u8>, NodeError> {
    use std::io::Write;

    let plain = encode(node)?;
    let body = plain.get(1..).unwrap_or_default();
    let mut out = vec![FLAG_COMPRESSED];
    let mut deflater = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::default());
    deflater
        .write_all(body)
        .and_then(|()| deflater.finish().map(|_| ()))
        .map_err(|e| NodeError::Encode(format!("deflate failed: {e}")))?;
    Ok(out)
}

/// Decodes a frame payload (flag byte then binary XML, zlib-inflated when bit 2 is set).
pub fn decode(payload: &[u8]) -> Result<Node, NodeError> {
    let (&flag, body) = payload.split_first().ok_or(NodeError::Empty)?;
    let inflated;
    let body = if flag & FLAG_COMPRESSED != 0 {
        inflated = inflate(body)?;
        inflated.as_slice()
    } else {
        body
    };
    if body.is_empty() {
        return Err(NodeError::Malformed("no node after the flag byte".into()));
    }
    check_shape(body)?;
    let wire = wacore_binary::marshal::unmarshal_ref(body)
        .map_err(|e| NodeError::Malformed(e.to_string()))?;
    Ok(from_wire(&wire))
}

/// Inflates a zlib body, refusing to produce more than [`MAX_INFLATED`] bytes.
fn inflate(body: &[u8]) -> Result<Vec<u8>, NodeError> {
    use std::io::Read;

    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| NodeError::Inflate(e.to_string()))?;
    if out.len() > MAX_INFLATED {
        return Err(NodeError::InflatedTooLarge {
            limit: MAX_INFLATED,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Our Node -> wacore's Node
// ---------------------------------------------------------------------------

use wacore_binary::jid::{Jid, Server};
use wacore_binary::node::{Attrs, NodeContent, NodeValue};

fn to_wire(node: &Node, depth: usize) -> Result<wacore_binary::Node, NodeError> {
    if depth >= MAX_DEPTH {
        return Err(NodeError::Encode(format!(
            "nodes nest deeper than {MAX_DEPTH} levels"
        )));
    }
    plain_name(&node.tag, "tag")?;
    let mut attrs = Attrs::with_capacity(node.attrs.len());
    for (key, value) in &node.attrs {
        plain_name(key, "attribute name")?;
        attrs.push(key.clone(), attr_value(key, value)?);
    }
    let content = match &node.content {
        Content::None => None,
        Content::Nodes(list) if list.is_empty() => None,
        Content::Nodes(list) => Some(NodeContent::Nodes(
            list.iter()
                .map(|child| to_wire(child, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        Content::Bytes(bytes) => Some(NodeContent::Bytes(bytes.clone())),
        Content::Text(text) if is_compact_text(text) => {
            Some(NodeContent::String(text.as_str().into()))
        }
        Content::Text(text) => Some(NodeContent::Bytes(text.as_bytes().to_vec())),
    };
    Ok(wacore_binary::Node::new(node.tag.clone(), attrs, content))
}

/// Tags and attribute names are written as plain strings; one holding `@` would be taken
/// for a JID by the codec.
fn plain_name(name: &str, what: &str) -> Result<(), NodeError> {
    if name.contains('@') {
        return Err(NodeError::Encode(format!(
            "{what} {name:?} contains '@', which the wire reads as a JID"
        )));
    }
    Ok(())
}

fn attr_value(key: &str, value: &str) -> Result<NodeValue, NodeError> {
    if let Some(jid) = wire_jid(value) {
        return Ok(NodeValue::Jid(jid));
    }
    if value.contains('@') {
        return Err(NodeError::Encode(format!(
            "attribute {key}={value:?} contains '@' but is not a JID the wire can carry"
        )));
    }
    Ok(NodeValue::String(value.into()))
}

/// The JID to put on the wire for an attribute value, when the value is one and decodes
/// back to the very same string.
fn wire_jid(value: &str) -> Option<Jid> {
    // Bare servers: WhatsApp Web and whatsmeow send `to="s.whatsapp.net"` as a JID pair with
    // an empty user, not as the dictionary token. `lid`, `broadcast` and the like are left
    // alone: they also occur as plain values (`addressing_mode="lid"`).
    match value {
        "s.whatsapp.net" => return Some(Jid::new("", Server::Pn)),
        "g.us" => return Some(Jid::new("", Server::Group)),
        _ => {}
    }
    if !value.contains('@') {
        return None;
    }
    let parsed: Jid = value.parse().ok()?;
    // What the decoder rebuilds: AD_JID keeps user, server and a one-byte device; JID_PAIR
    // keeps user and server only. If that does not print back as `value`, the wire would
    // change the JID, so it is not carried.
    let ad = parsed.device > 0
        && matches!(
            parsed.server,
            Server::Pn | Server::Lid | Server::Hosted | Server::HostedLid
        );
    if ad && parsed.device > u16::from(u8::MAX) {
        return None;
    }
    let seen = Jid {
        user: parsed.user,
        server: parsed.server,
        agent: 0,
        device: if ad { parsed.device } else { 0 },
        integrator: 0,
    };
    (seen.to_string() == value).then_some(seen)
}

/// Whether text goes on the wire in a text form (dictionary token or packed digits/hex),
/// so that it decodes back as text.
fn is_compact_text(text: &str) -> bool {
    if wacore_binary::token::index_of_token(text).is_some() {
        return true;
    }
    let packable = !text.is_empty() && text.len() <= usize::from(wacore_binary::token::PACKED_MAX);
    let nibble = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.');
    let hex = text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    packable && (nibble || hex)
}

// ---------------------------------------------------------------------------
// wacore's NodeRef -> our Node
// ---------------------------------------------------------------------------

use wacore_binary::node::{NodeContentRef, NodeRef};

fn from_wire(wire: &NodeRef<'_>) -> Node {
    Node {
        tag: wire.tag.to_string(),
        attrs: wire
            .attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_str().into_owned()))
            .collect(),
        content: match wire.content.as_ref() {
            None => Content::None,
            Some(NodeContentRef::Bytes(b)) => Content::Bytes(b.to_vec()),
            Some(NodeContentRef::String(s)) => Content::Text(s.to_string()),
            Some(NodeContentRef::Nodes(list)) => {
                Content::Nodes(list.iter().map(from_wire).collect())
            }
        },
    }
}

// ---------------------------------------------------------------------------
// Shape check: a non-allocating walk over the body before the codec decodes it
// ---------------------------------------------------------------------------

use wacore_binary::token as tok;

/// Walks the body as the codec will, without allocating, so that the codec only ever sees
/// counts and lengths backed by real bytes (it reserves memory for a declared count before
/// reading it), nodes nested at most [`MAX_DEPTH`] deep, and JIDs whose parts are plain
/// strings (the codec recurses on nested JID markers without a limit).
fn check_shape(body: &[u8]) -> Result<(), NodeError> {
    let mut walk = Walk { data: body, pos: 0 };
    walk.node(0)
}

struct Walk<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Walk<'_> {
    fn eof() -> NodeError {
        NodeError::Malformed("node ends early".into())
    }

    fn byte(&mut self) -> Result<u8, NodeError> {
        let b = *self.data.get(self.pos).ok_or_else(Self::eof)?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, len: usize) -> Result<(), NodeError> {
        if self.data.len() - self.pos < len {
            return Err(Self::eof());
        }
        self.pos += len;
        Ok(())
    }

    fn be(&mut self, width: usize) -> Result<usize, NodeError> {
        let mut value = 0usize;
        for _ in 0..width {
            value = (value << 8) | usize::from(self.byte()?);
        }
        Ok(value)
    }

    fn list_size(&mut self, marker: u8) -> Result<usize, NodeError> {
        match marker {
            tok::LIST_EMPTY => Ok(0),
            tok::LIST_8 => self.be(1),
            tok::LIST_16 => self.be(2),
            other => Err(NodeError::Malformed(format!(
                "expected a list, found byte {other}"
            ))),
        }
    }

    /// Checks that `count` items of at least one byte each can still follow.
    fn backed(&self, count: usize) -> Result<(), NodeError> {
        if count > self.data.len() - self.pos {
            return Err(NodeError::Malformed(format!(
                "declares {count} items but only {} bytes follow",
                self.data.len() - self.pos
            )));
        }
        Ok(())
    }

    fn node(&mut self, depth: usize) -> Result<(), NodeError> {
        if depth >= MAX_DEPTH {
            return Err(NodeError::Malformed(format!(
                "nodes nest deeper than {MAX_DEPTH} levels"
            )));
        }
        let marker = self.byte()?;
        let size = self.list_size(marker)?;
        if size == 0 {
            return Err(NodeError::Malformed("node without a tag".into()));
        }
        self.backed(size)?;
        let marker = self.byte()?;
        self.string(marker, false)?;
        for _ in 0..(size - 1) / 2 {
            let key = self.byte()?;
            self.string(key, false)?;
            let value = self.byte()?;
            self.string(value, false)?;
        }
        if size % 2 == 0 {
            let marker = self.byte()?;
            match marker {
                tok::LIST_8 | tok::LIST_16 => {
                    let children = self.list_size(marker)?;
                    self.backed(children)?;
                    for _ in 0..children {
                        self.node(depth + 1)?;
                    }
                }
                other => self.string(other, false)?,
            }
        }
        Ok(())
    }

    /// One string-like value that starts with `marker`; `in_jid` when it is part of a JID.
    fn string(&mut self, marker: u8, in_jid: bool) -> Result<(), NodeError> {
        let is_jid = matches!(
            marker,
            tok::JID_PAIR | tok::AD_JID | tok::INTEROP_JID | tok::FB_JID
        );
        if is_jid && in_jid {
            return Err(NodeError::Malformed("a JID nested inside a JID".into()));
        }
        match marker {
            tok::BINARY_8 => {
                let len = self.be(1)?;
                self.skip(len)
            }
            tok::BINARY_20 => {
                let len = self.be(3)? & 0x0F_FFFF;
                self.skip(len)
            }
            tok::BINARY_32 => {
                let len = self.be(4)?;
                self.skip(len)
            }
            tok::NIBBLE_8 | tok::HEX_8 => {
                let len = self.be(1)? & 0x7F;
                self.skip(len)
            }
            tok::DICTIONARY_0..=tok::DICTIONARY_3 => self.skip(1),
            tok::JID_PAIR => {
                self.jid_part()?;
                self.jid_part()
            }
            tok::AD_JID => {
                self.skip(2)?;
                self.jid_part()
            }
            tok::INTEROP_JID => {
                self.jid_part()?;
                self.skip(4)?;
                self.jid_part()
            }
            tok::FB_JID => {
                self.jid_part()?;
                self.skip(2)?;
                self.jid_part()
            }
            // LIST_EMPTY and single-byte tokens; the codec checks that the token exists.
            _ => Ok(()),
        }
    }

    fn jid_part(&mut self) -> Result<(), NodeError> {
        let marker = self.byte()?;
        self.string(marker, true)
    }
}
