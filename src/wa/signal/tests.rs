//! Round trips between two in-memory Signal stores, and the byte shapes of §6.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;
use crate::wa::message::top_level_fields;
use prost::Message as _;

/// PreKeyWhisperMessage as §6 describes it, to check the library's bytes against.
#[derive(Clone, PartialEq, prost::Message)]
struct PreKeyWhisper {
    #[prost(uint32, optional, tag = "1")]
    pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    base_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    identity_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    message: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "5")]
    registration_id: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    signed_pre_key_id: Option<u32>,
}

/// WhisperMessage's protobuf (between the version byte and the MAC), as §6 describes it.
#[derive(Clone, PartialEq, prost::Message)]
struct Whisper {
    #[prost(bytes = "vec", optional, tag = "1")]
    ratchet_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    counter: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    previous_counter: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ciphertext: Option<Vec<u8>>,
}

fn addr(name: &str, device: u32) -> SignalAddress {
    SignalAddress {
        name: name.to_string(),
        device,
    }
}

/// Alice starts a session with Bob from one of Bob's bundles.
fn open(alice: &mut MemoryStore, bob: &mut MemoryStore) -> u32 {
    let key = bob.generate_prekeys(1).remove(0);
    let bundle = bob.bundle(Some(&key));
    process_bundle(alice, &addr("bob", 0), &bundle).unwrap();
    key.id
}

#[test]
fn addresses_follow_the_jid_domain() {
    let of = |s: &str| SignalAddress::of(&s.parse().unwrap()).to_string();
    assert_eq!(of("15551234567@s.whatsapp.net"), "15551234567.0");
    assert_eq!(of("15551234567:7@s.whatsapp.net"), "15551234567.7");
    assert_eq!(of("987654:3@lid"), "987654_1.3");
    assert_eq!(of("42:1@hosted"), "42_128.1");
    assert_eq!(of("42@hosted.lid"), "42_129.0");
}

#[test]
fn pkmsg_then_reply_then_msg_both_ways() {
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    let used = open(&mut alice, &mut bob);
    let (a, b) = (addr("alice", 0), addr("bob", 0));

    // Until Bob answers, every message Alice sends opens the session.
    for text in ["one", "two"] {
        let (kind, bytes) = encrypt(&mut alice, &b, text.as_bytes()).unwrap();
        assert_eq!(kind, EncType::PkMsg);
        let got = decrypt(&mut bob, &a, kind, &bytes).unwrap();
        assert_eq!(got.plaintext, text.as_bytes());
    }
    assert_eq!(
        bob.prekey(used).unwrap(),
        None,
        "the one-time key is used up"
    );

    let (kind, bytes) = encrypt(&mut bob, &a, b"reply").unwrap();
    assert_eq!(kind, EncType::Msg);
    assert_eq!(
        decrypt(&mut alice, &b, kind, &bytes).unwrap().plaintext,
        b"reply"
    );

    // Alice has now heard from Bob: plain msg from here on, many in a row and out of order.
    let mut sent = Vec::new();
    for i in 0..50 {
        let (kind, bytes) = encrypt(&mut alice, &b, format!("m{i}").as_bytes()).unwrap();
        assert_eq!(kind, EncType::Msg);
        sent.push(bytes);
    }
    let last = sent.pop().unwrap();
    assert_eq!(
        decrypt(&mut bob, &a, EncType::Msg, &last)
            .unwrap()
            .plaintext,
        b"m49"
    );
    for (i, bytes) in sent.iter().enumerate() {
        let got = decrypt(&mut bob, &a, EncType::Msg, bytes).unwrap();
        assert_eq!(got.plaintext, format!("m{i}").as_bytes());
    }
    // A replay is refused and changes nothing.
    assert!(decrypt(&mut bob, &a, EncType::Msg, &last).is_err());
    let (kind, bytes) = encrypt(&mut bob, &a, b"still fine").unwrap();
    assert_eq!(
        decrypt(&mut alice, &b, kind, &bytes).unwrap().plaintext,
        b"still fine"
    );
}

#[test]
fn wire_bytes_have_the_section_6_shape() {
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    let prekey = open(&mut alice, &mut bob);
    let (_, pkmsg) = encrypt(&mut alice, &addr("bob", 0), b"x").unwrap();
    assert_eq!(pkmsg[0], 0x33, "version byte");
    let m = PreKeyWhisper::decode(&pkmsg[1..]).unwrap();
    assert_eq!(m.pre_key_id, Some(prekey));
    assert_eq!(m.registration_id, Some(alice.local().registration_id));
    assert_eq!(m.signed_pre_key_id, Some(1));
    assert_eq!(m.base_key.unwrap().len(), 33);
    // The identity key inside is 33 bytes: 0x05 then Alice's raw key.
    let mut ident = vec![5];
    ident.extend_from_slice(&alice.local().identity.public);
    assert_eq!(m.identity_key, Some(ident));
    let inner = m.message.unwrap();
    assert_eq!(inner[0], 0x33, "the inner msg has its own version byte");

    decrypt(&mut bob, &addr("alice", 0), EncType::PkMsg, &pkmsg).unwrap();
    let (_, msg) = encrypt(&mut bob, &addr("alice", 0), b"y").unwrap();
    assert_eq!(msg[0], 0x33);
    // 0x33 ‖ protobuf{1 ratchet key 33 B, 2 counter, 3 previous counter, 4 ciphertext} ‖ MAC 8.
    let body = &msg[1..msg.len() - 8];
    let fields: Vec<u32> = top_level_fields(body).iter().map(|f| f.0).collect();
    assert_eq!(fields.first(), Some(&1));
    assert!(fields.contains(&4), "{fields:?}");
    assert_eq!(&body[..2], &[0x0A, 33]);
}

#[test]
fn a_bundle_without_one_time_key_still_opens_a_session() {
    let mut alice = MemoryStore::generate();
    let bob = MemoryStore::generate();
    let mut bob = bob;
    process_bundle(&mut alice, &addr("bob", 0), &bob.bundle(None)).unwrap();
    let (kind, bytes) = encrypt(&mut alice, &addr("bob", 0), b"no otk").unwrap();
    assert_eq!(kind, EncType::PkMsg);
    let got = decrypt(&mut bob, &addr("alice", 0), kind, &bytes).unwrap();
    assert_eq!(got.plaintext, b"no otk");
}

#[test]
fn a_forged_bundle_is_refused_and_stores_nothing() {
    let mut alice = MemoryStore::generate();
    let bob = MemoryStore::generate();
    let mut bundle = bob.bundle(None);
    bundle.signed.signature[0] ^= 1;
    assert!(process_bundle(&mut alice, &addr("bob", 0), &bundle).is_err());
    assert!(!has_session(&alice, &addr("bob", 0)).unwrap());
    assert!(matches!(
        encrypt(&mut alice, &addr("bob", 0), b"x"),
        Err(SignalError::NoSession(_))
    ));
}

#[test]
fn a_corrupted_session_fails_and_heals_with_a_new_bundle() {
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    let (a, b) = (addr("alice", 0), addr("bob", 0));
    open(&mut alice, &mut bob);
    let (kind, bytes) = encrypt(&mut alice, &b, b"first").unwrap();
    decrypt(&mut bob, &a, kind, &bytes).unwrap();
    // Bob loses his session: Alice's next message (still a pkmsg, but its one-time key is
    // gone) cannot be decrypted, and the failure leaves Bob's store as it was.
    bob.set_raw_session(&a, vec![1, 2, 3]);
    let before = bob.clone().session_addresses();
    let (kind, bytes) = encrypt(&mut alice, &b, b"second").unwrap();
    assert!(decrypt(&mut bob, &a, kind, &bytes).is_err());
    assert_eq!(bob.session_addresses(), before);
    // The retry path: Bob's fresh keys, a new session, and the resend decrypts.
    delete_session(&mut bob, &a).unwrap();
    open(&mut alice, &mut bob);
    let (kind, bytes) = encrypt(&mut alice, &b, b"second").unwrap();
    assert_eq!(kind, EncType::PkMsg);
    assert_eq!(
        decrypt(&mut bob, &a, kind, &bytes).unwrap().plaintext,
        b"second"
    );
}

#[test]
fn a_new_identity_is_reported() {
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    open(&mut alice, &mut bob);
    let (kind, bytes) = encrypt(&mut alice, &addr("bob", 0), b"hi").unwrap();
    assert!(
        !decrypt(&mut bob, &addr("alice", 0), kind, &bytes)
            .unwrap()
            .identity_changed
    );
    // Alice reinstalls: new keys, same address.
    let mut alice = MemoryStore::generate();
    open(&mut alice, &mut bob);
    let (kind, bytes) = encrypt(&mut alice, &addr("bob", 0), b"again").unwrap();
    let got = decrypt(&mut bob, &addr("alice", 0), kind, &bytes).unwrap();
    assert!(got.identity_changed);
    assert_eq!(got.plaintext, b"again");
}

#[test]
fn group_messages_decrypt_with_the_distributed_sender_key() {
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    let id = SenderKeyId {
        group: "1203630@g.us".to_string(),
        sender: addr("alice", 0),
    };
    let skdm = sender_key_distribution(&mut alice, &id).unwrap();
    assert_eq!(skdm[0], 0x33);
    process_sender_key_distribution(&mut bob, &id, &skdm).unwrap();
    for text in ["g1", "g2", "g3"] {
        let skmsg = group_encrypt(&mut alice, &id, text.as_bytes()).unwrap();
        assert_eq!(
            group_decrypt(&mut bob, &id, &skmsg).unwrap(),
            text.as_bytes()
        );
    }
    let other = SenderKeyId {
        sender: addr("carol", 0),
        ..id
    };
    assert!(matches!(
        group_decrypt(&mut bob, &other, &[0x33]),
        Err(SignalError::NoSenderKey(_))
    ));
}

#[test]
fn debug_output_shows_no_key_material() {
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    open(&mut alice, &mut bob);
    let session = alice.session(&addr("bob", 0)).unwrap().unwrap();
    let changes = Changes {
        sessions: vec![(addr("bob", 0), session.clone())],
        ..Changes::default()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for text in [format!("{changes:?}"), format!("{alice:?}")] {
        assert!(!text.contains(&hex(&session[..8])), "{text}");
        assert!(!text.contains(&format!("{:?}", &session[..8])), "{text}");
        assert!(
            !text.contains(&hex(alice.local().identity.private.expose())),
            "{text}"
        );
    }
}

#[test]
fn counters_advance_by_one_through_the_stored_bytes() {
    // Every operation reloads the session from the store's bytes (as after a restart); the
    // waived counter lease means no counters are skipped on reload.
    let mut alice = MemoryStore::generate();
    let mut bob = MemoryStore::generate();
    open(&mut alice, &mut bob);
    let (kind, bytes) = encrypt(&mut alice, &addr("bob", 0), b"open").unwrap();
    decrypt(&mut bob, &addr("alice", 0), kind, &bytes).unwrap();
    let (kind, bytes) = encrypt(&mut bob, &addr("alice", 0), b"ok").unwrap();
    decrypt(&mut alice, &addr("bob", 0), kind, &bytes).unwrap();
    let mut counters = Vec::new();
    for i in 0..100 {
        let mut restarted = alice.clone();
        let (kind, bytes) = encrypt(&mut restarted, &addr("bob", 0), &[i]).unwrap();
        alice = restarted;
        assert_eq!(kind, EncType::Msg);
        let w = Whisper::decode(&bytes[1..bytes.len() - 8]).unwrap();
        assert_eq!(w.ratchet_key.unwrap().len(), 33);
        counters.push(w.counter.unwrap());
        assert_eq!(
            decrypt(&mut bob, &addr("alice", 0), kind, &bytes)
                .unwrap()
                .plaintext,
            [i]
        );
    }
    let first = counters[0];
    assert_eq!(counters, (first..first + 100).collect::<Vec<_>>());
}
