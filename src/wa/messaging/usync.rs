//! Device lists (§3.1): the usync query for users' devices and LIDs, its answer, and which
//! devices a sender encrypts for.

use super::{MessagingError, attr, jid_attr, opt_jid_attr};
use crate::wa::jid::Jid;
use crate::wa::node::Node;
use crate::wa::stanza::SERVER;

const STANZA: &str = "usync answer";

/// One device in a user's device list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    pub id: u32,
    /// The device's index in the account's key index list; 0 (absent) for the phone.
    pub key_index: u32,
}

/// One user's entry in a usync answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDevices {
    /// The bare user JID as queried.
    pub jid: Jid,
    pub devices: Vec<DeviceEntry>,
    /// The user's LID (`<lid val>`).
    pub lid: Option<Jid>,
    /// A per-user `<error code text>` inside `<devices>`.
    pub error: Option<(u16, String)>,
}

impl UserDevices {
    /// The device JIDs to encrypt for, as Baileys picks them: device 0, and any other device
    /// only with a non-zero key index; never `exclude` (our own current device).
    pub fn device_jids(&self, exclude: Option<&Jid>) -> Vec<Jid> {
        self.devices
            .iter()
            .filter(|d| d.id == 0 || d.key_index != 0)
            .map(|d| self.jid.with_device(d.id))
            .filter(|jid| exclude.is_none_or(|own| own != jid))
            .collect()
    }
}

/// What a usync query asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsyncQuery {
    pub id: String,
    pub sid: String,
    pub context: String,
    pub wants_devices: bool,
    pub wants_lid: bool,
    pub users: Vec<Jid>,
}

/// `<iq id to=S type=get xmlns=usync><usync sid mode=query context=message last=true
/// index=0><query><devices version=2/><lid/></query><list><user jid/>…</list></usync></iq>`,
/// with bare user JIDs.
pub fn devices_query(id: &str, sid: &str, users: &[Jid]) -> Node {
    let list = users
        .iter()
        .map(|u| Node::new("user").attr("jid", u.to_user().to_string()))
        .collect();
    Node::new("iq")
        .attr("id", id)
        .attr("to", SERVER)
        .attr("type", "get")
        .attr("xmlns", "usync")
        .child(
            Node::new("usync")
                .attr("sid", sid)
                .attr("mode", "query")
                .attr("context", "message")
                .attr("last", "true")
                .attr("index", "0")
                .children(vec![
                    Node::new("query").children(vec![
                        Node::new("devices").attr("version", "2"),
                        Node::new("lid"),
                    ]),
                    Node::new("list").children(list),
                ]),
        )
}

/// Whether an iq is a usync query.
pub fn is_query(node: &Node) -> bool {
    node.tag == "iq"
        && node.get_attr("xmlns") == Some("usync")
        && node.get_attr("type") == Some("get")
        && node.get_child("usync").is_some()
}

/// Reads a usync query (server side).
pub fn parse_query(node: &Node) -> Result<UsyncQuery, MessagingError> {
    const Q: &str = "usync query";
    let usync = node.get_child("usync").ok_or(MessagingError::Missing {
        stanza: Q,
        field: "<usync>",
    })?;
    let query = usync.get_child("query");
    let users = usync
        .get_child("list")
        .map(|l| {
            l.children_named("user")
                .map(|u| jid_attr(u, Q, "jid"))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(UsyncQuery {
        id: attr(node, Q, "id")?.to_string(),
        sid: usync.get_attr("sid").unwrap_or_default().to_string(),
        context: usync.get_attr("context").unwrap_or_default().to_string(),
        wants_devices: query.is_some_and(|q| q.get_child("devices").is_some()),
        wants_lid: query.is_some_and(|q| q.get_child("lid").is_some()),
        users,
    })
}

/// The answer to a usync query: one `<user jid>` per user with `<devices><device-list>`
/// (device 0 without `key-index`) and `<lid val>` when asked and known.
pub fn answer(query: &UsyncQuery, users: &[UserDevices]) -> Node {
    let list = users
        .iter()
        .map(|u| {
            let mut children = Vec::new();
            if query.wants_devices {
                let devices = match &u.error {
                    Some((code, text)) => Node::new("devices").child(
                        Node::new("error")
                            .attr("code", code.to_string())
                            .attr("text", text.as_str()),
                    ),
                    None => Node::new("devices").child(
                        Node::new("device-list").children(
                            u.devices
                                .iter()
                                .map(|d| {
                                    let n = Node::new("device").attr("id", d.id.to_string());
                                    if d.key_index == 0 {
                                        n
                                    } else {
                                        n.attr("key-index", d.key_index.to_string())
                                    }
                                })
                                .collect(),
                        ),
                    ),
                };
                children.push(devices);
            }
            if query.wants_lid
                && let Some(lid) = &u.lid
            {
                children.push(Node::new("lid").attr("val", lid.to_string()));
            }
            Node::new("user")
                .attr("jid", u.jid.to_string())
                .children(children)
        })
        .collect();
    Node::new("iq")
        .attr("from", SERVER)
        .attr("id", query.id.as_str())
        .attr("type", "result")
        .child(
            Node::new("usync")
                .attr("sid", query.sid.as_str())
                .attr("mode", "query")
                .attr("context", query.context.as_str())
                .attr("index", "0")
                .attr("last", "true")
                .child(Node::new("list").children(list)),
        )
}

/// Reads the answer to [`devices_query`].
pub fn parse_answer(node: &Node) -> Result<Vec<UserDevices>, MessagingError> {
    let list = node
        .get_child("usync")
        .and_then(|u| u.get_child("list"))
        .ok_or(MessagingError::Missing {
            stanza: STANZA,
            field: "<usync><list>",
        })?;
    list.children_named("user").map(parse_user).collect()
}

fn parse_user(user: &Node) -> Result<UserDevices, MessagingError> {
    let jid = jid_attr(user, STANZA, "jid")?;
    let devices_node = user.get_child("devices");
    let error = devices_node.and_then(|d| d.get_child("error")).map(|e| {
        (
            e.get_attr("code").and_then(|c| c.parse().ok()).unwrap_or(0),
            e.get_attr("text").unwrap_or_default().to_string(),
        )
    });
    let devices = devices_node
        .and_then(|d| d.get_child("device-list"))
        .map(|l| {
            l.children_named("device")
                .map(|d| {
                    let number = |field: &'static str, value: Option<&str>| {
                        value.map_or(Ok(0), |v| {
                            v.parse::<u32>().map_err(|_| MessagingError::Invalid {
                                stanza: STANZA,
                                field,
                                value: v.to_string(),
                            })
                        })
                    };
                    Ok(DeviceEntry {
                        id: number("device id", Some(attr(d, STANZA, "id")?))?,
                        key_index: number("key-index", d.get_attr("key-index"))?,
                    })
                })
                .collect::<Result<Vec<_>, MessagingError>>()
        })
        .transpose()?
        .unwrap_or_default();
    let lid = match user.get_child("lid") {
        Some(l) => opt_jid_attr(l, STANZA, "val")?,
        None => None,
    };
    Ok(UserDevices {
        jid,
        devices,
        lid,
        error,
    })
}
