//! What the client does with each stanza the server pushes after login: the ack it owes,
//! the `offline_batch` it asks for, the edge routing it keeps for the next dial, and the
//! pre-key refill an `encrypt` notification asks for. A pure decision, so the shapes are
//! tested without a socket; the driver carries the actions out.

use std::sync::Arc;

use tracing::{debug, warn};

use crate::net::conn::{Conn, ConnEvent};
use crate::net::metrics::Metrics;
use crate::net::prekeys::PreKeys;
use crate::wa::ack;
use crate::wa::creds::Credentials;
use crate::wa::node::Node;

/// One thing to do for a pushed stanza, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this node (an ack, an `offline_batch`).
    Send(Node),
    /// Keep these edge-routing bytes as the prefix of the next dial.
    KeepRouting(Vec<u8>),
    /// The server holds this many pre-keys; refill if low.
    PreKeysLow(u32),
    /// The offline queue is drained (`<ib><offline count=N/>`).
    OfflineDone(u32),
}

/// The actions for `node`. `own_jid`: our device JID (the `from` of message acks).
/// `send_acks` false is the test-only switch that makes the client ack nothing.
pub fn decide(node: &Node, own_jid: Option<&str>, send_acks: bool) -> Vec<Action> {
    let mut actions = Vec::new();
    if let Some(count) = ack::encrypt_count(node) {
        actions.push(Action::PreKeysLow(count));
    }
    if let Some(routing) = ack::edge_routing(node) {
        actions.push(Action::KeepRouting(routing));
    }
    if ack::is_offline_preview(node) {
        actions.push(Action::Send(ack::offline_batch()));
    }
    if let Some(count) = ack::offline_done(node) {
        actions.push(Action::OfflineDone(count));
    }
    // Acked as soon as handled: nothing above can fail in a way a retry would fix.
    if send_acks && let Some(ack) = ack::ack(node, own_jid) {
        actions.push(Action::Send(ack));
    }
    actions
}

/// Carries out [`decide`] for `node` on `conn`: sends the answers (counting the acks),
/// starts a pre-key refill when the server runs low, and keeps new edge routing in `routing`.
pub async fn answer(
    node: &Node,
    conn: &Conn,
    creds: &Arc<Credentials>,
    send_acks: bool,
    prekeys: &PreKeys,
    routing: &mut Option<Vec<u8>>,
) {
    let own_jid = creds.account.as_ref().map(|a| a.jid.as_str());
    for action in decide(node, own_jid, send_acks) {
        match action {
            Action::Send(reply) => {
                let is_ack = reply.tag == "ack";
                if let Err(e) = conn.send(reply).await {
                    debug!(error = %e, "answer not sent: the connection is closing");
                } else if is_ack {
                    prekeys.metrics.acks_sent.inc();
                }
            }
            Action::KeepRouting(bytes) => *routing = Some(bytes),
            Action::PreKeysLow(count) => prekeys.on_low(conn.querier(), creds.clone(), count),
            Action::OfflineDone(count) => debug!(count, "offline queue drained"),
        }
    }
}

/// A frame that proves the link alive without being a node for the driver; an undecodable
/// one is logged (inside the session's span) and counted, and the link goes on.
pub fn note_frame(event: &ConnEvent, metrics: &Metrics) {
    if let ConnEvent::Undecodable { len, error } = event {
        warn!(bytes = len, %error, "skipped a frame that is not a valid node");
        metrics.undecodable_nodes.inc();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const OWN: &str = "15550001111:3@s.whatsapp.net";

    #[test]
    fn every_push_gets_its_answer() {
        let message = Node::new("message")
            .attr("id", "M1")
            .attr("from", "15551234567@s.whatsapp.net")
            .attr("type", "text")
            .child(Node::new("enc").attr("type", "pkmsg").bytes(vec![1, 2, 3]));
        let acted = decide(&message, Some(OWN), true);
        assert_eq!(
            acted,
            vec![Action::Send(ack::ack(&message, Some(OWN)).unwrap())]
        );
        assert_eq!(
            decide(&message, Some(OWN), false),
            vec![],
            "switch off: no ack"
        );

        let low = Node::new("notification")
            .attr("id", "N1")
            .attr("from", "s.whatsapp.net")
            .attr("type", "encrypt")
            .child(Node::new("count").attr("value", "2"));
        let acted = decide(&low, Some(OWN), true);
        assert_eq!(acted[0], Action::PreKeysLow(2));
        assert!(
            matches!(&acted[1], Action::Send(n) if n.get_attr("class") == Some("notification"))
        );

        let preview = Node::new("ib").child(Node::new("offline_preview").attr("count", "4"));
        assert_eq!(
            decide(&preview, Some(OWN), true),
            vec![Action::Send(ack::offline_batch())]
        );
        let routing = ack::edge_routing_node(b"\x08\x02");
        assert_eq!(
            decide(&routing, Some(OWN), true),
            vec![Action::KeepRouting(b"\x08\x02".to_vec())]
        );
        let done = Node::new("ib").child(Node::new("offline").attr("count", "4"));
        assert_eq!(decide(&done, None, true), vec![Action::OfflineDone(4)]);
        let presence = Node::new("presence").attr("from", "x@s.whatsapp.net");
        assert_eq!(decide(&presence, Some(OWN), true), vec![]);
    }
}
