//! Pre-key bundle fetch (§3.2): the query for devices we have no session with, the server's
//! answer with one bundle (or one `<error>`) per device, read with strict lengths.

use super::{MessagingError, attr, jid_attr};
use crate::wa::creds::KEY_TYPE_DJB;
use crate::wa::jid::Jid;
use crate::wa::node::Node;
use crate::wa::prekey::{self, PreKeyError};
use crate::wa::signal::Bundle;
use crate::wa::stanza::SERVER;

const STANZA: &str = "pre-key bundle answer";

/// `<iq id xmlns=encrypt type=get to=S><key><user jid [reason=identity]/>…</key></iq>`.
/// whatsmeow always sends `reason="identity"`; Baileys only when it forces a refetch.
pub fn bundle_query(id: &str, devices: &[Jid], reason_identity: bool) -> Node {
    let users = devices
        .iter()
        .map(|d| {
            let user = Node::new("user").attr("jid", d.to_string());
            if reason_identity {
                user.attr("reason", "identity")
            } else {
                user
            }
        })
        .collect();
    Node::new("iq")
        .attr("id", id)
        .attr("xmlns", "encrypt")
        .attr("type", "get")
        .attr("to", SERVER)
        .child(Node::new("key").children(users))
}

/// Whether an iq is a bundle query.
pub fn is_bundle_query(node: &Node) -> bool {
    node.tag == "iq"
        && node.get_attr("xmlns") == Some("encrypt")
        && node.get_attr("type") == Some("get")
        && node.get_child("key").is_some()
}

/// The device JIDs a bundle query asks for (server side).
pub fn parse_bundle_query(node: &Node) -> Result<Vec<Jid>, MessagingError> {
    const Q: &str = "pre-key bundle query";
    attr(node, Q, "id")?;
    let key = node.get_child("key").ok_or(MessagingError::Missing {
        stanza: Q,
        field: "<key>",
    })?;
    key.children_named("user")
        .map(|u| jid_attr(u, Q, "jid"))
        .collect()
}

/// What the server has for one requested device.
pub type BundleEntry = (Jid, Result<Bundle, (u16, String)>);

/// The answer: `<iq from=S id type=result><list><user jid>registration, type, identity, skey,
/// [key]</user>…</list></iq>`, or `<user jid><error code text/></user>` for a device it has
/// nothing for.
pub fn bundle_answer(id: &str, entries: &[BundleEntry]) -> Node {
    let users = entries
        .iter()
        .map(|(jid, entry)| {
            let user = Node::new("user").attr("jid", jid.to_string());
            match entry {
                Err((code, text)) => user.child(
                    Node::new("error")
                        .attr("code", code.to_string())
                        .attr("text", text.as_str()),
                ),
                Ok(b) => {
                    let mut children = vec![
                        Node::new("registration").bytes(b.registration_id.to_be_bytes().to_vec()),
                        Node::new("type").bytes(vec![KEY_TYPE_DJB]),
                        Node::new("identity").bytes(b.identity.to_vec()),
                        prekey::signed_key_node(&b.signed),
                    ];
                    if let Some(k) = &b.one_time {
                        children.push(prekey::one_time_key_node(k));
                    }
                    user.children(children)
                }
            }
        })
        .collect();
    Node::new("iq")
        .attr("from", SERVER)
        .attr("id", id)
        .attr("type", "result")
        .child(Node::new("list").children(users))
}

/// One device's bundle as read from an answer, or why it is unusable.
pub type FetchedBundle = (Jid, Result<Bundle, MessagingError>);

/// Reads a bundle answer. A malformed or missing list fails the whole answer; a per-user
/// `<error>` or a bundle with a bad field fails only that device (as whatsmeow does).
pub fn parse_bundle_answer(node: &Node) -> Result<Vec<FetchedBundle>, MessagingError> {
    let list = node.get_child("list").ok_or(MessagingError::Missing {
        stanza: STANZA,
        field: "<list>",
    })?;
    list.children_named("user")
        .map(|u| {
            let jid = jid_attr(u, STANZA, "jid")?;
            let bundle = parse_user_bundle(u, &jid);
            Ok((jid, bundle))
        })
        .collect()
}

fn parse_user_bundle(user: &Node, jid: &Jid) -> Result<Bundle, MessagingError> {
    if let Some(error) = user.get_child("error") {
        return Err(MessagingError::Invalid {
            stanza: STANZA,
            field: "<error>",
            value: format!(
                "{} {} for {jid}",
                error.get_attr("code").unwrap_or_default(),
                error.get_attr("text").unwrap_or_default()
            ),
        });
    }
    let wrap = |source: PreKeyError| MessagingError::Bundle {
        jid: jid.to_string(),
        source,
    };
    let registration = prekey::fixed::<4>(user, "registration").map_err(wrap)?;
    let key_type = prekey::bytes(user, "type").map_err(wrap)?;
    if key_type != [KEY_TYPE_DJB] {
        return Err(wrap(PreKeyError::KeyType(key_type.to_vec())));
    }
    let identity = prekey::fixed::<32>(user, "identity").map_err(wrap)?;
    let skey = user
        .get_child("skey")
        .ok_or(PreKeyError::Missing("skey"))
        .map_err(wrap)?;
    Ok(Bundle {
        registration_id: u32::from_be_bytes(registration),
        identity,
        signed: prekey::signed_key(skey).map_err(wrap)?,
        one_time: user
            .get_child("key")
            .map(prekey::one_time_key)
            .transpose()
            .map_err(wrap)?,
    })
}
