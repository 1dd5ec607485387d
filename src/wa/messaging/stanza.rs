//! The `<message>` stanza: what a sender sends (one `<to>` per device inside
//! `<participants>`, §3.5, or one `<enc>` for a retry resend, §4.6), what a receiver gets
//! (one `<enc>` per device, §4.1), and the server's `<ack class="message">` (§3.6).

use super::{MessagingError, attr, jid_attr, opt_jid_attr};
use crate::wa::jid::Jid;
use crate::wa::node::Node;
use crate::wa::signal::EncType;

/// One encrypted copy: `<enc v type [count]>{bytes}</enc>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Enc {
    /// `v`: 2 for padded plaintext.
    pub v: u8,
    /// `type` as sent (`pkmsg`, `msg`, `skmsg`, or something we do not know).
    pub kind: String,
    /// `count` on retry resends.
    pub count: Option<u32>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Enc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enc")
            .field("v", &self.v)
            .field("kind", &self.kind)
            .field("count", &self.count)
            .field(
                "ciphertext",
                &format_args!("[{} bytes]", self.ciphertext.len()),
            )
            .finish()
    }
}

impl Enc {
    pub fn new(enc_type: EncType, ciphertext: Vec<u8>) -> Self {
        Enc {
            v: 2,
            kind: enc_type.as_str().to_string(),
            count: None,
            ciphertext,
        }
    }

    pub fn enc_type(&self) -> Option<EncType> {
        EncType::parse(&self.kind)
    }

    pub fn node(&self) -> Node {
        let n = Node::new("enc")
            .attr("v", self.v.to_string())
            .attr("type", self.kind.as_str());
        let n = match self.count {
            Some(c) => n.attr("count", c.to_string()),
            None => n,
        };
        n.bytes(self.ciphertext.clone())
    }

    fn parse(node: &Node, stanza: &'static str) -> Result<Enc, MessagingError> {
        let v = node.get_attr("v").unwrap_or("2");
        Ok(Enc {
            v: v.parse().map_err(|_| MessagingError::Invalid {
                stanza,
                field: "enc v",
                value: v.to_string(),
            })?,
            kind: attr(node, stanza, "type")?.to_string(),
            count: node.get_attr("count").and_then(|c| c.parse().ok()),
            ciphertext: node
                .content_bytes()
                .ok_or(MessagingError::Missing {
                    stanza,
                    field: "<enc> bytes",
                })?
                .to_vec(),
        })
    }
}

/// A message as the sender puts it on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub id: String,
    /// The chat (bare user JID), or for a retry resend the one requesting device.
    pub to: Jid,
    /// `text` for text and protocol messages.
    pub kind: String,
    /// One copy per device. A retry resend has exactly one, sent as a bare `<enc>`.
    pub copies: Vec<(Jid, Enc)>,
    /// Our `ADVSignedDeviceIdentity` (with the account key); sent iff a copy is a pkmsg.
    pub device_identity: Option<Vec<u8>>,
    /// Set on a retry resend (`device_fanout="false"`, bare `<enc count>`).
    pub retry: bool,
}

impl Outgoing {
    /// Whether any copy opens a session.
    pub fn has_pkmsg(&self) -> bool {
        self.copies
            .iter()
            .any(|(_, e)| e.enc_type() == Some(EncType::PkMsg))
    }

    /// The stanza. Fan-out: `<message id to type><participants><to jid><enc/></to>…
    /// </participants>[<device-identity>]</message>`; retry: `<message id to type
    /// device_fanout="false"><enc count/>[<device-identity>]</message>`.
    pub fn node(&self) -> Node {
        let mut message = Node::new("message")
            .attr("id", self.id.as_str())
            .attr("to", self.to.to_string())
            .attr("type", self.kind.as_str());
        let mut children = Vec::new();
        if self.retry {
            message.set_attr("device_fanout", "false");
            children.extend(self.copies.iter().map(|(_, e)| e.node()));
        } else {
            let tos = self
                .copies
                .iter()
                .map(|(jid, e)| Node::new("to").attr("jid", jid.to_string()).child(e.node()))
                .collect();
            children.push(Node::new("participants").children(tos));
        }
        if self.has_pkmsg()
            && let Some(identity) = &self.device_identity
        {
            children.push(Node::new("device-identity").bytes(identity.clone()));
        }
        message.children(children)
    }

    /// Reads a message a client sent (server side).
    pub fn parse(node: &Node) -> Result<Outgoing, MessagingError> {
        const S: &str = "outgoing message";
        let to = jid_attr(node, S, "to")?;
        let mut copies = Vec::new();
        let retry = node.get_child("participants").is_none();
        if let Some(participants) = node.get_child("participants") {
            for t in participants.children_named("to") {
                let jid = jid_attr(t, S, "jid")?;
                let enc = t.get_child("enc").ok_or(MessagingError::Missing {
                    stanza: S,
                    field: "<to><enc>",
                })?;
                copies.push((jid, Enc::parse(enc, S)?));
            }
        } else {
            for enc in node.children_named("enc") {
                copies.push((to.clone(), Enc::parse(enc, S)?));
            }
        }
        if copies.is_empty() {
            return Err(MessagingError::Missing {
                stanza: S,
                field: "<participants> or <enc>",
            });
        }
        Ok(Outgoing {
            id: attr(node, S, "id")?.to_string(),
            to,
            kind: node.get_attr("type").unwrap_or("text").to_string(),
            copies,
            device_identity: node
                .get_child("device-identity")
                .and_then(Node::content_bytes)
                .map(<[u8]>::to_vec),
            retry,
        })
    }
}

/// A message as the server delivers it to one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub id: String,
    /// The sending device.
    pub from: Jid,
    pub t: u64,
    pub kind: String,
    /// Set when one of our own devices sent it: the chat it went to.
    pub recipient: Option<Jid>,
    /// The sending device in a group (`from` is then the group).
    pub participant: Option<Jid>,
    /// The sender's LID when `from` is a phone-number JID.
    pub sender_lid: Option<Jid>,
    pub notify: Option<String>,
    /// Delivered from the offline queue.
    pub offline: bool,
    pub encs: Vec<Enc>,
}

impl Incoming {
    /// `<message from id t type [notify] [offline] [recipient] [participant] [sender_lid]>
    /// <enc…/>…</message>`.
    pub fn node(&self) -> Node {
        let mut n = Node::new("message")
            .attr("from", self.from.to_string())
            .attr("id", self.id.as_str())
            .attr("t", self.t.to_string())
            .attr("type", self.kind.as_str());
        if let Some(notify) = &self.notify {
            n.set_attr("notify", notify.as_str());
        }
        if self.offline {
            n.set_attr("offline", "1");
        }
        for (key, value) in [
            ("recipient", &self.recipient),
            ("participant", &self.participant),
            ("sender_lid", &self.sender_lid),
        ] {
            if let Some(jid) = value {
                n.set_attr(key, jid.to_string());
            }
        }
        n.children(self.encs.iter().map(Enc::node).collect())
    }

    /// Reads a delivered message (client side).
    pub fn parse(node: &Node) -> Result<Incoming, MessagingError> {
        const S: &str = "message";
        let t = attr(node, S, "t")?;
        Ok(Incoming {
            id: attr(node, S, "id")?.to_string(),
            from: jid_attr(node, S, "from")?,
            t: t.parse().map_err(|_| MessagingError::Invalid {
                stanza: S,
                field: "t",
                value: t.to_string(),
            })?,
            kind: node.get_attr("type").unwrap_or("text").to_string(),
            recipient: opt_jid_attr(node, S, "recipient")?,
            participant: opt_jid_attr(node, S, "participant")?,
            sender_lid: opt_jid_attr(node, S, "sender_lid")?,
            notify: node.get_attr("notify").map(str::to_string),
            offline: node.get_attr("offline").is_some(),
            encs: node
                .children_named("enc")
                .map(|e| Enc::parse(e, S))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The device that encrypted it: `participant` in groups, otherwise `from`.
    pub fn sender(&self) -> &Jid {
        self.participant.as_ref().unwrap_or(&self.from)
    }
}

/// The server's ack for a message we sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAck {
    pub id: String,
    pub from: Option<String>,
    /// Server time, the message's canonical timestamp.
    pub t: Option<u64>,
    /// The server's hash of the device list it fanned out to ([`participant_hash`]).
    pub phash: Option<String>,
    /// Non-zero: the send failed (e.g. 463, 479).
    pub error: Option<u16>,
}

/// The participant-list hash of §3.5 (whatsmeow's v2 form): `"2:"` and the unpadded
/// standard base64 of the first 6 bytes of SHA-256 over the sorted
/// `user.agent:device@server` forms of `devices`, concatenated. Order and duplicates of the
/// input do not matter.
pub fn participant_hash(devices: &[Jid]) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let mut forms: Vec<String> = devices
        .iter()
        .map(|d| format!("{}.{}:{}@{}", d.user, d.agent, d.device, d.server))
        .collect();
    forms.sort();
    forms.dedup();
    let hash = Sha256::digest(forms.concat().as_bytes());
    format!(
        "2:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&hash[..6])
    )
}

/// `<ack class="message" id from t [error]/>`.
pub fn server_ack(id: &str, from: &Jid, t: u64, error: Option<u16>) -> Node {
    let n = Node::new("ack")
        .attr("class", "message")
        .attr("id", id)
        .attr("from", from.to_string())
        .attr("t", t.to_string());
    match error {
        Some(code) => n.attr("error", code.to_string()),
        None => n,
    }
}

/// Reads `<ack class="message">`; `None` for other stanzas.
pub fn parse_server_ack(node: &Node) -> Option<ServerAck> {
    if node.tag != "ack" || node.get_attr("class") != Some("message") {
        return None;
    }
    Some(ServerAck {
        id: node.get_attr("id")?.to_string(),
        from: node.get_attr("from").map(str::to_string),
        t: node.get_attr("t").and_then(|t| t.parse().ok()),
        phash: node.get_attr("phash").map(str::to_string),
        error: node
            .get_attr("error")
            .and_then(|e| e.parse().ok())
            .filter(|e| *e != 0),
    })
}
