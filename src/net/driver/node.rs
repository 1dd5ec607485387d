//! What the driver does with the nodes of an open socket: pairing refs and pair-success,
//! login (the pre-key flow and the messenger start), server pings, the pushed stanzas `inbound`
//! answers, and the message stanzas the messenger takes.

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::{Driver, Link, now};
use crate::net::inbound;
use crate::net::messages::{self, MessengerMsg};
use crate::session::status::QrText;
use crate::session::{ConnId, Effect, Event};
use crate::wa::node::Node;
use crate::wa::stanza::{self, Incoming};
use crate::wa::{pair, pair_code};

impl Driver {
    pub(super) async fn send(&self, node: Node) {
        if let Link::Open { handle, .. } = &self.link
            && let Err(e) = handle.send(node).await
        {
            debug!(error = %e, "send failed: the connection is closing");
        }
    }

    pub(super) async fn on_node(&mut self, conn: ConnId, node: Node) -> Vec<Effect> {
        match stanza::classify(node) {
            Incoming::PairDevice { id, refs } => {
                self.send(stanza::iq_result(&id)).await;
                // The QR text holds our public keys: built here, where the keys are.
                let platform = self.shared.endpoint.device.browser.qr_platform();
                let codes = match self.ensure_credentials() {
                    Some(creds) => refs
                        .iter()
                        .map(|r| QrText::new(pair::qr_text(r, creds, platform)))
                        .collect(),
                    None => Vec::new(),
                };
                self.session.handle(now(), Event::QrRefs { conn, codes })
            }
            Incoming::PairSuccess { id, node } => self.on_pair_success(conn, &id, &node).await,
            Incoming::Success { .. } => {
                if let Some(started) = self.dial_started.take() {
                    self.shared
                        .metrics
                        .connect_duration
                        .observe(started.elapsed().as_secs_f64());
                }
                if let (Link::Open { handle, .. }, Some(creds)) = (&self.link, &self.creds) {
                    self.prekeys.after_login(handle.querier(), creds.clone());
                    let online = MessengerMsg::Online(handle.querier(), creds.clone());
                    self.messenger.pass(online);
                }
                self.session.handle(now(), Event::Online { conn })
            }
            Incoming::Ping { id } => {
                self.send(stanza::iq_result(&id)).await;
                Vec::new()
            }
            Incoming::Ib(node) | Incoming::Notification(node) | Incoming::Other(node) => {
                // The phone typed our pairing code; the notification is acked below.
                if pair_code::is_primary_hello(&node) {
                    self.on_primary_hello(conn, &node);
                }
                // A <receipt> is acked by the messenger once its status is on disk, so a
                // crash in between gets the receipt again at the next login.
                if node.tag == "receipt" {
                    let ack = self.shared.endpoint.send_acks;
                    self.messenger.pass(MessengerMsg::Receipt {
                        node: Box::new(node),
                        ack,
                    });
                    return Vec::new();
                }
                // A <message> is answered by the messenger (receipt, or retry and ack).
                if node.tag == "message" && self.shared.endpoint.send_acks {
                    self.messenger.pass(MessengerMsg::Node(Box::new(node)));
                    return Vec::new();
                }
                if messages::wants(&node) {
                    self.messenger
                        .pass(MessengerMsg::Node(Box::new(node.clone())));
                }
                if let (Link::Open { handle, .. }, Some(creds)) = (&self.link, &self.creds) {
                    let (acks, routing) = (self.shared.endpoint.send_acks, &mut self.routing);
                    inbound::answer(&node, handle, creds, acks, &self.prekeys, routing).await;
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    async fn on_pair_success(&mut self, conn: ConnId, id: &str, node: &Node) -> Vec<Effect> {
        let Some(creds) = self.creds.as_mut().map(Arc::make_mut) else {
            return Vec::new();
        };
        let result = pair::parse_pair_success(node)
            .and_then(|success| pair::complete_pairing(creds, &success));
        match result {
            Ok((account, reply)) => {
                let phone = account.phone.clone();
                info!(jid = %account.jid, "paired");
                creds.account = Some(account);
                let saved = creds.clone();
                let done = self.vault.run(move |v| v.save(&saved)).await;
                if let Some(Err(e)) = done {
                    warn!(error = %e, "could not save credentials after pairing");
                }
                self.send(reply).await;
                self.session.handle(now(), Event::Paired { conn, phone })
            }
            Err(err) => {
                warn!(error = %err, "pair-success rejected");
                self.send(pair::pair_error_reply(id, &err)).await;
                self.close_link().await;
                Vec::new()
            }
        }
    }
}
