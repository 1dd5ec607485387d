//! Binary XML nodes: our own `Node` type and the facade over `wacore-binary`'s codec.
//!
//! Every other module speaks `Node`; only this file knows the codec crate, so swapping or
//! upgrading it touches nothing else. Encoding writes the one-byte frame flag in front
//! (0 = plain); decoding reads it and inflates zlib bodies (flag bit 2).

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

/// Why a node could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("empty node frame")]
    Empty,
    #[error("compressed node body could not be inflated: {0}")]
    Inflate(String),
    #[error("malformed node: {0}")]
    Malformed(String),
    #[error("node could not be encoded: {0}")]
    Encode(String),
}

/// Encodes a node into a frame payload (flag byte 0 then the binary XML).
pub fn encode(node: &Node) -> Result<Vec<u8>, NodeError> {
    let _ = node;
    Err(NodeError::Encode("not built yet".into()))
}

/// Decodes a frame payload (flag byte then binary XML, zlib-inflated when bit 2 is set).
pub fn decode(payload: &[u8]) -> Result<Node, NodeError> {
    let _ = payload;
    Err(NodeError::Empty)
}
