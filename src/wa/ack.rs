//! What the client answers to the stanzas the server pushes after login, as pure functions:
//! acks for `message`/`receipt`/`notification`/`call` (PROTOCOL-MESSAGING.md section 1.2, in
//! Baileys' variant), the `offline_batch` answer to `<ib><offline_preview>`, and reading
//! `<ib><edge_routing>` and the `encrypt` notification's pre-key count.

use crate::wa::node::Node;

/// Tags the server expects an `<ack>` for (a decrypted `<message>` would get a receipt
/// instead; wasp decrypts nothing yet, so every message gets a plain ack).
pub const ACKED_TAGS: [&str; 4] = ["message", "receipt", "notification", "call"];

/// How many offline stanzas the client asks for per batch (Baileys and whatsmeow both 100).
pub const OFFLINE_BATCH: u32 = 100;

/// The ack for `stanza`, or `None` when its tag takes no ack or it has no `id`.
///
/// Shape: `<ack id to=stanza.from class=tag [participant] [recipient] [type] [from]/>`, where
/// `participant`, `recipient` and `type` are copied when present and `from` is our own device
/// JID on class `message` (Baileys: "WA Web does this"). Never an `error` attribute: a message
/// we cannot decrypt gets a plain ack (a nack keeps it pending on the server).
pub fn ack(stanza: &Node, own_jid: Option<&str>) -> Option<Node> {
    let class = ACKED_TAGS.into_iter().find(|t| *t == stanza.tag)?;
    let id = stanza.get_attr("id")?;
    let mut ack = Node::new("ack").attr("id", id).attr("class", class);
    if let Some(from) = stanza.get_attr("from") {
        ack.set_attr("to", from);
    }
    for key in ["participant", "recipient", "type"] {
        if let Some(value) = stanza.get_attr(key) {
            ack.set_attr(key, value);
        }
    }
    if class == "message"
        && let Some(own) = own_jid
    {
        ack.set_attr("from", own);
    }
    Some(ack)
}

/// `<ib><offline_batch count="100"/></ib>`: asks for the next batch of the offline queue.
pub fn offline_batch() -> Node {
    Node::new("ib").child(Node::new("offline_batch").attr("count", OFFLINE_BATCH.to_string()))
}

/// True for `<ib><offline_preview .../></ib>`.
pub fn is_offline_preview(node: &Node) -> bool {
    node.tag == "ib" && node.get_child("offline_preview").is_some()
}

/// The `count` of `<ib><offline count=N/></ib>` (the end of the offline queue).
pub fn offline_done(node: &Node) -> Option<u32> {
    if node.tag != "ib" {
        return None;
    }
    let offline = node.get_child("offline")?;
    Some(
        offline
            .get_attr("count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
    )
}

/// The routing bytes of `<ib><edge_routing><routing_info>BYTES</routing_info></edge_routing></ib>`.
pub fn edge_routing(node: &Node) -> Option<Vec<u8>> {
    if node.tag != "ib" {
        return None;
    }
    let info = node.get_child("edge_routing")?.get_child("routing_info")?;
    let bytes = info.content_bytes()?;
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

/// The pre-key count of `<notification from="s.whatsapp.net" type="encrypt"><count value=N/>`
/// (the server's "pre-keys are low" push); `None` for any other notification.
pub fn encrypt_count(node: &Node) -> Option<u32> {
    if node.tag != "notification" || node.get_attr("type") != Some("encrypt") {
        return None;
    }
    node.get_child("count")?.get_attr("value")?.parse().ok()
}

/// `<ib><edge_routing><routing_info>BYTES</routing_info></edge_routing></ib>` (server side).
pub fn edge_routing_node(routing: &[u8]) -> Node {
    Node::new("ib")
        .child(Node::new("edge_routing").child(Node::new("routing_info").bytes(routing.to_vec())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const OWN: &str = "15550001111:3@s.whatsapp.net";

    fn attrs(node: &Node) -> Vec<(String, String)> {
        let mut v: Vec<_> = node
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn message_ack_copies_type_and_adds_our_jid() {
        let msg = Node::new("message")
            .attr("id", "3EB0A1")
            .attr("from", "15551234567@s.whatsapp.net")
            .attr("type", "text")
            .attr("t", "1700000000")
            .attr("offline", "1");
        let ack = ack(&msg, Some(OWN)).unwrap();
        assert_eq!(ack.tag, "ack");
        assert_eq!(
            attrs(&ack),
            pairs(&[
                ("id", "3EB0A1"),
                ("to", "15551234567@s.whatsapp.net"),
                ("class", "message"),
                ("type", "text"),
                ("from", OWN),
            ])
        );
        assert!(ack.nodes().is_empty());
    }

    #[test]
    fn group_receipt_ack_copies_participant_and_recipient_but_not_from() {
        let receipt = Node::new("receipt")
            .attr("id", "R1")
            .attr("from", "120363@g.us")
            .attr("participant", "15551234567:2@s.whatsapp.net")
            .attr("recipient", "15559990000@s.whatsapp.net")
            .attr("type", "read");
        let ack = ack(&receipt, Some(OWN)).unwrap();
        assert_eq!(
            attrs(&ack),
            pairs(&[
                ("id", "R1"),
                ("to", "120363@g.us"),
                ("class", "receipt"),
                ("participant", "15551234567:2@s.whatsapp.net"),
                ("recipient", "15559990000@s.whatsapp.net"),
                ("type", "read"),
            ])
        );
    }

    #[test]
    fn notification_and_call_acks_and_what_takes_none() {
        let n = Node::new("notification")
            .attr("id", "N1")
            .attr("from", "s.whatsapp.net")
            .attr("type", "encrypt")
            .child(Node::new("count").attr("value", "3"));
        let a = ack(&n, None).unwrap();
        assert_eq!(
            attrs(&a),
            pairs(&[
                ("id", "N1"),
                ("to", "s.whatsapp.net"),
                ("class", "notification"),
                ("type", "encrypt"),
            ])
        );
        assert_eq!(encrypt_count(&n), Some(3));
        let call = Node::new("call")
            .attr("id", "C1")
            .attr("from", "15551234567@s.whatsapp.net");
        assert_eq!(
            ack(&call, Some(OWN)).unwrap().get_attr("class"),
            Some("call")
        );
        assert_eq!(ack(&call, Some(OWN)).unwrap().get_attr("from"), None);
        for tag in ["ib", "presence", "chatstate", "ack", "success", "iq"] {
            assert!(
                ack(&Node::new(tag).attr("id", "x"), Some(OWN)).is_none(),
                "{tag}"
            );
        }
        assert!(
            ack(&Node::new("message"), Some(OWN)).is_none(),
            "no id, no ack"
        );
    }

    #[test]
    fn ib_pushes_are_read() {
        let preview = Node::new("ib").child(
            Node::new("offline_preview")
                .attr("count", "7")
                .attr("message", "3"),
        );
        assert!(is_offline_preview(&preview));
        let batch = offline_batch();
        assert_eq!(batch.tag, "ib");
        assert_eq!(
            batch.get_child("offline_batch").unwrap().get_attr("count"),
            Some("100")
        );
        let routing = edge_routing_node(&[8, 1, 2, 3]);
        assert_eq!(edge_routing(&routing), Some(vec![8, 1, 2, 3]));
        assert_eq!(edge_routing(&preview), None);
        let done = Node::new("ib").child(Node::new("offline").attr("count", "7"));
        assert_eq!(offline_done(&done), Some(7));
        assert_eq!(offline_done(&preview), None);
        let other = Node::new("notification").attr("type", "devices");
        assert_eq!(encrypt_count(&other), None);
    }
}
