//! Corpus of real-shaped stanzas pinned to bytes: each one encodes to the hex stored in
//! `tests/fixtures/stanzas/NAME.hex` and decodes back equal. A normal run fails on any drift;
//! `WASP_BLESS=1 cargo test --test node_corpus` rewrites the fixtures on purpose.
//! A few encodings are also checked byte by byte against wacore-binary's token dictionary
//! (version 3), so the corpus is not only consistent with itself.

#![allow(clippy::expect_used)] // a failed expect is a failed test

use std::collections::BTreeSet;
use std::path::PathBuf;

use wasp::wa::node::{Content, Node, decode, encode};
use wasp::wa::stanza;

/// Deterministic filler standing in for keys, signatures and ciphertext.
fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn iq(id: &str, kind: &str) -> Node {
    Node::new("iq").attr("id", id).attr("type", kind)
}

fn key(id: u32, seed: u8) -> Node {
    Node::new("key")
        .child(Node::new("id").bytes(id.to_be_bytes()[1..].to_vec()))
        .child(Node::new("value").bytes(blob(32, seed)))
}

/// Every stanza, named; names are fixture file names.
fn corpus() -> Vec<(&'static str, Node)> {
    let refs: Vec<String> = (1..=6)
        .map(|i| format!("2@Xq{i}n0VQm7cW4YdFhT1sKp9Lb3Zr+uA6eG8jC5iO2xN0yB/vM="))
        .collect();
    let server = "s.whatsapp.net";
    vec![
        ("iq_ping_keepalive", stanza::ping("41372.16812-1")),
        (
            "iq_ping_without_child",
            iq("41372.16812-2", "get")
                .attr("to", server)
                .attr("xmlns", "w:p"),
        ),
        ("iq_result_ack", stanza::iq_result("41372.16812-3")),
        (
            "iq_result_from_server",
            Node::new("iq")
                .attr("from", server)
                .attr("type", "result")
                .attr("id", "41372.16812-1"),
        ),
        (
            "iq_error_reply",
            stanza::iq_error("41372.16812-4", 500, "internal-server-error"),
        ),
        (
            "iq_server_ping",
            Node::new("iq")
                .attr("from", server)
                .attr("id", "1700000000-77")
                .attr("type", "get")
                .attr("xmlns", "urn:xmpp:ping"),
        ),
        ("iq_pair_device_6_refs", stanza::pair_device("1234", &refs)),
        (
            "iq_pair_success",
            Node::new("iq")
                .attr("from", server)
                .attr("type", "set")
                .attr("id", "1235")
                .attr("xmlns", "md")
                .child(
                    Node::new("pair-success")
                        .attr("t", "1700000123")
                        .child(Node::new("device-identity").bytes(blob(180, 3)))
                        .child(
                            Node::new("device")
                                .attr("jid", "15551234567:12@s.whatsapp.net")
                                .attr("lid", "123456789012345:12@lid"),
                        )
                        .child(Node::new("platform").attr("name", "smbi"))
                        .child(Node::new("biz").attr("name", "Acme Bikes")),
                ),
        ),
        (
            "iq_pair_device_sign",
            Node::new("iq")
                .attr("to", server)
                .attr("type", "result")
                .attr("id", "1235")
                .child(
                    Node::new("pair-device-sign").child(
                        Node::new("device-identity")
                            .attr("key-index", "3")
                            .bytes(blob(150, 9)),
                    ),
                ),
        ),
        (
            "success_builder",
            stanza::success(Some("123456789012345@lid"), 1_700_000_200),
        ),
        (
            "success_full",
            Node::new("success")
                .attr("t", "1700000200")
                .attr("props", "27")
                .attr("abprops", "31")
                .attr("location", "frc")
                .attr("creation", "1690000000")
                .attr("lid", "123456789012345@lid")
                .attr("display_name", ""),
        ),
        ("stream_error_515", stanza::stream_error(515)),
        ("stream_error_503", stanza::stream_error(503)),
        ("stream_error_500", stanza::stream_error(500)),
        (
            "stream_error_conflict_replaced",
            stanza::conflict_replaced(),
        ),
        ("stream_error_device_removed", stanza::device_removed()),
        ("failure_401", stanza::failure(401, &[])),
        (
            "failure_402",
            stanza::failure(402, &[("code", "101"), ("expire", "86400")]),
        ),
        (
            "failure_403",
            stanza::failure(403, &[("logout_message_header", "Your account is locked")]),
        ),
        ("failure_405", stanza::failure(405, &[("location", "frc")])),
        ("failure_406", stanza::failure(406, &[])),
        (
            "ib_offline",
            Node::new("ib")
                .attr("from", server)
                .child(Node::new("offline").attr("count", "12")),
        ),
        (
            "ib_offline_preview",
            Node::new("ib").attr("from", server).child(
                Node::new("offline_preview")
                    .attr("count", "3")
                    .attr("message", "2")
                    .attr("receipt", "1"),
            ),
        ),
        (
            "ib_edge_routing",
            Node::new("ib").attr("from", server).child(
                Node::new("edge_routing").child(Node::new("routing_info").bytes(vec![8, 8, 8, 5])),
            ),
        ),
        ("ib_downgrade_webclient", stanza::downgrade_webclient()),
        (
            "notification_devices",
            Node::new("notification")
                .attr("from", "15551234567@s.whatsapp.net")
                .attr("type", "devices")
                .attr("id", "2934817234")
                .attr("t", "1700000300")
                .child(
                    Node::new("remove")
                        .child(Node::new("device").attr("jid", "15551234567:3@s.whatsapp.net")),
                ),
        ),
        (
            "notification_encrypt_count",
            Node::new("notification")
                .attr("from", server)
                .attr("type", "encrypt")
                .attr("id", "2934817235")
                .attr("t", "1700000301")
                .child(Node::new("count").attr("value", "5")),
        ),
        (
            "message_group_skmsg",
            Node::new("message")
                .attr("from", "120363012345678901@g.us")
                .attr("participant", "15551234567:2@s.whatsapp.net")
                .attr("id", "3EB0C431C26A1916E0A5")
                .attr("t", "1700000400")
                .attr("type", "text")
                .child(
                    Node::new("enc")
                        .attr("v", "2")
                        .attr("type", "skmsg")
                        .bytes(blob(96, 17)),
                ),
        ),
        (
            "message_lid_pkmsg",
            Node::new("message")
                .attr("from", "123456789012345@lid")
                .attr("sender_lid", "123456789012345:4@lid")
                .attr("addressing_mode", "lid")
                .attr("id", "3EB0C431C26A1916E0A6")
                .attr("t", "1700000401")
                .attr("type", "text")
                .child(
                    Node::new("enc")
                        .attr("v", "2")
                        .attr("type", "pkmsg")
                        .bytes(blob(300, 23)),
                ),
        ),
        (
            "receipt_read",
            Node::new("receipt")
                .attr("from", "15551234567@s.whatsapp.net")
                .attr("id", "3EB0C431C26A1916E0A5")
                .attr("type", "read")
                .attr("t", "1700000500"),
        ),
        (
            "receipt_status_broadcast",
            Node::new("receipt")
                .attr("to", "status@broadcast")
                .attr("id", "3EB0C431C26A1916E0A7")
                .attr("participant", "15551234567@s.whatsapp.net"),
        ),
        (
            "ack_message",
            Node::new("ack")
                .attr("class", "message")
                .attr("id", "3EB0C431C26A1916E0A5")
                .attr("to", "120363012345678901@g.us")
                .attr("participant", "15551234567:2@s.whatsapp.net"),
        ),
        (
            "presence_available",
            Node::new("presence")
                .attr("name", "Wasp Ops")
                .attr("type", "available"),
        ),
        ("xmlstreamend", stanza::xmlstreamend()),
        (
            "iq_prekey_count_query",
            stanza::prekey_count_query("41372.16812-5"),
        ),
        (
            "iq_prekey_count_result",
            Node::new("iq")
                .attr("from", server)
                .attr("type", "result")
                .attr("id", "41372.16812-5")
                .child(Node::new("count").attr("value", "4")),
        ),
        (
            "iq_prekey_upload",
            iq("41372.16812-6", "set")
                .attr("xmlns", "encrypt")
                .attr("to", server)
                .child(Node::new("registration").bytes(vec![0x00, 0x00, 0x2A, 0x17]))
                .child(Node::new("type").bytes(vec![5]))
                .child(Node::new("identity").bytes(blob(32, 41)))
                .child(Node::new("list").children((1..=3).map(|i| key(i, i as u8)).collect()))
                .child(
                    Node::new("skey")
                        .child(Node::new("id").bytes(vec![0, 0, 1]))
                        .child(Node::new("value").bytes(blob(32, 51)))
                        .child(Node::new("signature").bytes(blob(64, 61))),
                ),
        ),
        ("iq_passive_active", stanza::passive_active("41372.16812-7")),
        (
            "iq_usync_contact_text",
            iq("41372.16812-8", "get")
                .attr("xmlns", "usync")
                .attr("to", server)
                .child(
                    Node::new("usync")
                        .attr("sid", "41372.16812-9")
                        .attr("mode", "query")
                        .attr("last", "true")
                        .attr("index", "0")
                        .attr("context", "interactive")
                        .child(Node::new("query").child(Node::new("contact")))
                        .child(
                            Node::new("list")
                                .child(
                                    Node::new("user")
                                        .child(Node::new("contact").text("15551234567")),
                                )
                                // Raw text goes out as bytes and comes back as bytes.
                                .child(
                                    Node::new("user").child(
                                        Node::new("contact").bytes(b"+15557654321".to_vec()),
                                    ),
                                ),
                        ),
                ),
        ),
        (
            "iq_group_query",
            iq("41372.16812-10", "get")
                .attr("xmlns", "w:g2")
                .attr("to", "120363012345678901@g.us")
                .child(Node::new("query").attr("request", "interactive")),
        ),
        (
            "iq_groups_server",
            iq("41372.16812-11", "get")
                .attr("xmlns", "w:g2")
                .attr("to", "g.us")
                .child(Node::new("participating").child(Node::new("participants"))),
        ),
    ]
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stanzas")
}

fn to_hex(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let lines: Vec<&str> = hex
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    lines.join("\n")
}

/// The fixture holds one `#` comment line (the stanza as XML) then hex lines.
fn fixture_text(node: &Node, bytes: &[u8]) -> String {
    format!("# {node:?}\n{}\n", to_hex(bytes))
}

fn fixture_hex(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<String>()
}

#[test]
fn corpus_matches_fixtures_and_round_trips() {
    let corpus = corpus();
    let bless = std::env::var_os("WASP_BLESS").is_some_and(|v| v == "1");
    let dir = fixture_dir();
    if bless {
        std::fs::create_dir_all(&dir).expect("create fixture dir");
    }

    let mut drift = Vec::new();
    let mut names = BTreeSet::new();
    for (name, node) in &corpus {
        assert!(names.insert(*name), "duplicate corpus name {name}");
        let bytes = encode(node).unwrap_or_else(|e| panic!("{name}: encode: {e}"));
        assert_eq!(bytes[0], 0, "{name}: plain frames start with flag 0");

        let back = decode(&bytes).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
        assert_eq!(&back, node, "{name}: decoded node differs");

        let path = dir.join(format!("{name}.hex"));
        if bless {
            std::fs::write(&path, fixture_text(node, &bytes)).expect("write fixture");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) if fixture_hex(&text) == to_hex(&bytes).replace('\n', "") => {}
            Ok(_) => drift.push(format!("{name}: bytes differ from {}", path.display())),
            Err(e) => drift.push(format!("{name}: cannot read {}: {e}", path.display())),
        }
    }

    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("fixture dir exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".hex")
                .map(str::to_owned)
        })
        .collect();
    for stale in on_disk.iter().filter(|n| !names.contains(n.as_str())) {
        drift.push(format!("{stale}.hex has no stanza in the corpus"));
    }
    assert!(
        drift.is_empty(),
        "encoding drifted from the fixtures (rerun with WASP_BLESS=1 only if intended):\n{}",
        drift.join("\n")
    );
}

#[test]
fn corpus_covers_what_the_issue_asks_for() {
    let corpus = corpus();
    assert!(corpus.len() >= 30, "only {} stanzas", corpus.len());

    let mut values = BTreeSet::new();
    fn walk(node: &Node, values: &mut BTreeSet<String>) {
        for (_, v) in &node.attrs {
            values.insert(v.clone());
        }
        node.nodes().iter().for_each(|c| walk(c, values));
    }
    corpus.iter().for_each(|(_, n)| walk(n, &mut values));
    for jid in [
        "15551234567@s.whatsapp.net",
        "15551234567:2@s.whatsapp.net",
        "123456789012345@lid",
        "123456789012345:12@lid",
        "120363012345678901@g.us",
        "s.whatsapp.net",
        "status@broadcast",
    ] {
        assert!(values.contains(jid), "no stanza carries the JID form {jid}");
    }

    let pair = corpus
        .iter()
        .find(|(n, _)| *n == "iq_pair_device_6_refs")
        .map(|(_, n)| n)
        .expect("pair-device stanza");
    let refs = pair.get_child("pair-device").expect("child").nodes().len();
    assert_eq!(refs, 6);
}

/// Encodings worked out by hand from the version-3 token tables (single-byte tokens:
/// `s.whatsapp.net` 3, `from` 6, `to` 17, `message` 19, `iq` 25, `g.us` 28, `enc` 29,
/// `lid` 118; `ref` is token 80 of the second double-byte dictionary) and the markers
/// LIST_8 248, JID_PAIR 250, AD_JID 247, BINARY_8 252, NIBBLE_8 255, LIST_EMPTY 0.
#[test]
fn hand_checked_encodings_match_the_token_tables() {
    let cases: Vec<(Node, Vec<u8>)> = vec![
        // One-item list: just the tag, as its single-byte token.
        (Node::new("iq"), vec![0, 248, 1, 25]),
        // A bare server is a JID pair with an empty user, not the `s.whatsapp.net` token.
        (
            Node::new("iq").attr("to", "s.whatsapp.net"),
            vec![0, 248, 3, 25, 17, 250, 0, 3],
        ),
        // user:device@s.whatsapp.net is an AD_JID: domain 0, device 4, user packed as nibbles
        // ("123" -> 0x12, 0x3F with the odd-length bit in the length byte).
        (
            Node::new("message").attr("from", "123:4@s.whatsapp.net"),
            vec![0, 248, 3, 19, 6, 247, 0, 4, 255, 0x82, 0x12, 0x3F],
        ),
        // lid:device@lid is an AD_JID with domain 1.
        (
            Node::new("message").attr("from", "1234:7@lid"),
            vec![0, 248, 3, 19, 6, 247, 1, 7, 255, 0x02, 0x12, 0x34],
        ),
        // user@lid and group@g.us are JID pairs of user and server token.
        (
            Node::new("message").attr("from", "1234@lid"),
            vec![0, 248, 3, 19, 6, 250, 255, 0x02, 0x12, 0x34, 118],
        ),
        (
            Node::new("iq").attr("to", "120363@g.us"),
            vec![0, 248, 3, 25, 17, 250, 255, 0x03, 0x12, 0x03, 0x63, 28],
        ),
        // Double-byte token tag, raw bytes content.
        (
            Node::new("ref").bytes(vec![0xAA, 0xBB]),
            vec![0, 248, 2, 237, 80, 252, 2, 0xAA, 0xBB],
        ),
        // Children: a list of one node.
        (
            Node::new("message").child(Node::new("enc")),
            vec![0, 248, 2, 19, 248, 1, 248, 1, 29],
        ),
    ];
    for (node, want) in cases {
        assert_eq!(encode(&node).expect("encode"), want, "{node:?}");
        assert_eq!(decode(&want).expect("decode"), node, "{node:?}");
    }
}

#[test]
fn a_plain_token_server_from_another_client_decodes_to_the_same_string() {
    // Baileys sends `to="s.whatsapp.net"` as the bare token (3), not as a JID pair.
    let node = decode(&[0, 248, 3, 25, 17, 3]).expect("decode");
    assert_eq!(node, Node::new("iq").attr("to", "s.whatsapp.net"));
}

#[test]
fn text_content_survives_as_text_only_in_text_forms() {
    for (text, stays_text) in [
        ("15551234567", true), // packed digits
        ("3EB0C431", true),    // packed hex
        ("available", true),   // dictionary token
        ("hello world", false),
        ("+15551234567", false),
        ("someone@example.com", false),
        ("", false),
    ] {
        let node = Node::new("body").text(text);
        let back = decode(&encode(&node).expect("encode")).expect("decode");
        let want = if stays_text {
            Content::Text(text.into())
        } else {
            Content::Bytes(text.as_bytes().to_vec())
        };
        assert_eq!(back.content, want, "{text:?}");
        assert_eq!(back.content_text(), Some(text));
    }
}

#[test]
fn an_empty_child_list_is_sent_as_no_content() {
    let node = Node::new("list").children(Vec::new());
    let back = decode(&encode(&node).expect("encode")).expect("decode");
    assert_eq!(back, Node::new("list"));
}
