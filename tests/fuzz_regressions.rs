//! The fuzz targets' kept inputs on stable, in every `cargo test`: each file under
//! `fuzz/seeds/<target>/` (valid inputs written by the real code, the fuzzers' starting
//! corpus) and `fuzz/regressions/<target>/` (every crash, hang or OOM a fuzzer found, fixed
//! since) goes to the same `wasp::fuzzing::<target>` function the fuzz target calls.
//!
//! `cargo test --test fuzz_regressions -- --ignored write_seeds` rewrites the generated seeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use wasp::fuzzing::TARGETS;
use wasp::wa::creds::Credentials;
use wasp::wa::frame::{client_intro, encode_frame};
use wasp::wa::message::{self, Message};
use wasp::wa::node::{self, Node};
use wasp::wa::noise::CertAuthority;
use wasp::wa::signal::{self, MemoryStore, SenderKeyId, SignalAddress, SignalStore};
use wasp::wa::{ack, stanza};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files kept for `target` in `folder` (none when the folder does not exist).
fn kept(folder: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(fuzz_dir().join(folder).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read a fuzz folder entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_input_runs_clean() {
    for (target, run) in TARGETS {
        let seeds = kept("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ holds no seed");
        for path in seeds.iter().chain(&kept("regressions", target)) {
            let bytes = fs::read(path).expect("read a kept fuzz input");
            run(&bytes);
        }
    }
}

#[test]
fn every_fuzz_target_has_a_target_file_calling_its_function() {
    for (target, _) in TARGETS {
        let path = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = fs::read_to_string(&path).expect("read a fuzz target");
        assert!(
            text.contains("wasp::fuzzing::"),
            "{} calls no entry",
            path.display()
        );
        let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz manifest");
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} not in fuzz/Cargo.toml"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Seeds, written by the real code
// ------------------------------------------------------------------------------------------

fn nodes() -> Vec<Node> {
    let peer = "15550002222@s.whatsapp.net";
    vec![
        stanza::ping("p1"),
        stanza::iq_result("r1"),
        stanza::iq_error("e1", 401, "not-authorized"),
        stanza::pair_device("pd1", &["2@ref-one".to_string(), "2@ref-two".to_string()]),
        stanza::stream_error(515),
        stanza::conflict_replaced(),
        stanza::device_removed(),
        stanza::failure(401, &[("location", "frc")]),
        stanza::xmlstreamend(),
        stanza::success(Some("123456789@lid"), 1_700_000_000),
        stanza::prekey_count_query("c1"),
        ack::offline_batch(),
        ack::edge_routing_node(&[8, 1, 2, 3]),
        Node::new("ib").child(Node::new("offline").attr("count", "3")),
        Node::new("notification")
            .attr("id", "n1")
            .attr("from", "s.whatsapp.net")
            .attr("type", "encrypt")
            .child(Node::new("count").attr("value", "4")),
        Node::new("message")
            .attr("id", "3EB0AABBCCDDEEFF001122")
            .attr("from", "15550002222:3@s.whatsapp.net")
            .attr("t", "1700000000")
            .attr("type", "text")
            .child(
                Node::new("enc")
                    .attr("v", "2")
                    .attr("type", "pkmsg")
                    .bytes(vec![0x33; 40]),
            ),
        Node::new("receipt")
            .attr("id", "3EB0AABBCCDDEEFF001122")
            .attr("from", peer)
            .attr("type", "read")
            .attr("t", "1700000001"),
        Node::new("ack")
            .attr("id", "3EB0AABBCCDDEEFF001122")
            .attr("class", "message")
            .attr("from", peer)
            .attr("t", "1700000002"),
    ]
}

fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_string(), bytes));
    };

    // frame: the first byte is the side (0x80 server) and read size.
    let mut stream = Vec::new();
    for payload in [&b"hello"[..], b"", &[7u8; 300][..]] {
        encode_frame(payload, &mut stream).expect("frame");
    }
    add("frame", "client-frames", [&[0x04][..], &stream].concat());
    let mut server = client_intro(Some(b"route"));
    server.extend_from_slice(&stream);
    add(
        "frame",
        "server-intro-routing",
        [&[0x80 | 0x09][..], &server].concat(),
    );

    // noise: 2 with nothing to flip is a whole good handshake; 1 carries a chain.
    add("noise_server_hello", "good-handshake", vec![2]);
    let ca = CertAuthority::from_private([0x55; 32]);
    let chain = ca.issue_chain(&[0x66; 32], 1_700_000_000, 3600);
    add(
        "noise_server_hello",
        "chain-payload",
        [&[1][..], &chain].concat(),
    );

    for (i, n) in nodes().iter().enumerate() {
        let plain = node::encode(n).expect("encode a seed node");
        add("node", &format!("{}-{i}", n.tag), plain.clone());
        add("stanza", &format!("{}-{i}", n.tag), plain);
    }
    let compressed = node::encode_compressed(&nodes()[3]).expect("compress a seed node");
    add("node", "compressed-pair-device", compressed);

    let creds = serde_json::to_vec(&Credentials::generate()).expect("credentials json");
    add(
        "credentials",
        "sealed-credentials",
        seal_like_the_store("credentials", &creds),
    );
    add("credentials", "credentials-json", creds);
    let status = br#"{"was_online":true,"phone":"+15550001111"}"#.to_vec();
    add(
        "credentials",
        "sealed-status",
        seal_like_the_store("status", &status),
    );

    let (session, sender_key) = signal_records();
    add("key_records", "session-record", session);
    add("key_records", "sender-key-record", sender_key);
    add("key_records", "device-list", b"0,3,17".to_vec());

    let admin = [
        r#"{"qr":"2@ref,AAAA,BBBB,CCCC","phone":"+15550001111"}"#,
        r#"{"phone":"15550001111","code":"ABCD-EFGH"}"#,
        r#"{"device":"15550001111:3@s.whatsapp.net","kind":"stream-error","code":503}"#,
        r#"{"seed":7,"every_ms":500,"kinds":[{"kind":"drop"},{"kind":"stall"}]}"#,
        r#"{"min_version":"2.3000.0","max_unacked":3}"#,
        r#"{"device":"*","n":5}"#,
        r#"{"from":"15550001111","to":"15550002222","text":"hi"}"#,
        r#"{"phone":"15550001111"}"#,
    ];
    for (i, body) in admin.iter().enumerate() {
        let endpoint = wasp::sim::ADMIN_BODY_ENDPOINTS[i];
        add(
            "sim_admin",
            endpoint,
            [&[i as u8][..], body.as_bytes()].concat(),
        );
    }

    let text = Message::text("hello");
    add(
        "message",
        "text",
        message::pad_with(text.encode_to_vec(), 3),
    );
    let copy = Message::device_sent("15550002222@s.whatsapp.net", &text);
    add(
        "message",
        "device-sent",
        message::pad_with(copy.encode_to_vec(), 1),
    );
    out
}

use prost::Message as _;

/// A sealed file as the store writes it, read back from a real `FileStore`.
fn seal_like_the_store(kind: &str, body: &[u8]) -> Vec<u8> {
    use wasp::store::{CredentialStore, FileStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::new(dir.path());
    match kind {
        "credentials" => {
            store.save("seed", body).expect("save credentials");
            fs::read(store.credentials_path("seed").expect("path")).expect("read credentials")
        }
        _ => {
            let status: wasp::store::PersistedStatus =
                serde_json::from_slice(body).expect("status json");
            store.save_status("seed", &status).expect("save status");
            fs::read(store.status_path("seed").expect("path")).expect("read status")
        }
    }
}

/// A real Signal session record and group sender-key record, as keys.db stores them.
fn signal_records() -> (Vec<u8>, Vec<u8>) {
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    let prekeys = bob.generate_prekeys(1);
    let bob_address = SignalAddress {
        name: "15550002222".to_string(),
        device: 0,
    };
    signal::process_bundle(&mut alice, &bob_address, &bob.bundle(prekeys.first()))
        .expect("process bundle");
    signal::encrypt(
        &mut alice,
        &bob_address,
        &message::pad_with(b"hi".to_vec(), 2),
    )
    .expect("encrypt");
    let session = alice
        .session(&bob_address)
        .expect("session")
        .expect("a session after encrypting");
    let id = SenderKeyId {
        group: "120363000000000000@g.us".to_string(),
        sender: bob_address,
    };
    signal::sender_key_distribution(&mut alice, &id).expect("sender key");
    let sender_key = alice.sender_key(&id).expect("sender key").expect("stored");
    (session, sender_key)
}

#[test]
#[ignore = "writes fuzz/seeds/; run by hand when the seeds should change"]
fn write_seeds() {
    for (target, name, bytes) in seeds() {
        let dir = fuzz_dir().join("seeds").join(target);
        fs::create_dir_all(&dir).expect("seed dir");
        fs::write(dir.join(name), bytes).expect("write seed");
    }
}

/// The seeds are inputs the real code accepts, so the fuzzers start deep.
#[test]
fn generated_seeds_are_accepted_by_the_real_parsers() {
    for (target, name, bytes) in seeds() {
        let (_, run) = TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .unwrap_or_else(|| panic!("seed {name} names no target {target}"));
        run(&bytes);
        match target {
            "node" | "stanza" => assert!(node::decode(&bytes).is_ok(), "{target}/{name}"),
            "message" => assert!(message::decode_padded(&bytes).is_ok(), "{name}"),
            "sim_admin" => {
                let endpoint = wasp::sim::ADMIN_BODY_ENDPOINTS[usize::from(bytes[0])];
                let checked = wasp::sim::check_admin_body(endpoint, &bytes[1..]);
                assert_eq!(checked, Ok(()), "{name}");
            }
            _ => {}
        }
    }
}

#[test]
fn admin_bodies_are_refused_with_a_reason() {
    let refused = wasp::sim::check_admin_body("plan", br#"{"seed":1,"every_ms":1}"#);
    assert_eq!(refused, Err("every_ms must be at least 10".to_string()));
    let refused = wasp::sim::check_admin_body("scan", br#"{"qr":"x","tamper":"nope"}"#);
    assert!(refused.is_err_and(|why| why.contains("unknown tamper")));
    let refused = wasp::sim::check_admin_body("fault", b"{");
    assert!(refused.is_err_and(|why| why.starts_with("bad JSON")));
}
