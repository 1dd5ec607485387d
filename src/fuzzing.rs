//! One entry per fuzz target (`fuzz/fuzz_targets/*.rs`) and per regression folder
//! (`tests/fuzz_regressions.rs`): each feeds hostile bytes to the real parser and must never
//! panic, hang or allocate beyond the input's size. Not an API: hidden from the docs.
//!
//! The few `assert!`s here are invariants of the real code (a sealed body opens to itself,
//! a decoded node encodes again); a failing one is a bug the fuzzer found, like a panic.

use std::sync::OnceLock;

use crate::wa::creds::{KeyPair, SecretKey, SignedPreKey};
use crate::wa::frame::{FrameDecoder, MAX_FRAME};
use crate::wa::messaging::{keys, receipt, stanza as msg_stanza, usync};
use crate::wa::noise::{CertAuthority, Initiator, Responder};
use crate::wa::signal::{
    self, LocalIdentity, SenderKeyId, SignalAddress, SignalStore, StoreFailure,
};
use crate::wa::{ack, message, node, pair, pair_code, prekey, stanza};

/// One fuzz entry: hostile bytes in, nothing out.
pub type Entry = fn(&[u8]);

/// The targets, by name: what `cargo fuzz run <name>` and `fuzz/regressions/<name>/` use.
pub const TARGETS: [(&str, Entry); 9] = [
    ("frame", frame),
    ("noise_server_hello", noise_server_hello),
    ("node", node_decode),
    ("stanza", stanza_classify),
    ("credentials", credentials),
    ("key_records", key_records),
    ("config", config),
    ("sim_admin", sim_admin),
    ("message", message_decode),
];

/// The frame decoder on both sides. The first byte picks the side and how the rest is split
/// into reads (1..=64 bytes at a time, as a socket might hand them over).
pub fn frame(data: &[u8]) {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = if how & 0x80 != 0 {
        FrameDecoder::server()
    } else {
        FrameDecoder::new()
    };
    let chunk = usize::from(how & 0x3f) + 1;
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => assert!(frame.len() < MAX_FRAME),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= rest.len());
    }
}

/// Fixed keys and one certificate chain, so every run is the same handshake but for the
/// ephemeral keys (drawn fresh, as the real client does).
struct NoiseFixture {
    client: KeyPair,
    server: KeyPair,
    ca: CertAuthority,
    chain: Vec<u8>,
}

/// "Now" for the certificate checks: inside the fixture chain's validity.
const NOISE_NOW: u64 = 1_700_000_000;

fn noise_fixture() -> &'static NoiseFixture {
    static FIXTURE: OnceLock<NoiseFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let server = KeyPair::from_private(SecretKey::from_bytes([0x22; 32]));
        let ca = CertAuthority::from_private([0x33; 32]);
        let chain = ca.issue_chain(&server.public, NOISE_NOW - 60, 3600);
        NoiseFixture {
            client: KeyPair::from_private(SecretKey::from_bytes([0x11; 32])),
            server,
            ca,
            chain,
        }
    })
}

/// The client's processing of a server hello, with the server's bytes from the fuzzer. The
/// first byte picks how: 0, the raw message; 1, a real server hello whose encrypted
/// certificate payload is the rest; 2, a real server hello (real chain) with the rest XORed
/// over it (and bytes past its end appended). A hello that passes is finished.
pub fn noise_server_hello(data: &[u8]) {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let fx = noise_fixture();
    let Ok(mut client) = Initiator::new(&fx.client) else {
        return;
    };
    let Ok(hello) = client.client_hello() else {
        return;
    };
    let real_hello = |chain: Vec<u8>| -> Option<Vec<u8>> {
        let mut server = Responder::new(&fx.server, chain).ok()?;
        server.read_client_hello(&hello).ok()?;
        server.server_hello().ok()
    };
    let message = match how % 3 {
        0 => rest.to_vec(),
        1 => match real_hello(rest.to_vec()) {
            Some(m) => m,
            None => return,
        },
        _ => {
            let Some(mut m) = real_hello(fx.chain.clone()) else {
                return;
            };
            for (i, b) in rest.iter().enumerate() {
                match m.get_mut(i) {
                    Some(byte) => *byte ^= b,
                    None => m.push(*b),
                }
            }
            m
        }
    };
    if client
        .read_server_hello(&message, &fx.ca.trust_root(), NOISE_NOW)
        .is_ok()
    {
        let _ = client.client_finish(b"client payload");
    }
}

/// The binary node decoder; a node that decodes must encode again and decode to itself.
pub fn node_decode(data: &[u8]) {
    let Ok(decoded) = node::decode(data) else {
        return;
    };
    if let Ok(encoded) = node::encode(&decoded) {
        let again = node::decode(&encoded);
        assert!(
            again.is_ok(),
            "a re-encoded node does not decode: {again:?}"
        );
    }
}

/// Everything that sorts or reads a received node: the client's classification, its acks
/// and pushed-stanza actions, and the parsers of pairing, pre-key, message, receipt, key and
/// usync stanzas (the simulator's included).
pub fn stanza_classify(data: &[u8]) {
    let Ok(node) = node::decode(data) else {
        return;
    };
    let own = Some("15550001111:3@s.whatsapp.net");
    let _ = stanza::end_cause(&node);
    let _ = ack::ack(&node, own);
    let _ = ack::is_offline_preview(&node);
    let _ = crate::net::inbound::decide(&node, own, true);
    let _ = prekey::count_of(&node);
    let _ = prekey::parse_upload(&node);
    let _ = pair_code::parse_primary_hello(&node);
    let _ = pair_code::parse_companion_hello(&node);
    let _ = pair_code::parse_companion_finish(&node);
    let _ = msg_stanza::Incoming::parse(&node);
    let _ = msg_stanza::Outgoing::parse(&node);
    let _ = msg_stanza::parse_server_ack(&node);
    let _ = receipt::Receipt::parse(&node, "from");
    let _ = receipt::parse_retry(&node, "from");
    let _ = keys::parse_bundle_query(&node);
    let _ = keys::parse_bundle_answer(&node);
    let _ = usync::parse_query(&node);
    let _ = usync::parse_answer(&node);
    if let stanza::Incoming::PairSuccess { node, .. } = stanza::classify(node) {
        let _ = pair::parse_pair_success(&node);
    }
}

/// The credentials and status files: the sealed envelope (raw bytes, and the bytes sealed
/// properly, which must open to themselves) and the JSON bodies they carry.
pub fn credentials(data: &[u8]) {
    use crate::store::{EnvelopeKind, PersistedStatus, open_envelope, seal_envelope};
    for kind in [EnvelopeKind::Credentials, EnvelopeKind::Status] {
        if let Ok(body) = open_envelope(kind, data) {
            let _ = serde_json::from_slice::<crate::wa::creds::Credentials>(body);
        }
        let sealed = seal_envelope(kind, data);
        assert_eq!(open_envelope(kind, &sealed), Ok(data));
    }
    let _ = serde_json::from_slice::<crate::wa::creds::Credentials>(data);
    let _ = serde_json::from_slice::<PersistedStatus>(data);
}

/// A key store holding one record from the fuzzer: what keys.db rows decode to.
struct OneRecord {
    local: LocalIdentity,
    signed: SignedPreKey,
    record: Vec<u8>,
}

impl SignalStore for OneRecord {
    fn local_identity(&self) -> Result<LocalIdentity, StoreFailure> {
        Ok(self.local.clone())
    }
    fn identity(&self, _: &SignalAddress) -> Result<Option<[u8; 32]>, StoreFailure> {
        Ok(<[u8; 32]>::try_from(self.record.get(..32).unwrap_or_default()).ok())
    }
    fn session(&self, _: &SignalAddress) -> Result<Option<Vec<u8>>, StoreFailure> {
        Ok(Some(self.record.clone()))
    }
    fn prekey(&self, id: u32) -> Result<Option<crate::wa::prekey::PreKey>, StoreFailure> {
        Ok(crate::store::keys::prekey_from_row(id, &self.record))
    }
    fn signed_prekey(&self, id: u32) -> Result<Option<SignedPreKey>, StoreFailure> {
        Ok((self.signed.id == id).then(|| self.signed.clone()))
    }
    fn sender_key(&self, _: &SenderKeyId) -> Result<Option<Vec<u8>>, StoreFailure> {
        Ok(Some(self.record.clone()))
    }
    fn apply(&mut self, _: signal::Changes) -> Result<(), StoreFailure> {
        Ok(())
    }
}

/// keys.db records: a Signal session and a group sender key (each used to encrypt, which
/// loads and re-serializes it), a one-time pre-key row and a cached device list.
pub fn key_records(data: &[u8]) {
    static KEYS: OnceLock<(LocalIdentity, SignedPreKey)> = OnceLock::new();
    let (local, signed) = KEYS.get_or_init(|| {
        let identity = KeyPair::from_private(SecretKey::from_bytes([0x44; 32]));
        let signed = SignedPreKey::generate(&identity, 1);
        let local = LocalIdentity {
            identity,
            registration_id: 1,
        };
        (local, signed)
    });
    let mut store = OneRecord {
        local: local.clone(),
        signed: signed.clone(),
        record: data.to_vec(),
    };
    let peer = SignalAddress {
        name: "15550002222".to_string(),
        device: 0,
    };
    let _ = signal::encrypt(&mut store, &peer, b"hello");
    let group = SenderKeyId {
        group: "120363000000000000@g.us".to_string(),
        sender: peer,
    };
    let _ = signal::group_encrypt(&mut store, &group, b"hello");
    let _ = store.prekey(1);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::store::signal::device_list_from_row(text);
    }
}

/// The sessions file: TOML text to a validated config, per-session overrides included.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(errors) = crate::config::parse(text, "fuzz.toml")
    {
        let _ = errors.lines();
    }
}

/// The simulator's admin JSON bodies. The first byte picks the endpoint.
pub fn sim_admin(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let endpoints = crate::sim::ADMIN_BODY_ENDPOINTS;
    let endpoint = endpoints[usize::from(which) % endpoints.len()];
    let _ = crate::sim::check_admin_body(endpoint, body);
}

/// A decrypted message plaintext: unpadding, the protobuf `Message` and our reading of its
/// content (text, device-sent copy, app-state key share, or the kind of anything else).
pub fn message_decode(data: &[u8]) {
    let _ = message::top_level_fields(data);
    let Ok((decoded, body)) = message::decode_padded(data) else {
        return;
    };
    let _ = decoded.body(body);
    let _ = decoded.destination();
    let _ = decoded.app_state_key_share();
    let _ = decoded.content().text_body();
}
