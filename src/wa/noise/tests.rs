//! Handshake, transport and certificate-chain tests.

use super::*;
use crate::wa::creds::KeyPair;
use crate::wa::proto::handshake::CertDetails;

const NOW: u64 = 1_795_000_000;

struct Server {
    ca: CertAuthority,
    key: KeyPair,
}

fn server() -> Server {
    Server {
        ca: CertAuthority::generate(),
        key: KeyPair::generate(),
    }
}

/// Runs a full handshake with the given chain and trust; returns both transports.
fn handshake(
    server_key: &KeyPair,
    chain: Vec<u8>,
    trust: &TrustRoot,
) -> Result<(Transport, Transport, ClientFinish, [u8; 32]), NoiseError> {
    let client = KeyPair::generate();
    let mut init = Initiator::new(&client)?;
    let mut resp = Responder::new(server_key, chain)?;
    resp.read_client_hello(&init.client_hello()?)?;
    init.read_server_hello(&resp.server_hello()?, trust, NOW)?;
    let (finish, client_t) = init.client_finish(b"client payload")?;
    let (seen, server_t) = resp.read_client_finish(&finish)?;
    Ok((client_t, server_t, seen, client.public))
}

#[test]
fn both_sides_agree_and_the_server_learns_the_client_key_and_payload() {
    let s = server();
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let (mut c, mut sv, seen, client_pub) = handshake(&s.key, chain, &s.ca.trust_root()).unwrap();
    assert_eq!(seen.client_static, client_pub);
    assert_eq!(seen.payload, b"client payload");
    let sealed = c.encrypt(b"<iq/>").unwrap();
    assert_eq!(sv.decrypt(&sealed).unwrap(), b"<iq/>");
    let sealed = sv.encrypt(b"<success/>").unwrap();
    assert_eq!(c.decrypt(&sealed).unwrap(), b"<success/>");
}

/// Key pairs load as stored (decisions.md): a client pair whose public half is another key's
/// gets no further than the server's `se` step.
#[test]
fn a_client_key_pair_whose_halves_do_not_belong_together_is_refused_by_the_server() {
    let s = server();
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let mismatched = KeyPair {
        public: KeyPair::generate().public,
        private: KeyPair::generate().private,
    };
    let mut init = Initiator::new(&mismatched).unwrap();
    let mut resp = Responder::new(&s.key, chain).unwrap();
    resp.read_client_hello(&init.client_hello().unwrap())
        .unwrap();
    init.read_server_hello(&resp.server_hello().unwrap(), &s.ca.trust_root(), NOW)
        .unwrap();
    let (finish, _) = init.client_finish(b"client payload").unwrap();
    assert_eq!(
        resp.read_client_finish(&finish).err(),
        Some(NoiseError::HandshakeDecrypt("client payload"))
    );
}

#[test]
fn frames_over_64_kib_work_and_counters_are_per_direction() {
    let s = server();
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let (mut c, mut sv, _, _) = handshake(&s.key, chain, &s.ca.trust_root()).unwrap();
    let big = vec![0x5a; 200 * 1024];
    for _ in 0..3 {
        let sealed = c.encrypt(&big).unwrap();
        assert_eq!(sv.decrypt(&sealed).unwrap(), big);
    }
    assert_eq!(c.counters(), (3, 0));
    assert_eq!(sv.counters(), (0, 3));
    // A replayed frame is refused: the receive counter has moved on.
    let sealed = c.encrypt(b"once").unwrap();
    assert_eq!(sv.decrypt(&sealed).unwrap(), b"once");
    assert_eq!(sv.decrypt(&sealed), Err(NoiseError::BadTag));
}

#[test]
fn a_flipped_bit_fails_the_gcm_tag() {
    let s = server();
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let (mut c, mut sv, _, _) = handshake(&s.key, chain, &s.ca.trust_root()).unwrap();
    let mut sealed = c.encrypt(b"payload").unwrap();
    sealed[2] ^= 0x01;
    assert_eq!(sv.decrypt(&sealed), Err(NoiseError::BadTag));
}

fn refusal(chain: Vec<u8>, s: &Server, trust: &TrustRoot) -> CertError {
    match handshake(&s.key, chain, trust) {
        Err(NoiseError::Cert(e)) => e,
        other => panic!(
            "expected a certificate refusal, got {:?}",
            other.map(|_| ())
        ),
    }
}

/// Builds a chain by hand so single fields can be wrong.
fn chain_with(
    root: &KeyPair,
    inter_details: CertDetails,
    inter_key: &KeyPair,
    leaf_details: CertDetails,
) -> CertChain {
    CertChain {
        intermediate: Some(sign_details(root, inter_details)),
        leaf: Some(sign_details(inter_key, leaf_details)),
    }
}

fn details(serial: u32, issuer: u32, key: &[u8; 32], nb: u64, na: u64) -> CertDetails {
    CertDetails {
        serial: Some(serial),
        issuer_serial: Some(issuer),
        key: Some(key.to_vec()),
        not_before: Some(nb),
        not_after: Some(na),
    }
}

#[test]
fn wrong_root_is_refused() {
    let s = server();
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let other = CertAuthority::generate().trust_root();
    assert_eq!(
        refusal(chain, &s, &other),
        CertError::BadSignature("intermediate")
    );
    // And WhatsApp's real root does not trust a simulator chain either.
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    assert_eq!(
        refusal(chain, &s, &TrustRoot::whatsapp()),
        CertError::BadSignature("intermediate")
    );
}

#[test]
fn tampered_leaf_is_refused() {
    let s = server();
    let bytes = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let mut chain = CertChain::decode(bytes.as_slice()).unwrap();
    let leaf = chain.leaf.as_mut().unwrap();
    let mut d = CertDetails::decode(leaf.details.as_deref().unwrap()).unwrap();
    d.not_after = Some(NOW + 999_999);
    leaf.details = Some(d.encode_to_vec());
    assert_eq!(
        refusal(chain.encode_to_vec(), &s, &s.ca.trust_root()),
        CertError::BadSignature("leaf")
    );
    let mut chain = CertChain::decode(bytes.as_slice()).unwrap();
    chain.leaf.as_mut().unwrap().signature.as_mut().unwrap()[5] ^= 1;
    assert_eq!(
        refusal(chain.encode_to_vec(), &s, &s.ca.trust_root()),
        CertError::BadSignature("leaf")
    );
}

#[test]
fn a_chain_verified_once_still_refuses_any_changed_byte() {
    let s = server();
    let bytes = s.ca.issue_chain(&s.key.public, NOW, 3600);
    // The same chain twice: the second handshake takes the remembered verification.
    for _ in 0..2 {
        handshake(&s.key, bytes.clone(), &s.ca.trust_root()).unwrap();
    }
    // Every byte of each signature and of each details, flipped one at a time, is refused
    // although the untouched chain was verified (and remembered) just before.
    let chain = CertChain::decode(bytes.as_slice()).unwrap();
    for (name, leaf) in [("intermediate", false), ("leaf", true)] {
        for in_signature in [true, false] {
            fn field(c: &mut CertChain, leaf: bool, sig: bool) -> &mut Option<Vec<u8>> {
                let cert = if leaf {
                    &mut c.leaf
                } else {
                    &mut c.intermediate
                };
                let cert = cert.as_mut().unwrap();
                if sig {
                    &mut cert.signature
                } else {
                    &mut cert.details
                }
            }
            let len = field(&mut chain.clone(), leaf, in_signature)
                .as_ref()
                .unwrap()
                .len();
            for i in 0..len {
                let mut changed = chain.clone();
                field(&mut changed, leaf, in_signature).as_mut().unwrap()[i] ^= 0x01;
                let outcome = handshake(&s.key, changed.encode_to_vec(), &s.ca.trust_root());
                assert!(
                    outcome.is_err(),
                    "{name} byte {i} of the {} changed, yet the chain was accepted",
                    if in_signature { "signature" } else { "details" }
                );
            }
        }
    }
    // A remembered chain is still refused by a root that did not sign it.
    let other = CertAuthority::generate().trust_root();
    assert_eq!(
        refusal(bytes.clone(), &s, &other),
        CertError::BadSignature("intermediate")
    );
    handshake(&s.key, bytes, &s.ca.trust_root()).unwrap();
}

#[test]
fn leaf_key_must_be_the_server_static_key() {
    let s = server();
    let stranger = KeyPair::generate();
    let chain = s.ca.issue_chain(&stranger.public, NOW, 3600);
    assert_eq!(
        refusal(chain, &s, &s.ca.trust_root()),
        CertError::KeyMismatch
    );
}

#[test]
fn validity_dates_and_serials_are_checked() {
    let s = server();
    let root = KeyPair::from_private(crate::wa::creds::SecretKey::from_bytes(*s.ca.private()));
    let inter = KeyPair::generate();
    let trust = s.ca.trust_root();
    let ok_inter = || details(7, 0, &inter.public, NOW - 10, NOW + 10);

    let expired = chain_with(
        &root,
        ok_inter(),
        &inter,
        details(8, 7, &s.key.public, NOW - 100, NOW - 1),
    );
    assert_eq!(
        refusal(expired.encode_to_vec(), &s, &trust),
        CertError::Expired("leaf")
    );

    let early = chain_with(
        &root,
        ok_inter(),
        &inter,
        details(8, 7, &s.key.public, NOW + 5, NOW + 100),
    );
    assert_eq!(
        refusal(early.encode_to_vec(), &s, &trust),
        CertError::NotYetValid("leaf")
    );

    let wrong_issuer = chain_with(
        &root,
        ok_inter(),
        &inter,
        details(8, 6, &s.key.public, 0, 0),
    );
    assert_eq!(
        refusal(wrong_issuer.encode_to_vec(), &s, &trust),
        CertError::SerialMismatch {
            leaf: 6,
            intermediate: 7
        }
    );

    let not_root = chain_with(
        &root,
        details(7, 3, &inter.public, 0, 0),
        &inter,
        details(8, 7, &s.key.public, 0, 0),
    );
    assert_eq!(
        refusal(not_root.encode_to_vec(), &s, &trust),
        CertError::NotIssuedByRoot(3)
    );

    let expired_inter = chain_with(
        &root,
        details(7, 0, &inter.public, 1, NOW - 1),
        &inter,
        details(8, 7, &s.key.public, 0, 0),
    );
    assert_eq!(
        refusal(expired_inter.encode_to_vec(), &s, &trust),
        CertError::Expired("intermediate")
    );

    // Absent dates (0) are accepted, as real chains may omit them.
    let open = chain_with(
        &root,
        details(7, 0, &inter.public, 0, 0),
        &inter,
        details(8, 7, &s.key.public, 0, 0),
    );
    assert!(handshake(&s.key, open.encode_to_vec(), &trust).is_ok());
}

#[test]
fn garbage_handshake_messages_are_errors() {
    let s = server();
    let mut resp = Responder::new(&s.key, Vec::new()).unwrap();
    assert!(resp.read_client_hello(&[0xff, 0x00, 0x13]).is_err());
    let client = KeyPair::generate();
    let mut init = Initiator::new(&client).unwrap();
    init.client_hello().unwrap();
    assert!(
        init.read_server_hello(b"\x1a\x02\x0a\x00", &s.ca.trust_root(), NOW)
            .is_err()
    );
}

/// Runs messages 1 and 2; returns the client (ready to finish) and server.
fn up_to_server_hello(s: &Server) -> (Initiator, Responder, Vec<u8>) {
    let client = KeyPair::generate();
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let mut init = Initiator::new(&client).unwrap();
    let mut resp = Responder::new(&s.key, chain).unwrap();
    resp.read_client_hello(&init.client_hello().unwrap())
        .unwrap();
    let hello = resp.server_hello().unwrap();
    (init, resp, hello)
}

fn server_hello_fields(bytes: &[u8]) -> ServerHello {
    HandshakeMessage::decode(bytes)
        .unwrap()
        .server_hello
        .unwrap()
}

fn reencode(hello: ServerHello) -> Vec<u8> {
    HandshakeMessage {
        server_hello: Some(hello),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn a_tampered_server_hello_names_the_part_that_failed() {
    let s = server();
    let trust = s.ca.trust_root();

    let (mut init, _, hello) = up_to_server_hello(&s);
    let mut h = server_hello_fields(&hello);
    h.r#static.as_mut().unwrap()[0] ^= 1;
    assert_eq!(
        init.read_server_hello(&reencode(h), &trust, NOW),
        Err(NoiseError::HandshakeDecrypt("server static key"))
    );

    let (mut init, _, hello) = up_to_server_hello(&s);
    let mut h = server_hello_fields(&hello);
    *h.payload.as_mut().unwrap().last_mut().unwrap() ^= 1;
    assert_eq!(
        init.read_server_hello(&reencode(h), &trust, NOW),
        Err(NoiseError::HandshakeDecrypt("certificate payload"))
    );

    let (mut init, _, hello) = up_to_server_hello(&s);
    let mut h = server_hello_fields(&hello);
    h.payload = None;
    assert_eq!(
        init.read_server_hello(&reencode(h), &trust, NOW),
        Err(NoiseError::Missing("certificate payload"))
    );

    let (mut init, _, hello) = up_to_server_hello(&s);
    let mut h = server_hello_fields(&hello);
    h.ephemeral.as_mut().unwrap().pop();
    assert_eq!(
        init.read_server_hello(&reencode(h), &trust, NOW),
        Err(NoiseError::BadLength("server ephemeral key"))
    );
}

#[test]
fn a_tampered_client_finish_is_refused_by_the_server() {
    let s = server();
    let (mut init, resp, hello) = up_to_server_hello(&s);
    init.read_server_hello(&hello, &s.ca.trust_root(), NOW)
        .unwrap();
    let (finish, _) = init.client_finish(b"payload").unwrap();
    let mut msg = HandshakeMessage::decode(finish.as_slice()).unwrap();
    msg.client_finish
        .as_mut()
        .unwrap()
        .payload
        .as_mut()
        .unwrap()[0] ^= 1;
    assert_eq!(
        resp.read_client_finish(&msg.encode_to_vec()).unwrap_err(),
        NoiseError::HandshakeDecrypt("client payload")
    );
}

#[test]
fn a_low_order_client_key_is_refused() {
    let s = server();
    let mut resp = Responder::new(&s.key, Vec::new()).unwrap();
    let hello = HandshakeMessage {
        client_hello: Some(ClientHello {
            ephemeral: Some(vec![0; 32]),
            ..Default::default()
        }),
        ..Default::default()
    };
    resp.read_client_hello(&hello.encode_to_vec()).unwrap();
    assert_eq!(resp.server_hello(), Err(NoiseError::LowOrderKey));
}

#[test]
fn steps_out_of_order_are_refused_and_a_failed_handshake_stays_failed() {
    let s = server();
    let client = KeyPair::generate();
    let mut init = Initiator::new(&client).unwrap();
    assert_eq!(
        init.read_server_hello(b"", &s.ca.trust_root(), NOW),
        Err(NoiseError::OutOfOrder)
    );
    let mut init = Initiator::new(&client).unwrap();
    init.client_hello().unwrap();
    assert_eq!(init.client_hello(), Err(NoiseError::OutOfOrder));

    let mut resp = Responder::new(&s.key, Vec::new()).unwrap();
    assert_eq!(resp.server_hello(), Err(NoiseError::OutOfOrder));

    // A server hello from the wrong root fails, and the client cannot then finish.
    let (mut init, _, hello) = up_to_server_hello(&s);
    let wrong = CertAuthority::generate().trust_root();
    assert!(init.read_server_hello(&hello, &wrong, NOW).is_err());
    assert_eq!(
        init.client_finish(b"payload").unwrap_err(),
        NoiseError::OutOfOrder
    );
}

#[test]
fn debug_output_shows_no_key_material() {
    let s = server();
    let client = KeyPair::generate();
    let init = Initiator::new(&client).unwrap();
    let resp = Responder::new(&s.key, Vec::new()).unwrap();
    let chain = s.ca.issue_chain(&s.key.public, NOW, 3600);
    let (t, _, _, _) = handshake(&s.key, chain, &s.ca.trust_root()).unwrap();
    for text in [format!("{init:?}"), format!("{resp:?}"), format!("{t:?}")] {
        assert!(text.contains("<redacted>"), "{text}");
        for key in [client.private.expose(), s.key.private.expose()] {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!text.contains(&format!("{key:?}")), "{text}");
            assert!(!text.contains(&hex), "{text}");
        }
    }
}
