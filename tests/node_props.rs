//! Properties of the node codec: hostile bytes never panic (they are errors), well-formed
//! trees round-trip exactly, compressed bodies work and are capped, and nodes the wire
//! cannot carry are refused at encode time instead of being mangled.

#![allow(clippy::expect_used)] // a failed expect is a failed test

use std::io::Write;

use proptest::prelude::*;
use wasp::wa::node::{Content, MAX_INFLATED, Node, NodeError, decode, encode, encode_compressed};

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Tags, names and values that are dictionary tokens (single- and double-byte).
const TOKENS: &[&str] = &[
    "iq",
    "message",
    "enc",
    "type",
    "id",
    "to",
    "from",
    "xmlns",
    "result",
    "get",
    "set",
    "ref",
    "pair-device",
    "stream:error",
    "conflict",
    "failure",
    "list",
    "key",
    "count",
    "success",
    "notification",
    "receipt",
    "ack",
    "w:p",
    "urn:xmpp:ping",
    "passive",
    "active",
];

/// Strings written as plain strings: tokens, packed digits or hex, or raw bytes (no `@`).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TOKENS).prop_map(str::to_owned),
        "[a-z][a-z0-9_:-]{0,12}",
        "[0-9]{1,20}",
        "[^@]{0,24}",
    ]
}

/// JIDs in every form the wire carries.
fn jid() -> impl Strategy<Value = String> {
    let user = "[1-9][0-9]{5,15}";
    prop_oneof![
        Just("s.whatsapp.net".to_owned()),
        Just("g.us".to_owned()),
        Just("status@broadcast".to_owned()),
        user.prop_map(|u| format!("{u}@s.whatsapp.net")),
        (user, 1u16..=255).prop_map(|(u, d)| format!("{u}:{d}@s.whatsapp.net")),
        user.prop_map(|u| format!("{u}@lid")),
        (user, 1u16..=255).prop_map(|(u, d)| format!("{u}:{d}@lid")),
        "1203630[0-9]{11}".prop_map(|g| format!("{g}@g.us")),
    ]
}

fn attr_value() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        jid(),
        "[0-9A-F]{1,40}",
        "[^@]{128,200}",
        Just(String::new()),
    ]
}

/// Text that the wire carries as text (token or packed), so it decodes as text again.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TOKENS).prop_map(str::to_owned),
        "[0-9.-]{1,60}",
        "[0-9A-F]{1,60}",
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    let content = prop_oneof![
        Just(Content::None),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Content::Bytes),
        text().prop_map(Content::Text),
    ];
    (
        name(),
        prop::collection::vec((name(), attr_value()), 0..5),
        content,
    )
        .prop_map(|(tag, attrs, content)| Node {
            tag,
            attrs,
            content,
        })
}

fn tree() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        (leaf(), prop::collection::vec(inner, 1..6)).prop_map(|(mut node, children)| {
            node.content = Content::Nodes(children);
            node
        })
    })
}

/// Bytes biased towards the codec's markers, so garbage gets past the first byte.
fn marker_soup() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        Just(0u8),
        Just(1),
        Just(2),
        Just(3),
        Just(25),
        236u8..=239,
        245u8..=255,
        any::<u8>(),
    ];
    prop::collection::vec(byte, 0..400)
}

fn deflate(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut out = Vec::new();
    let mut z = flate2::write::ZlibEncoder::new(&mut out, level);
    z.write_all(bytes).expect("deflate");
    z.finish().expect("deflate");
    out
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn marker_soup_never_panics(mut bytes in marker_soup(), flag in 0u8..2) {
        bytes.insert(0, flag);
        let _ = decode(&bytes);
    }

    #[test]
    fn compressed_garbage_never_panics(bytes in marker_soup()) {
        let mut payload = vec![2u8];
        payload.extend(deflate(&bytes, flate2::Compression::fast()));
        let _ = decode(&payload);
    }

    #[test]
    fn damaged_encodings_never_panic(
        node in tree(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = encode(&node).expect("encode");
        for (at, value, kind) in edits {
            let i = at.index(bytes.len().max(1));
            match kind {
                0 if i < bytes.len() => bytes[i] = value,
                1 => bytes.insert(i.min(bytes.len()), value),
                _ => bytes.truncate(i.max(1)),
            }
        }
        let _ = decode(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn well_formed_trees_round_trip(node in tree()) {
        let plain = encode(&node).expect("encode");
        prop_assert_eq!(plain[0], 0);
        prop_assert_eq!(decode(&plain).expect("decode"), node.clone());

        let packed = encode_compressed(&node).expect("encode compressed");
        prop_assert_eq!(packed[0], 2);
        prop_assert_eq!(decode(&packed).expect("decode compressed"), node);
    }
}

// ---------------------------------------------------------------------------
// Compressed bodies
// ---------------------------------------------------------------------------

#[test]
fn compressed_body_round_trips_and_is_smaller_for_repetitive_content() {
    let node = Node::new("iq")
        .attr("id", "7")
        .attr("type", "result")
        .children(
            (0..200)
                .map(|i| {
                    Node::new("item")
                        .attr("id", i.to_string())
                        .bytes(vec![7; 64])
                })
                .collect(),
        );
    let plain = encode(&node).expect("encode");
    let packed = encode_compressed(&node).expect("encode compressed");
    assert_eq!(packed[0], 2, "flag bit 2 marks a zlib body");
    assert!(packed.len() < plain.len() / 4);
    assert_eq!(decode(&packed).expect("decode"), node);
}

#[test]
fn an_inflate_bomb_is_refused_at_the_cap() {
    let mut payload = vec![2u8];
    payload.extend(deflate(
        &vec![0u8; MAX_INFLATED + 1024],
        flate2::Compression::best(),
    ));
    assert!(payload.len() < 64 * 1024, "the bomb is small on the wire");
    match decode(&payload) {
        Err(NodeError::InflatedTooLarge { limit }) => assert_eq!(limit, 1 << 24),
        other => panic!("expected InflatedTooLarge, got {other:?}"),
    }
}

#[test]
fn a_body_that_is_not_zlib_is_an_inflate_error() {
    let result = decode(&[2, 1, 2, 3, 4]);
    assert!(matches!(result, Err(NodeError::Inflate(_))), "{result:?}");
}

// ---------------------------------------------------------------------------
// Hostile shapes the codec alone would not survive
// ---------------------------------------------------------------------------

fn is_malformed(result: Result<Node, NodeError>) -> bool {
    matches!(result, Err(NodeError::Malformed(_)))
}

#[test]
fn a_chain_of_jid_markers_is_an_error_not_a_stack_overflow() {
    // wacore-binary 0.7.0 recurses once per JID_PAIR marker and aborts on this input.
    let mut payload = vec![0, 248, 3, 25, 17];
    payload.extend(std::iter::repeat_n(250u8, 1_000_000));
    assert!(is_malformed(decode(&payload)));
}

#[test]
fn nodes_nested_too_deep_are_an_error() {
    let mut payload = vec![0];
    for _ in 0..10_000 {
        payload.extend([248, 2, 25, 248, 1]);
    }
    payload.extend([248, 1, 25]);
    assert!(is_malformed(decode(&payload)));

    let mut deep = Node::new("leaf");
    for _ in 0..200 {
        deep = Node::new("iq").child(deep);
    }
    assert!(matches!(encode(&deep), Err(NodeError::Encode(_))));
}

#[test]
fn counts_not_backed_by_bytes_are_errors() {
    // A node claiming 65535 items, and a child list claiming 65535 children, with nothing
    // behind them: refused before the codec reserves memory for them.
    assert!(is_malformed(decode(&[0, 249, 0xFF, 0xFF, 25])));
    let mut nested = vec![0];
    for _ in 0..100 {
        nested.extend([248, 2, 25, 249, 0xFF, 0xFF]);
    }
    assert!(is_malformed(decode(&nested)));
}

#[test]
fn truncated_and_trailing_bytes_are_errors() {
    assert!(matches!(decode(&[]), Err(NodeError::Empty)));
    assert!(is_malformed(decode(&[0])));
    assert!(is_malformed(decode(&[0, 248])));
    assert!(is_malformed(decode(&[0, 248, 2, 25, 252, 10, 1, 2])));
    assert!(is_malformed(decode(&[0, 248, 1, 25, 99])));
    // An unknown server in a JID pair, and an unknown single-byte token.
    assert!(is_malformed(decode(&[
        0, 248, 3, 25, 17, 250, 0, 252, 1, b'x'
    ])));
    assert!(is_malformed(decode(&[0, 248, 1, 240])));
}

// ---------------------------------------------------------------------------
// Nodes the wire cannot carry are refused, not mangled
// ---------------------------------------------------------------------------

#[test]
fn values_the_wire_would_change_are_refused() {
    for value in [
        "someone@example.com",    // unknown server
        "@s.whatsapp.net",        // empty user would come back as the bare server
        "123.4@s.whatsapp.net",   // legacy device spelling would come back as 123:4@..
        "123:0@s.whatsapp.net",   // device 0 would be dropped
        "123:300@s.whatsapp.net", // device does not fit the AD_JID byte
        "123:4@g.us",             // group JIDs carry no device
        "a@b@s.whatsapp.net",
    ] {
        let node = Node::new("iq").attr("to", value);
        assert!(
            matches!(encode(&node), Err(NodeError::Encode(_))),
            "{value:?} should be refused"
        );
    }
    assert!(matches!(
        encode(&Node::new("a@b")),
        Err(NodeError::Encode(_))
    ));
    assert!(matches!(
        encode(&Node::new("iq").attr("x@y", "1")),
        Err(NodeError::Encode(_))
    ));
}

#[test]
fn text_that_looks_like_a_jid_goes_out_as_bytes() {
    let node = Node::new("body").text("15551234567@s.whatsapp.net");
    let back = decode(&encode(&node).expect("encode")).expect("decode");
    assert_eq!(back.content_text(), Some("15551234567@s.whatsapp.net"));
}
