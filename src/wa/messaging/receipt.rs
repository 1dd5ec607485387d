//! Receipts (§4.4, §4.5, §5): the receipt a receiver sends for a message (delivered, read,
//! played, own-device `sender`), a receipt for several ids, the retry receipt with optional
//! keys, and reading each of them back.

use super::stanza::Incoming;
use super::{MessagingError, attr, jid_attr, opt_jid_attr};
use crate::wa::creds::KEY_TYPE_DJB;
use crate::wa::jid::Jid;
use crate::wa::node::Node;
use crate::wa::prekey::{self, OneTimeKey, UploadedSignedKey};
use crate::wa::signal::Bundle;

/// Retry receipts stop at this count (both reference clients).
pub const MAX_RETRY_COUNT: u32 = 5;

/// A receipt's `type`; `Delivered` has none.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReceiptKind {
    Delivered,
    Inactive,
    Sender,
    PeerMsg,
    HistSync,
    Read,
    ReadSelf,
    Played,
    PlayedSelf,
    Retry,
    Other(String),
}

impl ReceiptKind {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            None | Some("") => ReceiptKind::Delivered,
            Some("inactive") => ReceiptKind::Inactive,
            Some("sender") => ReceiptKind::Sender,
            Some("peer_msg") => ReceiptKind::PeerMsg,
            Some("hist_sync") => ReceiptKind::HistSync,
            Some("read") => ReceiptKind::Read,
            Some("read-self") => ReceiptKind::ReadSelf,
            Some("played") => ReceiptKind::Played,
            Some("played-self") => ReceiptKind::PlayedSelf,
            Some("retry") => ReceiptKind::Retry,
            Some(other) => ReceiptKind::Other(other.to_string()),
        }
    }

    /// The `type` attribute, `None` for a plain delivery receipt.
    pub fn as_attr(&self) -> Option<&str> {
        Some(match self {
            ReceiptKind::Delivered => return None,
            ReceiptKind::Inactive => "inactive",
            ReceiptKind::Sender => "sender",
            ReceiptKind::PeerMsg => "peer_msg",
            ReceiptKind::HistSync => "hist_sync",
            ReceiptKind::Read => "read",
            ReceiptKind::ReadSelf => "read-self",
            ReceiptKind::Played => "played",
            ReceiptKind::PlayedSelf => "played-self",
            ReceiptKind::Retry => "retry",
            ReceiptKind::Other(s) => s,
        })
    }
}

/// The receipt for a received message: `<receipt id to=from [participant] [recipient]
/// [type]/>`. A message from one of our own devices (it has `recipient`) gets `sender`
/// whatever `kind` says, as both reference clients do.
pub fn receipt_for(message: &Incoming, kind: &ReceiptKind) -> Node {
    let kind = if message.recipient.is_some() && *kind == ReceiptKind::Delivered {
        &ReceiptKind::Sender
    } else {
        kind
    };
    let mut n = Node::new("receipt")
        .attr("id", message.id.as_str())
        .attr("to", message.from.to_string());
    if let Some(p) = &message.participant {
        n.set_attr("participant", p.to_string());
    }
    if let Some(r) = &message.recipient {
        n.set_attr("recipient", r.to_string());
    }
    if let Some(t) = kind.as_attr() {
        n.set_attr("type", t);
    }
    n
}

/// A receipt for several messages of one chat: `id` = the first, `<list><item id/>…</list>`
/// for the rest; `t` for read and played receipts.
pub fn receipt_for_ids(to: &Jid, ids: &[String], kind: &ReceiptKind, t: Option<u64>) -> Node {
    let mut n = Node::new("receipt").attr("to", to.to_string());
    if let Some(first) = ids.first() {
        n.set_attr("id", first.as_str());
    }
    if let Some(t) = t {
        n.set_attr("t", t.to_string());
    }
    if let Some(kind) = kind.as_attr() {
        n.set_attr("type", kind);
    }
    if ids.len() > 1 {
        let items = ids[1..]
            .iter()
            .map(|id| Node::new("item").attr("id", id.as_str()))
            .collect();
        n = n.child(Node::new("list").children(items));
    }
    n
}

/// A receipt as read by whoever gets it (the server from a client, or a client from the
/// server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// `from` when the server delivers it, `to` when a client sends it.
    pub peer: Jid,
    /// Every id: `id` first, then the `<list>` items.
    pub ids: Vec<String>,
    pub kind: ReceiptKind,
    pub t: Option<u64>,
    pub participant: Option<Jid>,
    pub recipient: Option<Jid>,
}

impl Receipt {
    /// The main `id` (the one to ack).
    pub fn id(&self) -> &str {
        self.ids.first().map_or("", String::as_str)
    }

    /// Reads a receipt; `peer_field` is `from` (client side) or `to` (server side).
    pub fn parse(node: &Node, peer_field: &'static str) -> Result<Receipt, MessagingError> {
        const S: &str = "receipt";
        let mut ids = vec![attr(node, S, "id")?.to_string()];
        if let Some(list) = node.get_child("list") {
            ids.extend(
                list.children_named("item")
                    .filter_map(|i| i.get_attr("id"))
                    .map(str::to_string),
            );
        }
        Ok(Receipt {
            peer: jid_attr(node, S, peer_field)?,
            ids,
            kind: ReceiptKind::parse(node.get_attr("type")),
            t: node.get_attr("t").and_then(|t| t.parse().ok()),
            participant: opt_jid_attr(node, S, "participant")?,
            recipient: opt_jid_attr(node, S, "recipient")?,
        })
    }

    /// The receipt as the server forwards it to the original sender: `from` = the device
    /// that sent it, the rest copied, `t` = `t` when the client gave none.
    pub fn forwarded(&self, from: &Jid, t: u64) -> Node {
        let mut n = Node::new("receipt")
            .attr("from", from.to_string())
            .attr("id", self.id())
            .attr("t", self.t.unwrap_or(t).to_string());
        if let Some(kind) = self.kind.as_attr() {
            n.set_attr("type", kind);
        }
        for (key, value) in [
            ("participant", &self.participant),
            ("recipient", &self.recipient),
        ] {
            if let Some(jid) = value {
                n.set_attr(key, jid.to_string());
            }
        }
        if self.ids.len() > 1 {
            let items = self.ids[1..]
                .iter()
                .map(|id| Node::new("item").attr("id", id.as_str()))
                .collect();
            n = n.child(Node::new("list").children(items));
        }
        n
    }
}

/// The keys a retry receipt carries so the sender can start a fresh session (§4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryKeys {
    pub identity: [u8; 32],
    pub one_time: OneTimeKey,
    pub signed: UploadedSignedKey,
    /// Our `ADVSignedDeviceIdentity` with the account key.
    pub device_identity: Vec<u8>,
}

/// `<receipt id to=from type=retry [participant] [recipient]><retry count id t v=1/>
/// <registration>{4 B}</registration>[<keys>…</keys>]</receipt>`.
pub fn retry_receipt(
    message: &Incoming,
    count: u32,
    registration_id: u32,
    keys: Option<&RetryKeys>,
) -> Node {
    let mut n = receipt_for(message, &ReceiptKind::Retry);
    // An own-device message's retry is still type=retry, not sender.
    n.set_attr("type", "retry");
    let mut children = vec![
        Node::new("retry")
            .attr("count", count.to_string())
            .attr("id", message.id.as_str())
            .attr("t", message.t.to_string())
            .attr("v", "1"),
        Node::new("registration").bytes(registration_id.to_be_bytes().to_vec()),
    ];
    if let Some(k) = keys {
        children.push(Node::new("keys").children(vec![
            Node::new("type").bytes(vec![KEY_TYPE_DJB]),
            Node::new("identity").bytes(k.identity.to_vec()),
            prekey::one_time_key_node(&k.one_time),
            prekey::signed_key_node(&k.signed),
            Node::new("device-identity").bytes(k.device_identity.clone()),
        ]));
    }
    n.children(children)
}

/// A retry receipt as the original sender reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryRequest {
    pub receipt: Receipt,
    /// `<retry count>`.
    pub count: u32,
    /// `<retry t>`: the original message's time.
    pub t: Option<u64>,
    pub registration_id: u32,
    /// A bundle to start a fresh session with, when `<keys>` is present, and the
    /// requester's device identity.
    pub keys: Option<(Bundle, Option<Vec<u8>>)>,
}

/// Reads a retry receipt (`peer_field` as in [`Receipt::parse`]).
pub fn parse_retry(node: &Node, peer_field: &'static str) -> Result<RetryRequest, MessagingError> {
    const S: &str = "retry receipt";
    let receipt = Receipt::parse(node, peer_field)?;
    let retry = node.get_child("retry").ok_or(MessagingError::Missing {
        stanza: S,
        field: "<retry>",
    })?;
    let count = attr(retry, S, "count")?;
    let wrap = |source| MessagingError::Bundle {
        jid: receipt.peer.to_string(),
        source,
    };
    let registration_id =
        u32::from_be_bytes(prekey::fixed::<4>(node, "registration").map_err(wrap)?);
    let keys = match node.get_child("keys") {
        None => None,
        Some(k) => {
            let skey = k
                .get_child("skey")
                .ok_or(prekey::PreKeyError::Missing("skey"))
                .map_err(wrap)?;
            let key = k
                .get_child("key")
                .ok_or(prekey::PreKeyError::Missing("key"))
                .map_err(wrap)?;
            let bundle = Bundle {
                registration_id,
                identity: prekey::fixed::<32>(k, "identity").map_err(wrap)?,
                signed: prekey::signed_key(skey).map_err(wrap)?,
                one_time: Some(prekey::one_time_key(key).map_err(wrap)?),
            };
            let identity = k
                .get_child("device-identity")
                .and_then(Node::content_bytes)
                .map(<[u8]>::to_vec);
            Some((bundle, identity))
        }
    };
    Ok(RetryRequest {
        count: count.parse().map_err(|_| MessagingError::Invalid {
            stanza: S,
            field: "count",
            value: count.to_string(),
        })?,
        t: retry.get_attr("t").and_then(|t| t.parse().ok()),
        registration_id,
        keys,
        receipt,
    })
}
