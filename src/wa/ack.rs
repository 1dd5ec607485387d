//! The client's acknowledgement of a received stanza (PROTOCOL-MESSAGING.md §1.2, Baileys'
//! variant): `<ack id to class [participant] [recipient] [type] [from]/>`. Used by the
//! simulator's load generator and tests; the client can share it.

use crate::wa::node::Node;

/// The tags a client must acknowledge with an `<ack>` (§1.1; a decrypted `<message>` may be
/// closed by a receipt instead).
pub const ACKED_TAGS: [&str; 4] = ["message", "receipt", "notification", "call"];

/// The ack for `stanza`, or `None` when its tag needs none or it has no id. `own_jid` is
/// the device's JID, put in `from` on message acks as WhatsApp Web does.
pub fn ack_for(stanza: &Node, own_jid: &str) -> Option<Node> {
    if !ACKED_TAGS.contains(&stanza.tag.as_str()) {
        return None;
    }
    let mut ack = Node::new("ack")
        .attr("id", stanza.get_attr("id")?)
        .attr("class", stanza.tag.as_str());
    if let Some(from) = stanza.get_attr("from") {
        ack = ack.attr("to", from);
    }
    for copied in ["participant", "recipient", "type"] {
        if let Some(value) = stanza.get_attr(copied) {
            ack = ack.attr(copied, value);
        }
    }
    if stanza.tag == "message" {
        ack = ack.attr("from", own_jid);
    }
    Some(ack)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn acks_copy_the_addressing_and_name_the_class() {
        let note = Node::new("notification")
            .attr("from", "s.whatsapp.net")
            .attr("type", "encrypt")
            .attr("id", "77");
        let ack = ack_for(&note, "1:2@s.whatsapp.net").unwrap();
        assert_eq!(ack.get_attr("class"), Some("notification"));
        assert_eq!(ack.get_attr("to"), Some("s.whatsapp.net"));
        assert_eq!(ack.get_attr("type"), Some("encrypt"));
        assert_eq!(ack.get_attr("from"), None);
        let message = Node::new("message")
            .attr("from", "1@s.whatsapp.net")
            .attr("recipient", "9@s.whatsapp.net")
            .attr("id", "M");
        let ack = ack_for(&message, "1:2@s.whatsapp.net").unwrap();
        assert_eq!(ack.get_attr("from"), Some("1:2@s.whatsapp.net"));
        assert_eq!(ack.get_attr("recipient"), Some("9@s.whatsapp.net"));
        assert_eq!(ack_for(&Node::new("ib"), "x"), None);
    }
}
