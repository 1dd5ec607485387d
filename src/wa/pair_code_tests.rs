//! Fixed vectors for code pairing, and the two ends talking to each other.
//!
//! The vectors were computed from the protocol facts (PROTOCOL-MESSAGING.md section 7) with
//! Python 3's `hashlib` and the `cryptography` package (48.0), independently of this code:
//! - code: `int.from_bytes(bytes, "big")`, 8 groups of 5 bits from the top, each an index into
//!   `123456789ABCDEFGHJKLMNPQRSTVWXYZ`; `01 23 45 67 89` gives `15JMBSWA`;
//! - code key: `hashlib.pbkdf2_hmac("sha256", b"15JMBSWA", b"\x11" * 32, 2 << 16, 32)`;
//! - companion ephemeral = X25519 private `41 * 32`; wrapped = salt `11 * 32` ‖ iv `22 * 16` ‖
//!   `Cipher(AES(key), CTR(iv))` over its public key;
//! - primary ephemeral private `42 * 32`, primary identity private `43 * 32`, companion
//!   identity private `44 * 32`; the primary's wrapped key uses salt `55 * 32`, iv `66 * 16`;
//! - bundle key = HKDF-SHA256(X25519(eph, eph), salt `77 * 32`,
//!   "link_code_pairing_key_bundle_encryption_key"); bundle = salt ‖ nonce `88 * 12` ‖
//!   `AESGCM(key).encrypt(nonce, companion id pub ‖ primary id pub ‖ 99 * 32, None)`;
//! - adv secret = HKDF-SHA256(ephemeral shared ‖ X25519(companion id, primary id) ‖
//!   `99 * 32`, salt = 32 zero bytes (RFC 5869's default), "adv_secret").
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn key(byte: u8) -> KeyPair {
    KeyPair::from_private(SecretKey::from_bytes([byte; 32]))
}

const KEY: &str = "2a448da0bfe9471f05f4cc1435de32a8a40f047278233b0f8f083a091e31953f";
const WRAPPED_COMPANION: &str = "1111111111111111111111111111111111111111111111111111111111111111\
    22222222222222222222222222222222\
    9013de150c301ebc4f96e49ff3f65bafb5bbb61d169b3d1f8ba4e0fe1073fdb6";
const WRAPPED_PRIMARY: &str = "5555555555555555555555555555555555555555555555555555555555555555\
    66666666666666666666666666666666\
    0455c5217e1a1edd81402800c30d65a6d0ddd197a76c8532be3e5f343a725fa9";
const PRIMARY_IDENTITY: &str = "cdefd8783a91b446640e2e1f95599db35e484a0071bd2182b3b60d0812c10c70";
const BUNDLE: &str = "7777777777777777777777777777777777777777777777777777777777777777\
    888888888888888888888888\
    e47887deec3b6e76479d027cb89f80c1407094c5e585cc32baba7a44cca203d5dcd60266d698c1b4223be08b0a6402\
    6d222fcd85d2f5461a2b6c3b0782fa94aef3d269257612498dfbc30a19dc2ceee511bac3c7e8771124cccdf75955c7\
    02108d44bb43c8875640660a6dea197a2cae";
const ADV: &str = "bd2f7a4b4eb91789ac807feb0b09bceb6c72f88d9eb33b3475beb015200fcf4f";

fn strip(text: &str) -> String {
    text.split_whitespace().collect()
}

#[test]
fn codes_come_from_five_bytes_in_the_pairing_alphabet() {
    assert_eq!(LinkCode::from_bytes([0; 5]).as_str(), "11111111");
    assert_eq!(LinkCode::from_bytes([0xff; 5]).as_str(), "ZZZZZZZZ");
    let code = LinkCode::from_bytes([0x01, 0x23, 0x45, 0x67, 0x89]);
    assert_eq!(code.as_str(), "15JMBSWA");
    assert_eq!(code.shown(), "15JM-BSWA");
    assert_eq!(LinkCode::parse("15jm-bswa").unwrap(), code);
    assert_eq!(format!("{code:?}"), "LinkCode(<redacted>)");
    for bad in ["15JM-BSW", "15JM-BSWAX", "15JM-BSW0", "OOOOIIII", ""] {
        let err = LinkCode::parse(bad).unwrap_err();
        assert!(
            err.to_string().contains("not a pairing code"),
            "{bad}: {err}"
        );
    }
    let random = LinkCode::random();
    assert_eq!(LinkCode::parse(&random.shown()).unwrap(), random);
}

#[test]
fn phone_numbers_are_digits_with_the_country_code() {
    assert_eq!(phone_digits("+1 (555) 123-4567").unwrap(), "15551234567");
    for bad in [
        "+0155512345",
        "123456",
        "15551x34567",
        "",
        "1234567890123456",
    ] {
        let err = phone_digits(bad).unwrap_err();
        assert!(
            err.to_string().contains("more than 6 digits"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn the_code_key_and_wrapping_match_the_fixed_vectors() {
    let code = LinkCode::from_bytes([0x01, 0x23, 0x45, 0x67, 0x89]);
    assert_eq!(code_key(&code, &[0x11; 32]).to_vec(), hex(KEY));
    let ephemeral = key(0x41);
    let wrapped = wrap_key(&code, [0x11; 32], [0x22; 16], &ephemeral.public);
    assert_eq!(wrapped.to_vec(), hex(&strip(WRAPPED_COMPANION)));
    assert_eq!(unwrap_key(&code, &wrapped), ephemeral.public);
    assert_eq!(key(0x43).public.to_vec(), hex(PRIMARY_IDENTITY));
}

#[test]
fn the_key_bundle_and_adv_secret_match_the_fixed_vectors() {
    let code = LinkCode::from_bytes([0x01, 0x23, 0x45, 0x67, 0x89]);
    let companion = CompanionCode::with_ephemeral("15551234567".into(), code.clone(), key(0x41));
    let hello = PrimaryHello {
        reference: b"ref-1".to_vec(),
        primary_identity: key(0x43).public,
        wrapped_ephemeral: hex(&strip(WRAPPED_PRIMARY)).try_into().unwrap(),
    };
    let randoms = ([0x77; 32], [0x88; 12], [0x99; 32]);
    let (adv, finish) = companion
        .finish_with("f1", &key(0x44), &hello, randoms)
        .unwrap();
    assert_eq!(adv.expose().to_vec(), hex(ADV));
    let parsed = parse_companion_finish(&finish).unwrap();
    assert_eq!(parsed.wrapped_bundle, hex(&strip(BUNDLE)));
    assert_eq!(parsed.identity, key(0x44).public);
    assert_eq!(parsed.reference, b"ref-1");
    assert_eq!(parsed.phone, "15551234567");

    // The phone, with the same code, opens the bundle and derives the same adv secret.
    let companion_hello = CompanionHello {
        phone: "15551234567".into(),
        wrapped_ephemeral: hex(&strip(WRAPPED_COMPANION)).try_into().unwrap(),
        noise_public: [0; 32],
        display: DeviceName::default(),
    };
    let opened = open_bundle(&code, &companion_hello, &key(0x42), &key(0x43), &parsed).unwrap();
    assert_eq!(opened.expose().to_vec(), hex(ADV));
    // Another code typed on the phone: the bundle does not decrypt.
    let typo = LinkCode::parse("15JM-BSWB").unwrap();
    let err = open_bundle(&typo, &companion_hello, &key(0x42), &key(0x43), &parsed).unwrap_err();
    assert_eq!(err, PairCodeError::WrongCode);
}

#[test]
fn hello_and_primary_hello_round_trip_between_the_ends() {
    let code = LinkCode::random();
    let mut companion = CompanionCode::new("15551234567".into(), code.clone());
    let device: DeviceName = "Firefox (Linux)".parse().unwrap();
    let iq = companion.hello("h1", &[7; 32], &device);
    let wire = crate::wa::node::decode(&crate::wa::node::encode(&iq).unwrap()).unwrap();
    assert_eq!(companion_stage(&wire), Some("companion_hello"));
    let hello = parse_companion_hello(&wire).unwrap();
    assert_eq!(hello.phone, "15551234567");
    assert_eq!(hello.noise_public, [7; 32]);
    assert_eq!(hello.display, device);

    companion
        .take_answer(&hello_answer("h1", b"ref-9"))
        .unwrap();
    let (primary_identity, primary_ephemeral) = (KeyPair::generate(), KeyPair::generate());
    let primary = primary_hello(
        &code,
        &primary_identity.public,
        &primary_ephemeral,
        b"ref-9",
    );
    let note = primary.notification("n1", 1_700_000_000);
    assert!(is_primary_hello(&note));
    let read = parse_primary_hello(&note).unwrap();
    assert_eq!(read, primary);

    let identity = KeyPair::generate();
    let (adv, finish) = companion.finish("f1", &identity, &read).unwrap();
    let finish = parse_companion_finish(&finish).unwrap();
    let opened = open_bundle(
        &code,
        &hello,
        &primary_ephemeral,
        &primary_identity,
        &finish,
    );
    assert_eq!(opened.unwrap(), adv);

    // A notification for another ref is refused by the companion.
    let other = primary_hello(
        &code,
        &primary_identity.public,
        &primary_ephemeral,
        b"ref-8",
    );
    let err = companion.finish("f2", &identity, &other).unwrap_err();
    assert_eq!(err, PairCodeError::RefMismatch);
}

#[test]
fn the_server_refuses_a_hello_it_would_not_accept() {
    let companion = CompanionCode::new("15551234567".into(), LinkCode::random());
    let good = companion.hello("h1", &[7; 32], &DeviceName::default());
    let edit = |f: &dyn Fn(&mut Node)| {
        let mut iq = good.clone();
        if let crate::wa::node::Content::Nodes(list) = &mut iq.content {
            f(&mut list[0]);
        }
        parse_companion_hello(&iq).unwrap_err().to_string()
    };
    let set_child = |tag: &'static str, node: Node| {
        move |reg: &mut Node| {
            if let crate::wa::node::Content::Nodes(list) = &mut reg.content {
                let slot = list.iter_mut().find(|n| n.tag == tag).unwrap();
                *slot = node.clone();
            }
        }
    };
    let display = Node::new("companion_platform_display").text("wasp");
    assert!(edit(&set_child("companion_platform_display", display)).contains("display"));
    let nonce = Node::new("link_code_pairing_nonce").bytes(vec![9u8]);
    assert!(edit(&set_child("link_code_pairing_nonce", nonce)).contains("nonce"));
    let wrapped = Node::new("link_code_pairing_wrapped_companion_ephemeral_pub").bytes(vec![1; 79]);
    let short = edit(&set_child(
        "link_code_pairing_wrapped_companion_ephemeral_pub",
        wrapped,
    ));
    assert!(short.contains("79 bytes"), "{short}");
    let jid = edit(&|reg: &mut Node| reg.set_attr("jid", "0123456789@s.whatsapp.net"));
    assert!(jid.contains("no leading 0"), "{jid}");
    // Baileys' nonce, the text "0", is accepted too.
    let mut baileys = good.clone();
    if let crate::wa::node::Content::Nodes(list) = &mut baileys.content {
        set_child(
            "link_code_pairing_nonce",
            Node::new("link_code_pairing_nonce").text("0"),
        )(&mut list[0]);
    }
    assert!(parse_companion_hello(&baileys).is_ok());
    let mut no_md = good.clone();
    no_md.set_attr("xmlns", "w");
    assert!(
        parse_companion_hello(&no_md)
            .unwrap_err()
            .to_string()
            .contains("xmlns")
    );
}
