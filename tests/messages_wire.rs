//! What wasp puts on the wire for messages, checked byte by byte against the facts of
//! PROTOCOL-MESSAGING.md rather than against wasp's own parsers: the `<message>` of §3.5
//! (attributes, `<participants>`/`<to>`/`<enc v type>`, `<device-identity>` with the exact
//! stored identity), the Signal bytes of §6 (pkmsg and msg layouts, our identity and
//! registration id inside), the v2 padding of §3.3, the delivery receipt of §4.4, the retry
//! receipts of §4.5 (with keys from the second try), and the acks of §1.2 and §5. The peer
//! is a scripted server playing real Signal devices over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::phones;
use crate::scripted;

use crate::scripted::{OWN, PEER, pool_with_identity, server, unix_now, wait_until};
use wasp::session::status::StateName;
use wasp::store::{CredentialStoreExt, FileStore};
use wasp::wa::creds::Credentials;
use wasp::wa::messaging::stanza::{Enc, Incoming};
use wasp::wa::node::Node;
use wasp::wa::signal::EncType;

/// One protobuf field: a varint or a length-delimited value.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn varint(b: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    for (i, byte) in b.iter().enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("a varint runs off the end");
}

/// The fields of a protobuf message, in order (wire types 0 and 2 only, as in §6).
fn fields(mut b: &[u8]) -> Vec<(u64, Field)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, n) = varint(b);
        b = &b[n..];
        match key & 7 {
            0 => {
                let (v, n) = varint(b);
                b = &b[n..];
                out.push((key >> 3, Field::Varint(v)));
            }
            2 => {
                let (len, n) = varint(b);
                let len = usize::try_from(len).unwrap();
                out.push((key >> 3, Field::Bytes(b[n..n + len].to_vec())));
                b = &b[n + len..];
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
    out
}

fn field(fs: &[(u64, Field)], n: u64) -> Field {
    fs.iter()
        .find(|(k, _)| *k == n)
        .map(|(_, f)| f.clone())
        .unwrap_or_else(|| panic!("field {n} missing in {fs:?}"))
}

fn bytes_field(n: u64, data: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(n << 3 | 2).unwrap()];
    let mut len = data.len();
    while len >= 0x80 {
        out.push(u8::try_from(len & 0x7F).unwrap() | 0x80);
        len >>= 7;
    }
    out.push(u8::try_from(len).unwrap());
    out.extend_from_slice(data);
    out
}

/// An `ADVSignedDeviceIdentity` (§7): details, accountSignatureKey (32 B), accountSignature
/// and deviceSignature (64 B each).
fn signed_identity() -> Vec<u8> {
    let details = [0x08, 0x03, 0x10, 0x01, 0x18, 0x01];
    [
        bytes_field(1, &details),
        bytes_field(2, &[0xAA; 32]),
        bytes_field(3, &[0xBB; 64]),
        bytes_field(4, &[0xCC; 64]),
    ]
    .concat()
}

fn attr_names(n: &Node) -> Vec<String> {
    let mut names: Vec<String> = n.attrs.iter().map(|(k, _)| k.clone()).collect();
    names.sort();
    names
}

fn tags(n: &Node) -> Vec<&str> {
    n.nodes().iter().map(|c| c.tag.as_str()).collect()
}

fn content<'a>(n: &'a Node, tag: &str) -> &'a [u8] {
    n.get_child(tag).unwrap().content_bytes().unwrap()
}

fn creds(p: &scripted::Pool) -> Credentials {
    FileStore::new(p.path())
        .load_json::<Credentials>("c1")
        .unwrap()
        .unwrap()
        .value
}

/// `0x33 ‖ WhisperMessage ‖ 8-byte MAC` (§6): a 33-byte `0x05` ratchet key, a counter, a
/// ciphertext of whole AES blocks.
fn check_whisper(bytes: &[u8]) -> u64 {
    assert_eq!(bytes[0], 0x33, "version byte");
    let fs = fields(&bytes[1..bytes.len() - 8]);
    let Field::Bytes(ratchet) = field(&fs, 1) else {
        panic!("ratchet key")
    };
    assert_eq!((ratchet.len(), ratchet[0]), (33, 0x05));
    let Field::Bytes(ciphertext) = field(&fs, 4) else {
        panic!("ciphertext")
    };
    assert_eq!(ciphertext.len() % 16, 0, "AES-CBC blocks");
    let Field::Varint(counter) = field(&fs, 2) else {
        panic!("counter")
    };
    counter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_texts_receipts_and_acks_have_the_documented_bytes() {
    let phones = phones::new_phones();
    let script_phones = phones.clone();
    let srv = server(
        move |_, socket, log| phones::run_script(socket, log, script_phones.clone()),
        false,
    )
    .await;
    let (p, _config) = pool_with_identity(&srv, true, None, signed_identity());
    p.wait_state(StateName::Online).await;
    let creds = creds(&p);
    let handle = p.running.handle.clone();
    let mut ids = Vec::new();
    for (i, text) in ["wire 0", "wire 1"].into_iter().enumerate() {
        ids.push(handle.send_text("c1", PEER, text).await.unwrap().0);
        let reply = format!("R{i}");
        wait_until("the peer's copy and our receipt for its reply", || {
            let got = phones.lock().unwrap().peer_got.len() > i;
            got && srv
                .log
                .lock()
                .unwrap()
                .nodes
                .iter()
                .any(|n| n.tag == "receipt" && n.get_attr("id") == Some(reply.as_str()))
        })
        .await;
    }
    let log = srv.log.lock().unwrap().nodes.clone();
    let messages: Vec<&Node> = log.iter().filter(|n| n.tag == "message").collect();
    assert_eq!(messages.len(), 2);
    let own_phone = "15550001111@s.whatsapp.net";
    for (m, id) in messages.iter().zip(&ids) {
        // <message id to type>: a 3EB0 + 18 upper-hex id, the bare chat, type text, no phash.
        assert_eq!(attr_names(m), ["id", "to", "type"]);
        assert_eq!(m.get_attr("id"), Some(id.as_str()));
        assert!(id.len() == 22 && id.starts_with("3EB0"), "{id}");
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        assert_eq!(
            (m.get_attr("to"), m.get_attr("type")),
            (Some(PEER), Some("text"))
        );
        // Our own phone never answers, so its copy stays a pkmsg: the identity goes along.
        assert_eq!(tags(m), ["participants", "device-identity"]);
        assert_eq!(content(m, "device-identity"), signed_identity().as_slice());
        let participants = m.get_child("participants").unwrap();
        let mut jids = Vec::new();
        for to in participants.nodes() {
            assert_eq!(
                (to.tag.as_str(), attr_names(to)),
                ("to", vec!["jid".into()])
            );
            assert_eq!(tags(to), ["enc"]);
            let enc = to.get_child("enc").unwrap();
            assert_eq!(attr_names(enc), ["type", "v"]);
            assert_eq!(enc.get_attr("v"), Some("2"));
            jids.push(to.get_attr("jid").unwrap().to_string());
        }
        jids.sort();
        assert_eq!(jids, [own_phone, PEER], "the peer and our phone, not us");
    }
    let peer_enc = |m: &Node| {
        let to = m
            .get_child("participants")
            .unwrap()
            .nodes()
            .iter()
            .find(|t| t.get_attr("jid") == Some(PEER))
            .unwrap()
            .clone();
        to.get_child("enc").unwrap().clone()
    };
    // The first copy opens the session: pkmsg = 0x33 ‖ {1 preKeyId, 2 baseKey, 3 our
    // identity, 4 WhisperMessage, 5 registration id, 6 signed pre-key id}.
    let first = peer_enc(messages[0]);
    assert_eq!(first.get_attr("type"), Some("pkmsg"));
    let bytes = first.content_bytes().unwrap();
    assert_eq!(bytes[0], 0x33);
    let fs = fields(&bytes[1..]);
    assert!(matches!(field(&fs, 1), Field::Varint(_)), "one-time key id");
    let Field::Bytes(base) = field(&fs, 2) else {
        panic!()
    };
    assert_eq!((base.len(), base[0]), (33, 0x05));
    let mut identity = vec![0x05];
    identity.extend_from_slice(&creds.identity.public);
    assert_eq!(field(&fs, 3), Field::Bytes(identity));
    let Field::Bytes(inner) = field(&fs, 4) else {
        panic!()
    };
    assert_eq!(check_whisper(&inner), 0, "the first counter is 0");
    assert_eq!(
        field(&fs, 5),
        Field::Varint(u64::from(creds.registration_id))
    );
    assert_eq!(
        field(&fs, 6),
        Field::Varint(u64::from(creds.signed_pre_key.id))
    );
    // Once the peer's reply was decrypted, the copy is a plain msg.
    let second = peer_enc(messages[1]);
    assert_eq!(second.get_attr("type"), Some("msg"));
    check_whisper(second.content_bytes().unwrap());
    // v2 padding: N bytes of value N, 1..=16; before it a Message with conversation (1).
    for (plain, text) in phones
        .lock()
        .unwrap()
        .peer_plain
        .iter()
        .zip(["wire 0", "wire 1"])
    {
        let n = usize::from(*plain.last().unwrap());
        assert!((1..=16).contains(&n), "padding {n}");
        assert!(
            plain[plain.len() - n..]
                .iter()
                .all(|&b| usize::from(b) == n)
        );
        let body = fields(&plain[..plain.len() - n]);
        assert_eq!(field(&body, 1), Field::Bytes(text.as_bytes().to_vec()));
    }
    // Delivery receipts for the peer's replies: <receipt id to/>, no type, no children.
    for reply in ["R0", "R1"] {
        let r = log
            .iter()
            .find(|n| n.tag == "receipt" && n.get_attr("id") == Some(reply))
            .unwrap();
        assert_eq!(attr_names(r), ["id", "to"]);
        assert_eq!(r.get_attr("to"), Some(PEER));
        assert!(r.nodes().is_empty());
    }
    // The peer's delivery receipts for ours are acked: class receipt, no type (§5).
    for id in &ids {
        let ack = log
            .iter()
            .find(|n| {
                n.tag == "ack"
                    && n.get_attr("class") == Some("receipt")
                    && n.get_attr("id") == Some(id.as_str())
            })
            .unwrap_or_else(|| panic!("no ack for the receipt of {id}"));
        assert_eq!(attr_names(ack), ["class", "id", "to"]);
        assert_eq!(ack.get_attr("to"), Some(PEER));
    }
    assert!(
        !log.iter()
            .any(|n| n.tag == "ack" && n.get_attr("class") == Some("message")),
        "decrypted messages get receipts, not acks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_receipts_and_their_acks_have_the_documented_bytes() {
    let srv = server(
        move |_, mut socket, log| async move {
            let success = Node::new("success").attr("t", unix_now().to_string());
            socket.send_node(&success).await.unwrap();
            let bad = Incoming {
                id: "BAD1".into(),
                from: phones::peer(),
                t: 1_700_000_000,
                kind: "text".into(),
                recipient: None,
                participant: None,
                sender_lid: None,
                notify: None,
                offline: false,
                encs: vec![Enc::new(EncType::Msg, vec![0x33, 1, 2, 3])],
            }
            .node();
            // The same undecryptable copy twice: retry counts 1 and 2.
            socket.send_node(&bad).await.unwrap();
            socket.send_node(&bad).await.unwrap();
            while scripted::serve_node(&mut socket, &log, 800).await.is_some() {}
        },
        false,
    )
    .await;
    let (p, _config) = pool_with_identity(&srv, true, None, signed_identity());
    p.wait_state(StateName::Online).await;
    let creds = creds(&p);
    let of = |n: &Node, tag: &str, class: Option<&str>| {
        n.tag == tag && n.get_attr("id") == Some("BAD1") && n.get_attr("class") == class
    };
    wait_until("two retry receipts and two acks", || {
        let log = srv.log.lock().unwrap();
        log.nodes.iter().filter(|n| of(n, "receipt", None)).count() == 2
            && log
                .nodes
                .iter()
                .filter(|n| of(n, "ack", Some("message")))
                .count()
                == 2
    })
    .await;
    let log = srv.log.lock().unwrap().nodes.clone();
    let retries: Vec<&Node> = log.iter().filter(|n| of(n, "receipt", None)).collect();
    for (count, r) in ["1", "2"].into_iter().zip(&retries) {
        assert_eq!(attr_names(r), ["id", "to", "type"]);
        assert_eq!(
            (r.get_attr("to"), r.get_attr("type")),
            (Some(PEER), Some("retry"))
        );
        let retry = r.get_child("retry").unwrap();
        assert_eq!(attr_names(retry), ["count", "id", "t", "v"]);
        for (k, v) in [
            ("count", count),
            ("id", "BAD1"),
            ("t", "1700000000"),
            ("v", "1"),
        ] {
            assert_eq!(retry.get_attr(k), Some(v), "{k}");
        }
        let registration = u32::from(creds.registration_id).to_be_bytes();
        assert_eq!(content(r, "registration"), registration);
    }
    assert_eq!(
        tags(retries[0]),
        ["retry", "registration"],
        "no keys at first"
    );
    assert_eq!(tags(retries[1]), ["retry", "registration", "keys"]);
    let keys = retries[1].get_child("keys").unwrap();
    assert_eq!(
        tags(keys),
        ["type", "identity", "key", "skey", "device-identity"]
    );
    assert_eq!(content(keys, "type"), [0x05]);
    assert_eq!(content(keys, "identity"), creds.identity.public);
    let key = keys.get_child("key").unwrap();
    assert_eq!(
        (content(key, "id").len(), content(key, "value").len()),
        (3, 32)
    );
    let skey = keys.get_child("skey").unwrap();
    let signed = &creds.signed_pre_key;
    assert_eq!(content(skey, "id"), &signed.id.to_be_bytes()[1..]);
    assert_eq!(content(skey, "value"), signed.key_pair.public);
    assert_eq!(content(skey, "signature"), signed.signature);
    assert_eq!(
        content(keys, "device-identity"),
        signed_identity().as_slice()
    );
    // Each is followed by a plain ack (no error): Baileys' shape, type and own JID copied.
    for ack in log.iter().filter(|n| of(n, "ack", Some("message"))) {
        assert_eq!(attr_names(ack), ["class", "from", "id", "to", "type"]);
        assert_eq!(ack.get_attr("to"), Some(PEER));
        assert_eq!(ack.get_attr("type"), Some("text"));
        assert_eq!(ack.get_attr("from"), Some(OWN));
    }
}
