//! A logged-in test device for the relay tests, built from the `wa` parts over a real
//! socket: pairs with the simulator, uploads pre-keys, sends texts (usync, bundle fetch, one
//! Signal copy per device, a device-sent copy for its own account's devices) and decrypts
//! what it gets, answering with receipts and acks. Include with
//! `#[path = "common/sim_client.rs"] mod sim_client;` and
//! `#[path = "common/relay_peer.rs"] mod relay_peer;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::sim_client::{WAIT, own_jid, pair_new, raw_login, recv, target};
use wasp::sim::Handle;
use wasp::sim::load::ClientSocket;
use wasp::wa::creds::Credentials;
use wasp::wa::jid::Jid;
use wasp::wa::message::{self, Message};
use wasp::wa::messaging::keys::{bundle_query, parse_bundle_answer};
use wasp::wa::messaging::receipt::{Receipt, ReceiptKind, receipt_for};
use wasp::wa::messaging::stanza::{Enc, Incoming, Outgoing, ServerAck, parse_server_ack};
use wasp::wa::messaging::usync::{devices_query, parse_answer};
use wasp::wa::node::Node;
use wasp::wa::signal::{self, MemoryStore, SignalAddress};
use wasp::wa::{ack, prekey};

/// A logged-in test device with its Signal store.
pub struct Peer {
    pub creds: Credentials,
    pub jid: Jid,
    pub socket: Option<ClientSocket>,
    pub store: MemoryStore,
    pub next: u32,
    /// Texts decrypted, in order.
    pub texts: Vec<(String, String)>,
    /// Receipts received: (id, kind).
    pub receipts: Vec<(String, ReceiptKind)>,
    /// Every other stanza received.
    pub seen: Vec<Node>,
}

impl Peer {
    pub async fn new(sim: &Handle, phone: &str) -> Peer {
        let creds = pair_new(sim, Some(phone)).await;
        let socket = raw_login(&target(sim), &creds).await;
        let mut peer = Peer {
            jid: own_jid(&creds).parse().unwrap(),
            store: MemoryStore::from_credentials(&creds),
            creds,
            socket: Some(socket),
            next: 0,
            texts: Vec::new(),
            receipts: Vec::new(),
            seen: Vec::new(),
        };
        let keys = peer.store.generate_prekeys(20);
        let upload = prekey::upload("up-1", &peer.creds, &keys);
        let answer = peer.query(upload).await;
        assert_eq!(answer.get_attr("type"), Some("result"));
        peer
    }

    pub async fn relogin(&mut self, sim: &Handle) {
        self.socket = Some(raw_login(&target(sim), &self.creds).await);
    }

    pub async fn offline(&mut self) {
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
    }

    pub fn sock(&mut self) -> &mut ClientSocket {
        self.socket.as_mut().expect("the peer is online")
    }

    pub fn id(&mut self) -> String {
        self.next += 1;
        format!("t-{}", self.next)
    }

    pub async fn query(&mut self, iq: Node) -> Node {
        let own = self.jid.to_string();
        let id = iq.get_attr("id").unwrap().to_string();
        self.sock().send_node(&iq).await.unwrap();
        loop {
            let node = recv(self.sock()).await;
            if node.tag == "iq" && node.get_attr("id") == Some(id.as_str()) {
                return node;
            }
            self.handle(node, &own).await;
        }
    }

    /// Decrypts messages (answering with a delivery receipt), records receipts, acks the rest.
    pub async fn handle(&mut self, node: Node, own: &str) {
        if node.tag == "message" {
            let m = Incoming::parse(&node).unwrap();
            let address = SignalAddress::of(&m.from);
            let enc = &m.encs[0];
            match enc
                .enc_type()
                .map(|t| signal::decrypt(&mut self.store, &address, t, &enc.ciphertext))
            {
                Some(Ok(d)) => {
                    let (msg, _) = message::decode_padded(&d.plaintext).unwrap();
                    let text = msg.text_body().unwrap_or_default().to_string();
                    self.texts.push((m.id.clone(), text));
                    let r = receipt_for(&m, &ReceiptKind::Delivered);
                    self.sock().send_node(&r).await.unwrap();
                }
                _ => {
                    let reply = ack::ack(&node, Some(own)).unwrap();
                    self.sock().send_node(&reply).await.unwrap();
                }
            }
            return;
        }
        if node.tag == "receipt" {
            let r = Receipt::parse(&node, "from").unwrap();
            self.receipts.push((r.id().to_string(), r.kind));
        } else {
            self.seen.push(node.clone());
        }
        if let Some(reply) = ack::ack(&node, Some(own)) {
            self.sock().send_node(&reply).await.unwrap();
        }
    }

    /// Reads and handles stanzas until `done` holds (panics after `WAIT` without progress).
    pub async fn pump_until(&mut self, done: impl Fn(&Peer) -> bool) {
        let own = self.jid.to_string();
        while !done(self) {
            let node = recv(self.sock()).await;
            self.handle(node, &own).await;
        }
    }

    /// Sends a text to `to` (a phone number): usync, bundles, one copy per device (a
    /// device-sent copy for our own phone), then waits for the server ack.
    pub async fn send(&mut self, to: &str, text: &str) -> String {
        self.send_as(to, text, false).await
    }

    /// `send`, addressing the recipient's devices by their LID JIDs when `lid` is set.
    pub async fn send_as(&mut self, to: &str, text: &str, lid: bool) -> String {
        let devices = self.devices_of(to, lid).await;
        self.sessions_with(&devices).await;
        let copies = self.encrypt_for(to, &devices, text);
        let out = self.outgoing(to, copies);
        let id = out.id.clone();
        let ack = self.submit(&out).await;
        assert_eq!(ack.id, id);
        assert_eq!(ack.error, None);
        assert!(ack.t.is_some());
        id
    }

    /// The devices a text to `to` goes to (a usync for `to` and our own account): theirs,
    /// by LID when `lid` is set, and our own other devices.
    pub async fn devices_of(&mut self, to: &str, lid: bool) -> Vec<Jid> {
        let chat = Jid::pn(to);
        let id = self.id();
        let answer = self
            .query(devices_query(&id, "s1", &[chat, self.jid.to_user()]))
            .await;
        let users = parse_answer(&answer).unwrap();
        users
            .iter()
            .flat_map(|u| {
                let lid_user = u.lid.clone().filter(|_| lid && u.jid.user == to);
                u.device_jids(Some(&self.jid))
                    .into_iter()
                    .map(move |d| match &lid_user {
                        Some(l) => l.with_device(d.device),
                        None => d,
                    })
            })
            .collect()
    }

    /// Fetches bundles for the devices without a session and starts sessions from them.
    pub async fn sessions_with(&mut self, devices: &[Jid]) {
        let missing: Vec<Jid> = devices
            .iter()
            .filter(|d| !signal::has_session(&self.store, &SignalAddress::of(d)).unwrap())
            .cloned()
            .collect();
        if !missing.is_empty() {
            let id = self.id();
            let answer = self.query(bundle_query(&id, &missing, true)).await;
            for (jid, bundle) in parse_bundle_answer(&answer).unwrap() {
                let bundle = bundle.unwrap();
                signal::process_bundle(&mut self.store, &SignalAddress::of(&jid), &bundle).unwrap();
            }
        }
    }

    /// One encrypted copy of `text` (to chat `to`) per device; our own devices get it as a
    /// device-sent message.
    pub fn encrypt_for(&mut self, to: &str, devices: &[Jid], text: &str) -> Vec<(Jid, Enc)> {
        let chat = Jid::pn(to);
        let own_user = self.jid.to_user();
        let original = Message::text(text);
        let mut copies = Vec::new();
        for device in devices {
            let plain = if device.user == own_user.user {
                Message::device_sent(&chat.to_string(), &original)
            } else {
                original.clone()
            };
            let padded = message::encode_padded(&plain);
            let (kind, bytes) =
                signal::encrypt(&mut self.store, &SignalAddress::of(device), &padded).unwrap();
            copies.push((device.clone(), Enc::new(kind, bytes)));
        }
        copies
    }

    /// The `<message>` to chat `to` with these copies, a new id and our device identity.
    pub fn outgoing(&mut self, to: &str, copies: Vec<(Jid, Enc)>) -> Outgoing {
        self.next += 1;
        let own_user = self.jid.to_user();
        Outgoing {
            id: message::new_message_id(1_700_000_000 + u64::from(self.next), &own_user.user),
            to: Jid::pn(to),
            kind: "text".into(),
            copies,
            device_identity: Some(self.creds.account.as_ref().unwrap().signed_identity.clone()),
            retry: false,
        }
    }

    /// Sends `out` and answers the server's ack for it (handling what comes before).
    pub async fn submit(&mut self, out: &Outgoing) -> ServerAck {
        self.sock().send_node(&out.node()).await.unwrap();
        let own = self.jid.to_string();
        loop {
            let node = recv(self.sock()).await;
            if let Some(a) = parse_server_ack(&node)
                && a.id == out.id
            {
                return a;
            }
            self.handle(node, &own).await;
        }
    }
}

pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
