//! Tests of `wa::pair`: a companion and a virtual phone pair in memory, and every way the
//! exchange can be corrupted ends in its own typed error.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;

const NOW: u64 = 1_760_000_000;

/// A companion and a phone that has read its QR code.
struct Setup {
    creds: Credentials,
    phone: Phone,
    qr: QrInfo,
}

fn setup() -> Setup {
    let creds = Credentials::generate();
    let qr = parse_qr(&qr_text("2@ref-one", &creds, '9')).unwrap();
    Setup {
        creds,
        phone: Phone::new("15550001111"),
        qr,
    }
}

fn success_iq(s: &Setup, signed: Vec<u8>) -> Node {
    s.phone
        .pair_success_iq("pair-42", signed, 4, "88001122:4@lid", "android")
}

/// Re-encodes an envelope after `edit`, keeping its original HMAC.
fn edit_envelope(bytes: &[u8], edit: impl FnOnce(&mut AdvSignedDeviceIdentity)) -> Vec<u8> {
    let mut env = AdvSignedDeviceIdentityHmac::decode(bytes).unwrap();
    let mut signed = AdvSignedDeviceIdentity::decode(env.details.as_deref().unwrap()).unwrap();
    edit(&mut signed);
    env.details = Some(signed.encode_to_vec());
    env.encode_to_vec()
}

#[test]
fn companion_and_phone_pair_end_to_end() {
    let s = setup();
    assert_eq!(s.qr.reference, "2@ref-one");
    assert_eq!(s.qr.identity_public, s.creds.identity.public);
    assert_eq!(s.qr.noise_public, s.creds.noise.public);
    assert_eq!(&s.qr.adv_secret, s.creds.adv_secret.expose());
    assert_eq!(s.qr.platform, Some('9'));

    let iq = success_iq(&s, s.phone.sign_pairing(&s.qr, 3, NOW));
    let success = parse_pair_success(&iq).unwrap();
    assert_eq!(success.id, "pair-42");
    assert_eq!(success.jid, "15550001111:4@s.whatsapp.net");
    assert_eq!(success.lid.as_deref(), Some("88001122:4@lid"));
    assert_eq!(success.platform.as_deref(), Some("android"));
    assert_eq!(success.business_name, None);

    let (account, reply) = complete_pairing(&s.creds, &success).unwrap();
    assert_eq!(account.phone, "15550001111");
    assert_eq!(account.device, 4);
    assert_eq!(account.key_index, 3);
    assert_eq!(account.jid, success.jid);
    // The kept identity still names the account key; the reply does not.
    let kept = AdvSignedDeviceIdentity::decode(account.signed_identity.as_slice()).unwrap();
    assert_eq!(
        kept.account_signature_key.as_deref(),
        Some(&s.phone.account.public[..])
    );
    assert!(kept.device_signature.is_some());

    assert_eq!(reply.tag, "iq");
    assert_eq!(reply.get_attr("type"), Some("result"));
    assert_eq!(reply.get_attr("id"), Some("pair-42"));
    assert_eq!(reply.get_attr("to"), Some("s.whatsapp.net"));
    let sent = reply
        .get_child("pair-device-sign")
        .and_then(|n| n.get_child("device-identity"))
        .unwrap();
    assert_eq!(sent.get_attr("key-index"), Some("3"));
    let sent = AdvSignedDeviceIdentity::decode(sent.content_bytes().unwrap()).unwrap();
    assert_eq!(sent.account_signature_key, None);
    assert_eq!(sent.device_signature, kept.device_signature);

    assert_eq!(s.phone.verify_device_sign(&s.qr, &reply).unwrap(), 3);
}

#[test]
fn hosted_accounts_use_the_hosted_prefixes() {
    let s = setup();
    let signed = s
        .phone
        .sign_pairing_as(&s.qr, 1, NOW, AdvEncryptionType::Hosted);
    let success = parse_pair_success(&success_iq(&s, signed.clone())).unwrap();
    let (_, reply) = complete_pairing(&s.creds, &success).unwrap();
    assert_eq!(s.phone.verify_device_sign(&s.qr, &reply).unwrap(), 1);

    // Claiming E2EE on an envelope authenticated as hosted breaks the HMAC.
    let mut env = AdvSignedDeviceIdentityHmac::decode(signed.as_slice()).unwrap();
    env.account_type = Some(AdvEncryptionType::E2ee as i32);
    let success = parse_pair_success(&success_iq(&s, env.encode_to_vec())).unwrap();
    assert!(matches!(
        complete_pairing(&s.creds, &success),
        Err(PairError::BadHmac)
    ));
}

#[test]
fn both_qr_forms_parse() {
    let creds = Credentials::generate();
    let current = qr_text("2@abc+/=", &creds, '1');
    assert!(current.starts_with("https://wa.me/settings/linked_devices#2@abc+/=,"));
    let parsed = parse_qr(&current).unwrap();
    assert_eq!(parsed.platform, Some('1'));

    let older = format!(
        "2@abc+/=,{},{},{}",
        BASE64.encode(creds.noise.public),
        BASE64.encode(creds.identity.public),
        BASE64.encode(creds.adv_secret.expose())
    );
    let old = parse_qr(&older).unwrap();
    assert_eq!(old.platform, None);
    assert_eq!(
        (
            old.reference.as_str(),
            old.noise_public,
            old.identity_public,
            old.adv_secret
        ),
        (
            parsed.reference.as_str(),
            parsed.noise_public,
            parsed.identity_public,
            parsed.adv_secret
        )
    );
}

#[test]
fn malformed_qr_texts_are_rejected() {
    let creds = Credentials::generate();
    let good = qr_text("2@r", &creds, '9');
    let short_key = good.replace(
        &BASE64.encode(creds.noise.public),
        &BASE64.encode([1u8; 31]),
    );
    for text in [
        "",
        "2@r,a,b",
        "2@r,a,b,c,d,e",
        &short_key,
        &good.replace(",9", ",99"),
        &good.replace("2@r", ""),
        &good.replace(&BASE64.encode(creds.identity.public), "not base64!"),
    ] {
        assert!(
            matches!(parse_qr(text), Err(PairError::BadQr(_))),
            "accepted {text:?}"
        );
    }
}

#[test]
fn qr_info_debug_hides_the_adv_secret() {
    let s = setup();
    let printed = format!("{:?}", s.qr);
    assert!(printed.contains("<redacted>"));
    assert!(!printed.contains(&BASE64.encode(s.qr.adv_secret)));
    assert!(!printed.contains(&format!("{:?}", s.qr.adv_secret)));
}

#[test]
fn wrong_adv_secret_is_bad_hmac_and_answered_with_401() {
    let s = setup();
    let mut other = s.qr.clone();
    other.adv_secret = *Credentials::generate().adv_secret.expose();
    let success =
        parse_pair_success(&success_iq(&s, s.phone.sign_pairing(&other, 1, NOW))).unwrap();
    let err = complete_pairing(&s.creds, &success).unwrap_err();
    assert!(matches!(err, PairError::BadHmac));

    let reply = pair_error_reply(&success.id, &err);
    assert_eq!(reply.get_attr("type"), Some("error"));
    assert_eq!(reply.get_attr("id"), Some("pair-42"));
    let error = reply.get_child("error").unwrap();
    assert_eq!(error.get_attr("code"), Some("401"));
    assert_eq!(error.get_attr("text"), Some("hmac-mismatch"));
}

#[test]
fn tampered_details_fail_the_hmac() {
    let s = setup();
    let signed = s.phone.sign_pairing(&s.qr, 1, NOW);
    let tampered = edit_envelope(&signed, |d| {
        let mut id = AdvDeviceIdentity::decode(d.details.as_deref().unwrap()).unwrap();
        id.key_index = Some(9);
        d.details = Some(id.encode_to_vec());
    });
    let success = parse_pair_success(&success_iq(&s, tampered)).unwrap();
    assert!(matches!(
        complete_pairing(&s.creds, &success),
        Err(PairError::BadHmac)
    ));
}

#[test]
fn account_signature_for_another_identity_is_rejected() {
    // The phone signs for a different companion identity, but with our adv secret, so only
    // the account signature can catch it.
    let s = setup();
    let mut other = s.qr.clone();
    other.identity_public = Credentials::generate().identity.public;
    let success =
        parse_pair_success(&success_iq(&s, s.phone.sign_pairing(&other, 1, NOW))).unwrap();
    let err = complete_pairing(&s.creds, &success).unwrap_err();
    assert!(matches!(err, PairError::BadAccountSignature));
    let reply = pair_error_reply("x", &err);
    assert_eq!(
        reply.get_child("error").unwrap().get_attr("text"),
        Some("signature-mismatch")
    );
}

#[test]
fn tampered_device_signature_is_caught_by_the_phone() {
    let s = setup();
    let success = parse_pair_success(&success_iq(&s, s.phone.sign_pairing(&s.qr, 2, NOW))).unwrap();
    let (_, reply) = complete_pairing(&s.creds, &success).unwrap();

    let rebuild = |edit: &dyn Fn(&mut AdvSignedDeviceIdentity), key_index: &str| {
        let bytes = reply
            .get_child("pair-device-sign")
            .and_then(|n| n.get_child("device-identity"))
            .and_then(Node::content_bytes)
            .unwrap();
        let mut signed = AdvSignedDeviceIdentity::decode(bytes).unwrap();
        edit(&mut signed);
        Node::new("iq").child(
            Node::new("pair-device-sign").child(
                Node::new("device-identity")
                    .attr("key-index", key_index)
                    .bytes(signed.encode_to_vec()),
            ),
        )
    };

    let flipped = rebuild(&|d| d.device_signature.as_mut().unwrap()[5] ^= 1, "2");
    assert!(matches!(
        s.phone.verify_device_sign(&s.qr, &flipped),
        Err(PairError::BadDeviceSignature)
    ));
    // A signature by a key that is not the QR's identity key.
    let stranger = Credentials::generate().identity;
    let forged = rebuild(
        &|d| {
            let msg = device_signed_message(
                d.details.as_deref().unwrap(),
                &s.qr.identity_public,
                &s.phone.account.public,
            );
            d.device_signature = Some(stranger.sign(&msg).to_vec());
        },
        "2",
    );
    assert!(matches!(
        s.phone.verify_device_sign(&s.qr, &forged),
        Err(PairError::BadDeviceSignature)
    ));
    let unstripped = rebuild(
        &|d| d.account_signature_key = Some(s.phone.account.public.to_vec()),
        "2",
    );
    assert!(matches!(
        s.phone.verify_device_sign(&s.qr, &unstripped),
        Err(PairError::AccountKeyNotStripped)
    ));
    let wrong_index = rebuild(&|_| {}, "7");
    assert!(matches!(
        s.phone.verify_device_sign(&s.qr, &wrong_index),
        Err(PairError::KeyIndexMismatch { signed: 2, .. })
    ));
    // Another phone never signed this identity.
    assert!(matches!(
        Phone::new("15550002222").verify_device_sign(&s.qr, &reply),
        Err(PairError::BadAccountSignature)
    ));
}

#[test]
fn incomplete_or_garbled_stanzas_are_typed_errors() {
    let s = setup();
    let no_device = Node::new("iq")
        .attr("id", "1")
        .child(Node::new("pair-success").child(Node::new("device-identity").bytes(vec![1])));
    assert!(matches!(
        parse_pair_success(&no_device),
        Err(PairError::MissingField("device"))
    ));
    assert!(matches!(
        parse_pair_success(&Node::new("iq").attr("id", "1")),
        Err(PairError::MissingField("pair-success"))
    ));

    let garbled = parse_pair_success(&success_iq(&s, vec![0xff, 0xff, 0xff])).unwrap();
    assert!(matches!(
        complete_pairing(&s.creds, &garbled),
        Err(PairError::Decode(_, _))
    ));
    let no_hmac = AdvSignedDeviceIdentityHmac {
        details: Some(vec![]),
        ..Default::default()
    };
    let success = parse_pair_success(&success_iq(&s, no_hmac.encode_to_vec())).unwrap();
    assert!(matches!(
        complete_pairing(&s.creds, &success),
        Err(PairError::MissingField("device identity HMAC"))
    ));
    let success = parse_pair_success(&success_iq(&s, s.phone.sign_pairing(&s.qr, 1, NOW))).unwrap();
    let bad_jid = PairSuccess {
        jid: "15550001111:4@g.us".into(),
        ..success
    };
    assert!(matches!(
        complete_pairing(&s.creds, &bad_jid),
        Err(PairError::BadJid(_))
    ));
}

#[test]
fn jids_split_into_phone_and_device() {
    assert_eq!(
        split_jid("123:7@s.whatsapp.net").unwrap(),
        ("123".into(), 7)
    );
    assert_eq!(
        split_jid("123.0:7@s.whatsapp.net").unwrap(),
        ("123".into(), 7)
    );
    assert_eq!(split_jid("123@s.whatsapp.net").unwrap(), ("123".into(), 0));
    for bad in [
        "123:x@s.whatsapp.net",
        "@s.whatsapp.net",
        "12a:1@s.whatsapp.net",
        "123:1",
    ] {
        assert!(split_jid(bad).is_err(), "accepted {bad}");
    }
}

#[test]
fn hmac_matches_the_standard_construction() {
    // Expected value from Python: hmac.new(b"\x0b" * 32, b"Hi There", hashlib.sha256).
    let mac = hmac_sha256(&[0x0b; 32], &[b"Hi ", b"There"]);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
    );
}
