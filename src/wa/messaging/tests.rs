//! Tests of the messaging stanzas against the byte shapes of PROTOCOL-MESSAGING.md §3–§5,
//! through the binary codec where attribute forms matter (JIDs).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::keys::{
    bundle_answer, bundle_query, is_bundle_query, parse_bundle_answer, parse_bundle_query,
};
use super::receipt::{
    Receipt, ReceiptKind, RetryKeys, parse_retry, receipt_for, receipt_for_ids, retry_receipt,
};
use super::stanza::{Enc, Incoming, Outgoing, parse_server_ack, participant_hash, server_ack};
use super::usync::{
    DeviceEntry, UserDevices, answer, devices_query, is_query, parse_answer, parse_query,
};
use super::*;
use crate::wa::node;
use crate::wa::prekey::{OneTimeKey, UploadedSignedKey};
use crate::wa::signal::{Bundle, EncType};

fn jid(s: &str) -> Jid {
    s.parse().unwrap()
}

/// Through the binary codec and back.
fn wire(n: &Node) -> Node {
    node::decode(&node::encode(n).unwrap()).unwrap()
}

fn bytes_of<'a>(n: &'a Node, tag: &str) -> &'a [u8] {
    n.get_child(tag).unwrap().content_bytes().unwrap()
}

#[test]
fn usync_query_and_answer_have_the_section_3_1_shape() {
    let q = devices_query(
        "u1",
        "sid1",
        &[jid("111@s.whatsapp.net"), jid("222:3@s.whatsapp.net")],
    );
    let q = wire(&q);
    assert!(is_query(&q));
    assert_eq!(q.get_attr("xmlns"), Some("usync"));
    let usync = q.get_child("usync").unwrap();
    for (k, v) in [
        ("sid", "sid1"),
        ("mode", "query"),
        ("context", "message"),
        ("last", "true"),
        ("index", "0"),
    ] {
        assert_eq!(usync.get_attr(k), Some(v), "{k}");
    }
    let query = usync.get_child("query").unwrap();
    assert_eq!(
        query.get_child("devices").unwrap().get_attr("version"),
        Some("2")
    );
    assert!(query.get_child("lid").is_some());
    let parsed = parse_query(&q).unwrap();
    // Bare user JIDs, no device.
    assert_eq!(
        parsed.users,
        [jid("111@s.whatsapp.net"), jid("222@s.whatsapp.net")]
    );
    assert!(parsed.wants_devices && parsed.wants_lid);

    let users = vec![
        UserDevices {
            jid: jid("111@s.whatsapp.net"),
            devices: vec![
                DeviceEntry {
                    id: 0,
                    key_index: 0,
                },
                DeviceEntry {
                    id: 7,
                    key_index: 2,
                },
                DeviceEntry {
                    id: 9,
                    key_index: 0,
                },
            ],
            lid: Some(jid("555@lid")),
            error: None,
        },
        UserDevices {
            jid: jid("222@s.whatsapp.net"),
            devices: vec![],
            lid: None,
            error: Some((404, "not-found".into())),
        },
    ];
    let a = wire(&answer(&parsed, &users));
    let user = &a
        .get_child("usync")
        .unwrap()
        .get_child("list")
        .unwrap()
        .nodes()[0];
    let list = user
        .get_child("devices")
        .unwrap()
        .get_child("device-list")
        .unwrap();
    assert_eq!(
        list.nodes()[0].get_attr("key-index"),
        None,
        "the phone has no key index"
    );
    assert_eq!(list.nodes()[1].get_attr("key-index"), Some("2"));
    assert_eq!(
        user.get_child("lid").unwrap().get_attr("val"),
        Some("555@lid")
    );
    let back = parse_answer(&a).unwrap();
    assert_eq!(back, users);
    // Device 9 has no key index, and our own device 7 is skipped.
    assert_eq!(
        back[0].device_jids(Some(&jid("111:7@s.whatsapp.net"))),
        [jid("111@s.whatsapp.net")]
    );
    assert_eq!(back[0].device_jids(None).len(), 2);
}

fn sample_bundle(one_time: bool) -> Bundle {
    Bundle {
        registration_id: 0x0102_0304,
        identity: [1; 32],
        signed: UploadedSignedKey {
            id: 1,
            public: [2; 32],
            signature: [3; 64],
        },
        one_time: one_time.then_some(OneTimeKey {
            id: 0x0A0B0C,
            public: [4; 32],
        }),
    }
}

#[test]
fn bundle_query_and_answer_have_the_section_3_2_shape() {
    let q = wire(&bundle_query(
        "k1",
        &[jid("111:7@s.whatsapp.net"), jid("555@lid")],
        true,
    ));
    assert!(is_bundle_query(&q));
    assert_eq!(
        (q.get_attr("xmlns"), q.get_attr("type"), q.get_attr("to")),
        (Some("encrypt"), Some("get"), Some("s.whatsapp.net"))
    );
    let users = q.get_child("key").unwrap().nodes();
    assert_eq!(users[0].get_attr("reason"), Some("identity"));
    assert_eq!(
        parse_bundle_query(&q).unwrap(),
        [jid("111:7@s.whatsapp.net"), jid("555@lid")]
    );

    let entries = vec![
        (jid("111:7@s.whatsapp.net"), Ok(sample_bundle(true))),
        (jid("111@s.whatsapp.net"), Ok(sample_bundle(false))),
        (jid("555@lid"), Err((404, "item-not-found".to_string()))),
    ];
    let a = wire(&bundle_answer("k1", &entries));
    let user = &a.get_child("list").unwrap().nodes()[0];
    let tags: Vec<&str> = user.nodes().iter().map(|n| n.tag.as_str()).collect();
    assert_eq!(tags, ["registration", "type", "identity", "skey", "key"]);
    assert_eq!(bytes_of(user, "registration"), [1, 2, 3, 4]);
    assert_eq!(bytes_of(user, "type"), [5]);
    assert_eq!(
        bytes_of(user.get_child("key").unwrap(), "id"),
        [0x0A, 0x0B, 0x0C]
    );
    let back = parse_bundle_answer(&a).unwrap();
    assert_eq!(back[0].1.as_ref().unwrap(), &sample_bundle(true));
    assert_eq!(back[1].1.as_ref().unwrap(), &sample_bundle(false));
    assert!(
        back[2].1.is_err(),
        "a per-user error drops only that device"
    );

    // A short identity fails that device with the field named.
    let bad =
        Node::new("iq").child(
            Node::new("list").child(Node::new("user").attr("jid", "1@s.whatsapp.net").children(
                vec![
                    Node::new("registration").bytes(vec![0, 0, 0, 1]),
                    Node::new("type").bytes(vec![5]),
                    Node::new("identity").bytes(vec![0; 31]),
                ],
            )),
        );
    let err = parse_bundle_answer(&bad).unwrap()[0].1.clone().unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        text.contains("1@s.whatsapp.net") && text.contains("<identity>"),
        "{text}"
    );
}

#[test]
fn outgoing_message_has_participants_and_device_identity_iff_pkmsg() {
    let mut out = Outgoing {
        id: "3EB0ABCDEF0123456789AB".into(),
        to: jid("111@s.whatsapp.net"),
        kind: "text".into(),
        copies: vec![
            (
                jid("111@s.whatsapp.net"),
                Enc::new(EncType::PkMsg, vec![0x33, 1]),
            ),
            (
                jid("111:7@s.whatsapp.net"),
                Enc::new(EncType::Msg, vec![0x33, 2]),
            ),
            (
                jid("999@s.whatsapp.net"),
                Enc::new(EncType::Msg, vec![0x33, 3]),
            ),
        ],
        device_identity: Some(vec![9; 10]),
        retry: false,
    };
    let n = wire(&out.node());
    assert_eq!(
        (n.get_attr("to"), n.get_attr("type")),
        (Some("111@s.whatsapp.net"), Some("text"))
    );
    let tags: Vec<&str> = n.nodes().iter().map(|c| c.tag.as_str()).collect();
    assert_eq!(tags, ["participants", "device-identity"]);
    let to = &n.get_child("participants").unwrap().nodes()[1];
    assert_eq!(to.get_attr("jid"), Some("111:7@s.whatsapp.net"));
    let enc = to.get_child("enc").unwrap();
    assert_eq!(
        (enc.get_attr("v"), enc.get_attr("type")),
        (Some("2"), Some("msg"))
    );
    assert_eq!(enc.content_bytes(), Some(&[0x33, 2][..]));
    assert_eq!(Outgoing::parse(&n).unwrap(), out);

    // No pkmsg, no device identity.
    out.copies.remove(0);
    let n = wire(&out.node());
    assert!(n.get_child("device-identity").is_none());

    // A retry resend: one bare enc with count, device_fanout=false.
    let mut enc = Enc::new(EncType::PkMsg, vec![0x33]);
    enc.count = Some(2);
    let resend = Outgoing {
        to: jid("111:7@s.whatsapp.net"),
        copies: vec![(jid("111:7@s.whatsapp.net"), enc)],
        retry: true,
        ..out
    };
    let n = wire(&resend.node());
    assert_eq!(n.get_attr("device_fanout"), Some("false"));
    assert_eq!(n.get_child("enc").unwrap().get_attr("count"), Some("2"));
    assert!(n.get_child("device-identity").is_some());
    assert_eq!(Outgoing::parse(&n).unwrap(), resend);
}

fn incoming() -> Incoming {
    Incoming {
        id: "3EB0AA".into(),
        from: jid("111:7@s.whatsapp.net"),
        t: 1_700_000_000,
        kind: "text".into(),
        recipient: None,
        participant: None,
        sender_lid: Some(jid("555:7@lid")),
        notify: Some("Ann".into()),
        offline: true,
        encs: vec![Enc::new(EncType::Msg, vec![0x33, 7])],
    }
}

#[test]
fn incoming_message_round_trips_section_4_1() {
    let m = incoming();
    let n = wire(&m.node());
    assert_eq!(n.get_attr("from"), Some("111:7@s.whatsapp.net"));
    assert_eq!(n.get_attr("t"), Some("1700000000"));
    assert!(n.get_attr("offline").is_some());
    assert_eq!(Incoming::parse(&n).unwrap(), m);
    let no_t = Node::new("message")
        .attr("id", "x")
        .attr("from", "1@s.whatsapp.net");
    assert_eq!(
        Incoming::parse(&no_t).unwrap_err(),
        MessagingError::Missing {
            stanza: "message",
            field: "t"
        }
    );
}

#[test]
fn server_ack_carries_t_and_error() {
    let n = wire(&server_ack("3EB0AA", &jid("111@s.whatsapp.net"), 42, None));
    let ack = parse_server_ack(&n).unwrap();
    assert_eq!(
        (ack.id.as_str(), ack.t, ack.error),
        ("3EB0AA", Some(42), None)
    );
    let n = wire(&server_ack(
        "3EB0AA",
        &jid("111@s.whatsapp.net"),
        42,
        Some(479),
    ));
    assert_eq!(parse_server_ack(&n).unwrap().error, Some(479));
    let mut with_hash = server_ack("3EB0AA", &jid("111@s.whatsapp.net"), 42, None);
    with_hash.set_attr("phash", "2:HrUjdGK+");
    let ack = parse_server_ack(&wire(&with_hash)).unwrap();
    assert_eq!(ack.phash.as_deref(), Some("2:HrUjdGK+"));
    assert_eq!(
        parse_server_ack(&Node::new("ack").attr("class", "receipt").attr("id", "x")),
        None
    );
}

#[test]
fn receipts_have_the_section_4_4_and_5_shapes() {
    let m = incoming();
    let n = wire(&receipt_for(&m, &ReceiptKind::Delivered));
    assert_eq!(n.get_attr("to"), Some("111:7@s.whatsapp.net"));
    assert_eq!(n.get_attr("type"), None, "a delivery receipt has no type");
    // From our own other device: type=sender with the chat as recipient.
    let own = Incoming {
        recipient: Some(jid("222@s.whatsapp.net")),
        ..incoming()
    };
    let n = wire(&receipt_for(&own, &ReceiptKind::Delivered));
    assert_eq!(
        (n.get_attr("type"), n.get_attr("recipient")),
        (Some("sender"), Some("222@s.whatsapp.net"))
    );

    let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let n = wire(&receipt_for_ids(
        &jid("111@s.whatsapp.net"),
        &ids,
        &ReceiptKind::Read,
        Some(5),
    ));
    assert_eq!(
        (n.get_attr("id"), n.get_attr("type")),
        (Some("a"), Some("read"))
    );
    let r = Receipt::parse(&n, "to").unwrap();
    assert_eq!(r.ids, ids);
    // The server forwards it with from = the reader.
    let f = wire(&r.forwarded(&jid("111:7@s.whatsapp.net"), 9));
    let back = Receipt::parse(&f, "from").unwrap();
    assert_eq!(
        (back.ids, back.kind, back.t),
        (ids, ReceiptKind::Read, Some(5))
    );
    assert_eq!(ReceiptKind::parse(Some("played")), ReceiptKind::Played);
}

#[test]
fn retry_receipt_has_the_section_4_5_shape() {
    let m = incoming();
    let plain = wire(&retry_receipt(&m, 1, 0x3FFF, None));
    assert_eq!(plain.get_attr("type"), Some("retry"));
    let retry = plain.get_child("retry").unwrap();
    for (k, v) in [
        ("count", "1"),
        ("id", "3EB0AA"),
        ("t", "1700000000"),
        ("v", "1"),
    ] {
        assert_eq!(retry.get_attr(k), Some(v), "{k}");
    }
    assert_eq!(bytes_of(&plain, "registration"), [0, 0, 0x3F, 0xFF]);
    assert!(plain.get_child("keys").is_none());
    let req = parse_retry(&plain, "to").unwrap();
    assert_eq!(
        (req.count, req.registration_id, req.keys),
        (1, 0x3FFF, None)
    );

    let keys = RetryKeys {
        identity: [1; 32],
        one_time: OneTimeKey {
            id: 0x0A0B0C,
            public: [4; 32],
        },
        signed: UploadedSignedKey {
            id: 1,
            public: [2; 32],
            signature: [3; 64],
        },
        device_identity: vec![8; 20],
    };
    let n = wire(&retry_receipt(&m, 2, 0x0102_0304, Some(&keys)));
    let k = n.get_child("keys").unwrap();
    let tags: Vec<&str> = k.nodes().iter().map(|c| c.tag.as_str()).collect();
    assert_eq!(tags, ["type", "identity", "key", "skey", "device-identity"]);
    let req = parse_retry(&n, "to").unwrap();
    let (bundle, identity) = req.keys.unwrap();
    assert_eq!(bundle, sample_bundle(true));
    assert_eq!(identity, Some(vec![8; 20]));
    assert_eq!(req.count, 2);
}

#[test]
fn participant_hash_is_the_section_3_5_v2_form() {
    // Expected values computed outside wasp: "2:" + base64(SHA-256 of the sorted
    // "user.agent:device@server" forms, concatenated)[..6], unpadded.
    let devices = [
        jid("999@s.whatsapp.net"),
        jid("111:7@s.whatsapp.net"),
        jid("111@s.whatsapp.net"),
    ];
    assert_eq!(participant_hash(&devices), "2:HrUjdGK+");
    let mut reordered = devices.to_vec();
    reordered.reverse();
    reordered.push(jid("111:7@s.whatsapp.net"));
    assert_eq!(
        participant_hash(&reordered),
        "2:HrUjdGK+",
        "order and repeats do not matter"
    );
    assert_eq!(
        participant_hash(&[jid("111@s.whatsapp.net"), jid("999@s.whatsapp.net")]),
        "2:70up4hrx",
        "a device less is another hash"
    );
}
