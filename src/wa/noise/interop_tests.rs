//! Our handshake against `snow`, a standard Noise implementation: with the standard
//! message-1 step switched on both directions interoperate (so HKDF, the AES-GCM nonces and
//! associated data, the DH order and the split order are the specification's); with
//! WhatsApp's transcript they must not, and the transcript hash follows WhatsApp's clients.

use prost::Message;
use sha2::{Digest, Sha256};

use super::*;
use crate::wa::creds::KeyPair;
use crate::wa::frame::HEADER;

const NOW: u64 = 1_795_000_000;
const PATTERN: &str = "Noise_XX_25519_AESGCM_SHA256";

fn snow_builder<'a>(private: &'a [u8; 32]) -> snow::Builder<'a> {
    snow::Builder::new(PATTERN.parse().unwrap())
        .local_private_key(private)
        .unwrap()
        .prologue(&HEADER)
        .unwrap()
}

fn snow_write(hs: &mut snow::HandshakeState, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 65535];
    let n = hs.write_message(payload, &mut out).unwrap();
    out.truncate(n);
    out
}

fn snow_read(hs: &mut snow::HandshakeState, message: &[u8]) -> Result<Vec<u8>, snow::Error> {
    let mut out = vec![0u8; 65535];
    let n = hs.read_message(message, &mut out)?;
    out.truncate(n);
    Ok(out)
}

fn standard_initiator(key: &KeyPair) -> Initiator {
    let mut init = Initiator::new(key).unwrap();
    init.transcript = Transcript::Standard;
    init
}

fn standard_responder(key: &KeyPair, chain: Vec<u8>) -> Responder {
    let mut resp = Responder::new(key, chain).unwrap();
    resp.transcript = Transcript::Standard;
    resp
}

/// Sends `text` both ways between our transport and snow's and checks it arrives.
fn exchange(ours: &mut Transport, theirs: &mut snow::TransportState) {
    for text in [&b"first frame"[..], b"second frame", b""] {
        let sealed = ours.encrypt(text).unwrap();
        assert_eq!(snow_read_transport(theirs, &sealed), text);
        let mut out = vec![0u8; text.len() + 16];
        let n = theirs.write_message(text, &mut out).unwrap();
        assert_eq!(ours.decrypt(&out[..n]).unwrap(), text);
    }
}

fn snow_read_transport(t: &mut snow::TransportState, sealed: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; sealed.len()];
    let n = t.read_message(sealed, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn our_initiator_with_the_standard_step_completes_a_handshake_with_snow() {
    let ca = CertAuthority::generate();
    let server = KeyPair::generate();
    let client = KeyPair::generate();
    let mut resp = snow_builder(server.private.expose())
        .build_responder()
        .unwrap();
    let mut init = standard_initiator(&client);

    let hello = HandshakeMessage::decode(init.client_hello().unwrap().as_slice()).unwrap();
    let e = hello.client_hello.unwrap().ephemeral.unwrap();
    assert!(snow_read(&mut resp, &e).unwrap().is_empty());

    let chain = ca.issue_chain(&server.public, NOW, 3600);
    let raw = snow_write(&mut resp, &chain);
    let server_hello = HandshakeMessage {
        server_hello: Some(ServerHello {
            ephemeral: Some(raw[..32].to_vec()),
            r#static: Some(raw[32..80].to_vec()),
            payload: Some(raw[80..].to_vec()),
        }),
        ..Default::default()
    };
    init.read_server_hello(&server_hello.encode_to_vec(), &ca.trust_root(), NOW)
        .unwrap();

    let (finish, mut ours) = init.client_finish(b"client payload").unwrap();
    let finish = HandshakeMessage::decode(finish.as_slice())
        .unwrap()
        .client_finish
        .unwrap();
    let mut joined = finish.r#static.unwrap();
    joined.extend(finish.payload.unwrap());
    assert_eq!(snow_read(&mut resp, &joined).unwrap(), b"client payload");
    assert_eq!(resp.get_remote_static().unwrap(), client.public);

    let mut theirs = resp.into_transport_mode().unwrap();
    exchange(&mut ours, &mut theirs);
}

#[test]
fn snow_completes_a_handshake_with_our_responder_with_the_standard_step() {
    let ca = CertAuthority::generate();
    let server = KeyPair::generate();
    let client = KeyPair::generate();
    let chain = ca.issue_chain(&server.public, NOW, 3600);
    let mut init = snow_builder(client.private.expose())
        .build_initiator()
        .unwrap();
    let mut resp = standard_responder(&server, chain.clone());

    let e = snow_write(&mut init, &[]);
    let hello = HandshakeMessage {
        client_hello: Some(ClientHello {
            ephemeral: Some(e),
            ..Default::default()
        }),
        ..Default::default()
    };
    resp.read_client_hello(&hello.encode_to_vec()).unwrap();

    let sh = HandshakeMessage::decode(resp.server_hello().unwrap().as_slice())
        .unwrap()
        .server_hello
        .unwrap();
    let mut joined = sh.ephemeral.unwrap();
    joined.extend(sh.r#static.unwrap());
    joined.extend(sh.payload.unwrap());
    assert_eq!(snow_read(&mut init, &joined).unwrap(), chain);
    assert_eq!(init.get_remote_static().unwrap(), server.public);

    let raw = snow_write(&mut init, b"client payload");
    let finish = HandshakeMessage {
        client_finish: Some(ClientFinishMsg {
            r#static: Some(raw[..48].to_vec()),
            payload: Some(raw[48..].to_vec()),
        }),
        ..Default::default()
    };
    let (seen, mut ours) = resp.read_client_finish(&finish.encode_to_vec()).unwrap();
    assert_eq!(seen.client_static, client.public);
    assert_eq!(seen.payload, b"client payload");

    let mut theirs = init.into_transport_mode().unwrap();
    exchange(&mut ours, &mut theirs);
}

#[test]
fn a_standard_noise_client_is_refused_by_our_whatsapp_responder() {
    let ca = CertAuthority::generate();
    let server = KeyPair::generate();
    let client = KeyPair::generate();
    let mut init = snow_builder(client.private.expose())
        .build_initiator()
        .unwrap();
    let mut resp = Responder::new(&server, ca.issue_chain(&server.public, NOW, 3600)).unwrap();
    let hello = HandshakeMessage {
        client_hello: Some(ClientHello {
            ephemeral: Some(snow_write(&mut init, &[])),
            ..Default::default()
        }),
        ..Default::default()
    };
    resp.read_client_hello(&hello.encode_to_vec()).unwrap();
    let sh = HandshakeMessage::decode(resp.server_hello().unwrap().as_slice())
        .unwrap()
        .server_hello
        .unwrap();
    let mut joined = sh.ephemeral.unwrap();
    joined.extend(sh.r#static.unwrap());
    joined.extend(sh.payload.unwrap());
    assert!(matches!(
        snow_read(&mut init, &joined),
        Err(snow::Error::Decrypt)
    ));
}

#[test]
fn our_whatsapp_initiator_is_refused_by_a_standard_noise_server() {
    let ca = CertAuthority::generate();
    let server = KeyPair::generate();
    let client = KeyPair::generate();
    let mut resp = snow_builder(server.private.expose())
        .build_responder()
        .unwrap();
    let mut init = Initiator::new(&client).unwrap();
    let hello = HandshakeMessage::decode(init.client_hello().unwrap().as_slice()).unwrap();
    snow_read(&mut resp, &hello.client_hello.unwrap().ephemeral.unwrap()).unwrap();
    let raw = snow_write(&mut resp, &ca.issue_chain(&server.public, NOW, 3600));
    let server_hello = HandshakeMessage {
        server_hello: Some(ServerHello {
            ephemeral: Some(raw[..32].to_vec()),
            r#static: Some(raw[32..80].to_vec()),
            payload: Some(raw[80..].to_vec()),
        }),
        ..Default::default()
    };
    assert_eq!(
        init.read_server_hello(&server_hello.encode_to_vec(), &ca.trust_root(), NOW),
        Err(NoiseError::HandshakeDecrypt("server static key"))
    );
}

#[test]
fn transcript_hash_after_the_client_hello_is_whatsapps() {
    // whatsmeow and Baileys: h starts as the padded name, then absorbs the header and the
    // client's ephemeral key, and nothing else before the server's ephemeral key.
    let client = KeyPair::generate();
    let e_private = [0x42; 32];
    let mut init = Initiator::new(&client).unwrap();
    init.fixed_ephemeral = Some(e_private);
    let hello = HandshakeMessage::decode(init.client_hello().unwrap().as_slice()).unwrap();
    let e_public = hello.client_hello.unwrap().ephemeral.unwrap();
    assert_eq!(
        e_public,
        KeyPair::from_private(crate::wa::creds::SecretKey::from_bytes(e_private)).public
    );

    let sha = |parts: &[&[u8]]| -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    };
    let h0 = *b"Noise_XX_25519_AESGCM_SHA256\0\0\0\0";
    let after_header = sha(&[&h0, &HEADER]);
    let after_e = sha(&[&after_header, &e_public]);
    assert_eq!(init.state.hash(), after_e);
    // A standard Noise library would have gone one step further.
    assert_ne!(init.state.hash(), sha(&[&after_e]));
}
