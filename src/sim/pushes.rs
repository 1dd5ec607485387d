//! The traffic the simulator pushes to a logged-in device, in the shapes of
//! PROTOCOL-MESSAGING.md §1, §2.4, §4.1, §4.7 and §5: the offline preview and end markers,
//! edge routing, notifications (`encrypt`, `account_sync`, `devices`), receipts, the
//! history-sync and app-state-key messages a new companion gets from its phone, and the
//! rule deciding whether a client's `<ack>` or `<receipt>` closes a pushed stanza.

use crate::wa::node::Node;
use crate::wa::stanza::SERVER;

/// The routing bytes handed out in `<edge_routing>` (a short protobuf-looking blob, like the
/// base64 `CA0IBQ==` the real server sends); the client sends them back in its `ED` prefix.
pub const ROUTING_INFO: [u8; 4] = [0x08, 0x0d, 0x08, 0x05];

/// A peer that "read" a message of ours: the sender of the pushed receipts.
const PEER: &str = "15557654321@s.whatsapp.net";

/// How many history-sync messages a new companion gets (an initial bootstrap and a recent
/// chunk), besides one app-state key share.
const HISTORY_MESSAGES: usize = 2;

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// An id like the phone's message ids: 16 random bytes in upper-case hex.
pub fn phone_message_id() -> String {
    hex_upper(&rand::random::<[u8; 16]>())
}

/// An id like a web client's message ids: `3EB0` and 18 upper-case hex digits.
pub fn web_message_id() -> String {
    format!("3EB0{}", &hex_upper(&rand::random::<[u8; 9]>())[..18])
}

/// A notification id: a decimal number, as the server numbers them.
pub fn notification_id() -> String {
    (rand::random::<u32>() | 1 << 31).to_string()
}

/// The account's primary device (device 0 is written without `:0`).
pub fn primary_jid(phone: &str) -> String {
    format!("{phone}@{SERVER}")
}

/// `<ib><offline_preview count message notification receipt appdata/></ib>` for a queue.
pub fn offline_preview(queue: &[Node]) -> Node {
    let count = |tag: &str| queue.iter().filter(|n| n.tag == tag).count().to_string();
    Node::new("ib").child(
        Node::new("offline_preview")
            .attr("count", queue.len().to_string())
            .attr("message", count("message"))
            .attr("notification", count("notification"))
            .attr("receipt", count("receipt"))
            .attr("appdata", "0"),
    )
}

/// `<ib><offline count="N"/></ib>`: the offline queue is drained.
pub fn offline_end(count: usize) -> Node {
    Node::new("ib").child(Node::new("offline").attr("count", count.to_string()))
}

/// `<ib><edge_routing><routing_info>BYTES</routing_info></edge_routing></ib>`.
pub fn edge_routing() -> Node {
    Node::new("ib").child(
        Node::new("edge_routing").child(Node::new("routing_info").bytes(ROUTING_INFO.to_vec())),
    )
}

/// A queued stanza delivered from the offline queue carries `offline="1"`.
pub fn as_offline(node: &Node) -> Node {
    node.clone().attr("offline", "1")
}

/// `<notification from="s.whatsapp.net" type="encrypt" id t><count value=N/></notification>`:
/// the server is running out of this device's one-time pre-keys (§2.4).
pub fn encrypt_low(count: usize, t: u64) -> Node {
    Node::new("notification")
        .attr("from", SERVER)
        .attr("type", "encrypt")
        .attr("id", notification_id())
        .attr("t", t.to_string())
        .child(Node::new("count").attr("value", count.to_string()))
}

/// `<notification from="{user}@s.whatsapp.net" type="account_sync" id t>` with the
/// account's device list (what whatsmeow reads as an own-devices update).
pub fn account_sync(phone: &str, devices: &[u32], t: u64) -> Node {
    let list = devices
        .iter()
        .map(|&d| {
            let jid = if d == 0 {
                primary_jid(phone)
            } else {
                format!("{phone}:{d}@{SERVER}")
            };
            let node = Node::new("device").attr("jid", jid);
            if d == 0 {
                node
            } else {
                node.attr("key-index", d.to_string())
            }
        })
        .collect();
    Node::new("notification")
        .attr("from", primary_jid(phone))
        .attr("type", "account_sync")
        .attr("id", notification_id())
        .attr("t", t.to_string())
        .child(
            Node::new("devices")
                .attr(
                    "dhash",
                    format!("2:{}", &hex_upper(&rand::random::<[u8; 4]>())),
                )
                .children(list),
        )
}

/// `<notification from="{user}@s.whatsapp.net" type="devices" id t><add><device jid/>
/// </add></notification>`: a device joined the account.
pub fn devices_added(phone: &str, device_jid: &str, t: u64) -> Node {
    Node::new("notification")
        .attr("from", primary_jid(phone))
        .attr("type", "devices")
        .attr("id", notification_id())
        .attr("t", t.to_string())
        .child(Node::new("add").children(vec![
            Node::new("device").attr("jid", device_jid),
            Node::new("key-index-list").attr("ts", t.to_string()),
        ]))
}

/// A read receipt from a peer for a message "we" sent (§5).
pub fn read_receipt(t: u64) -> Node {
    Node::new("receipt")
        .attr("from", PEER)
        .attr("id", web_message_id())
        .attr("t", t.to_string())
        .attr("type", "read")
}

/// A protocol message from the account's phone to its own new companion (§4.7):
/// `category="peer"` and a pkmsg the companion cannot decrypt yet (opaque bytes that start
/// with the Signal version byte).
fn peer_message(phone: &str, t: u64) -> Node {
    let len = 96 + usize::from(rand::random::<u8>() % 64);
    let mut body: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    body[0] = 0x33;
    Node::new("message")
        .attr("from", primary_jid(phone))
        .attr("id", phone_message_id())
        .attr("t", t.to_string())
        .attr("type", "text")
        .attr("category", "peer")
        .child(
            Node::new("enc")
                .attr("v", "2")
                .attr("type", "pkmsg")
                .bytes(body),
        )
}

/// What the phone queues for a companion it just paired: an app-state key share and a few
/// history-sync notifications, then the account's `devices` change.
pub fn welcome(phone: &str, device_jid: &str, t: u64) -> Vec<Node> {
    let mut out: Vec<Node> = (0..=HISTORY_MESSAGES)
        .map(|_| peer_message(phone, t))
        .collect();
    out.push(devices_added(phone, device_jid, t));
    out
}

/// `<stream:error><ack id="ID"/></stream:error>`: the client left stanzas unacknowledged.
pub fn stream_error_ack(id: &str) -> Node {
    Node::new("stream:error").child(Node::new("ack").attr("id", id))
}

/// The ids a client's node closes among pushed stanzas of `tag`: an `<ack class=tag id>`
/// closes that id; a `<receipt id>` (with more ids in `<list><item id/>`) also closes
/// messages. The answer is `(tag, ids, to)`, `to` being where the client addressed it.
pub fn closes(node: &Node) -> Option<(&str, Vec<&str>, Option<&str>)> {
    let to = node.get_attr("to");
    match node.tag.as_str() {
        "ack" => {
            let class = node.get_attr("class")?;
            let id = node.get_attr("id")?;
            // A nack (error attribute) still closes the stanza on our side (§1.3 notes a
            // nacked stanza may stay pending on the real server; we do not model that).
            Some((class, vec![id], to))
        }
        "receipt" => {
            let mut ids = vec![node.get_attr("id")?];
            if let Some(list) = node.get_child("list") {
                ids.extend(list.children_named("item").filter_map(|i| i.get_attr("id")));
            }
            Some(("message", ids, to))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn the_preview_counts_by_kind() {
        let queue = welcome("15550001111", "15550001111:3@s.whatsapp.net", 5);
        let preview = offline_preview(&queue);
        let p = preview.get_child("offline_preview").unwrap();
        assert_eq!(p.get_attr("count"), Some("4"));
        assert_eq!(p.get_attr("message"), Some("3"));
        assert_eq!(p.get_attr("notification"), Some("1"));
        let m = &queue[0];
        assert_eq!(m.get_attr("from"), Some("15550001111@s.whatsapp.net"));
        assert_eq!(m.get_attr("category"), Some("peer"));
        assert_eq!(m.get_child("enc").unwrap().get_attr("type"), Some("pkmsg"));
        assert_eq!(as_offline(m).get_attr("offline"), Some("1"));
    }

    #[test]
    fn acks_and_receipts_close_by_class_and_id() {
        let ack = Node::new("ack")
            .attr("id", "A")
            .attr("class", "notification")
            .attr("to", "s.whatsapp.net");
        assert_eq!(
            closes(&ack),
            Some(("notification", vec!["A"], Some("s.whatsapp.net")))
        );
        let receipt = Node::new("receipt")
            .attr("id", "M1")
            .child(Node::new("list").child(Node::new("item").attr("id", "M2")));
        assert_eq!(closes(&receipt), Some(("message", vec!["M1", "M2"], None)));
        assert_eq!(closes(&Node::new("presence")), None);
        assert!(web_message_id().starts_with("3EB0") && web_message_id().len() == 22);
    }
}
