//! Noise_XX_25519_AESGCM_SHA256 as WhatsApp Web runs it (PROTOCOL.md section 2), both sides:
//! the client's [`Initiator`] and the simulator's [`Responder`], the certificate chain
//! ([`cert`]) and the transport cipher that follows ([`Transport`]). No I/O, no clock.
//!
//! # WhatsApp's transcript differs from standard Noise in one step
//! The Noise specification ends every handshake message with `EncryptAndHash(payload)`, so
//! after message 1 (`-> e` with an empty payload) a standard implementation such as `snow`
//! computes `h = SHA-256(h || "")`. WhatsApp's clients and server skip that step: whatsmeow
//! (`handshake.go`: `Authenticate(ephemeral)`, send `clientHello`, then
//! `Authenticate(serverEphemeral)`) and Baileys (`noise-handler.ts`) both go straight from
//! the client's ephemeral key to the server's. Every other step is the standard one: the
//! padded protocol name as initial `h` and `ck`, the 4-byte header as prologue, `ee`, `es`,
//! `se` mixed with HKDF-SHA256, AES-256-GCM with `h` as associated data and the IV
//! `0^8 || counter_be32`, and `Split` giving the initiator's sending key first.
//!
//! That is why the symmetric state is our own code ([`symmetric`]) rather than `snow`: a
//! snow handshake is accepted by a snow peer but refused by WhatsApp. The tests check our
//! state machine against snow with the standard step switched on (so every primitive is
//! the specification's) and show that snow is refused with it switched off.
//!
//! The transport after the handshake is also ours (AES-256-GCM with one counter per
//! direction) because WhatsApp frames can exceed the 64 KiB that Noise libraries allow.

mod cert;
mod dh;
mod symmetric;
mod transport;

use prost::Message;
use x25519_dalek::StaticSecret;

pub use cert::{CertAuthority, CertError, TrustRoot, sign_details, verify_cert_chain};
pub use transport::Transport;

use crate::wa::creds::KeyPair;
use crate::wa::proto::handshake::{
    CertChain, ClientFinish as ClientFinishMsg, ClientHello, HandshakeMessage, ServerHello,
};
use dh::{PeerKey, dh, dh_with_known, ephemeral};
use symmetric::{SymmetricState, TAG_LEN, key32};

/// Length of an encrypted static key: 32 bytes and a 16-byte tag.
const SEALED_KEY_LEN: usize = 32 + TAG_LEN;

/// Why a handshake or transport step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// The bytes are not a `HandshakeMessage` protobuf.
    #[error("handshake message could not be decoded")]
    Decode,
    /// A field the handshake needs is absent.
    #[error("handshake message is missing its {0}")]
    Missing(&'static str),
    /// A key field is not the length X25519 or AES-GCM requires.
    #[error("{0} has the wrong length")]
    BadLength(&'static str),
    /// A handshake ciphertext failed authentication: the peer used other keys, another
    /// transcript, or the message was altered.
    #[error("{0} failed authentication during the handshake")]
    HandshakeDecrypt(&'static str),
    /// The peer's key is a low-order point, which would make the shared secret public.
    #[error("peer sent a low-order public key")]
    LowOrderKey,
    /// A handshake step ran out of order or after an earlier step failed (a caller bug).
    #[error("handshake step called out of order or after a failure")]
    OutOfOrder,
    /// The server's certificate chain was refused.
    #[error("server certificate refused: {0}")]
    Cert(#[from] CertError),
    /// AES-GCM refused to seal (only possible for absurd lengths).
    #[error("frame could not be encrypted")]
    Encrypt,
    /// A transport frame failed authentication: tampered, replayed, or out of order.
    #[error("frame failed authentication (bad GCM tag)")]
    BadTag,
    /// 2^32 frames went one way on one connection; the nonce cannot be reused.
    #[error("transport counter exhausted")]
    CounterExhausted,
}

/// Our static key pair as the handshake needs it. The public half is the stored one, not
/// computed again for every handshake: a pair whose halves do not belong together fails
/// the peer's `se` (or `es`) step, and the handshake with it.
struct StaticKey {
    secret: StaticSecret,
    public: [u8; 32],
}

impl StaticKey {
    fn new(pair: &KeyPair) -> Self {
        StaticKey {
            secret: StaticSecret::from(*pair.private.expose()),
            public: pair.public,
        }
    }
}

/// Standard Noise hashes message 1's empty payload; WhatsApp does not (see the module doc).
/// Only the tests that check us against `snow` ask for the standard step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transcript {
    WhatsApp,
    #[cfg(test)]
    Standard,
}

impl Transcript {
    /// Mixes message 1's empty payload into `h` if this transcript does so.
    fn after_first_message(self, state: &mut SymmetricState) {
        let hashes_empty_payload = match self {
            Transcript::WhatsApp => false,
            #[cfg(test)]
            Transcript::Standard => true,
        };
        if hashes_empty_payload {
            state.mix_hash(&[]);
        }
    }
}

fn decode(message: &[u8]) -> Result<HandshakeMessage, NoiseError> {
    HandshakeMessage::decode(message).map_err(|_| NoiseError::Decode)
}

/// Where the client is in the handshake.
enum InitiatorStep {
    /// `client_hello` not yet called.
    Start,
    /// Sent our ephemeral key; waiting for the server hello.
    SentHello { e: StaticSecret },
    /// Server hello read and its chain accepted.
    ReadServerHello { server_ephemeral: PeerKey },
    /// A step failed; the handshake cannot go on.
    Failed,
}

/// The client side of the handshake: `client_hello`, `read_server_hello`, `client_finish`.
pub struct Initiator {
    state: SymmetricState,
    s: StaticKey,
    step: InitiatorStep,
    transcript: Transcript,
    /// A fixed ephemeral key for transcript tests; `None` draws a fresh one.
    #[cfg(test)]
    fixed_ephemeral: Option<[u8; 32]>,
}

impl Initiator {
    /// Starts a handshake with our static noise key pair (the connection header is mixed in
    /// as the prologue here).
    pub fn new(static_key: &KeyPair) -> Result<Self, NoiseError> {
        Ok(Initiator {
            state: SymmetricState::new(),
            s: StaticKey::new(static_key),
            step: InitiatorStep::Start,
            transcript: Transcript::WhatsApp,
            #[cfg(test)]
            fixed_ephemeral: None,
        })
    }

    fn new_ephemeral(&self) -> (StaticSecret, [u8; 32]) {
        #[cfg(test)]
        if let Some(private) = self.fixed_ephemeral {
            let secret = StaticSecret::from(private);
            let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
            return (secret, public);
        }
        ephemeral()
    }

    /// Message 1: the encoded `HandshakeMessage{clientHello{ephemeral}}`.
    pub fn client_hello(&mut self) -> Result<Vec<u8>, NoiseError> {
        if !matches!(
            std::mem::replace(&mut self.step, InitiatorStep::Failed),
            InitiatorStep::Start
        ) {
            return Err(NoiseError::OutOfOrder);
        }
        let (e, e_public) = self.new_ephemeral();
        self.state.mix_hash(&e_public);
        self.transcript.after_first_message(&mut self.state);
        self.step = InitiatorStep::SentHello { e };
        Ok(HandshakeMessage {
            client_hello: Some(ClientHello {
                ephemeral: Some(e_public.to_vec()),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec())
    }

    /// Message 2: reads the server hello (`e, ee, s, es` and the encrypted certificate
    /// chain), then verifies the chain fully against `trust` at `now_unix` and checks that
    /// its leaf certifies the static key the server just proved it holds.
    pub fn read_server_hello(
        &mut self,
        message: &[u8],
        trust: &TrustRoot,
        now_unix: u64,
    ) -> Result<(), NoiseError> {
        let InitiatorStep::SentHello { e } =
            std::mem::replace(&mut self.step, InitiatorStep::Failed)
        else {
            return Err(NoiseError::OutOfOrder);
        };
        let hello = decode(message)?
            .server_hello
            .ok_or(NoiseError::Missing("server hello"))?;
        let re = hello
            .ephemeral
            .ok_or(NoiseError::Missing("server ephemeral key"))?;
        let sealed_static = hello
            .r#static
            .ok_or(NoiseError::Missing("server static key"))?;
        let sealed_certs = hello
            .payload
            .ok_or(NoiseError::Missing("certificate payload"))?;
        let re = key32(&re, "server ephemeral key")?;
        if sealed_static.len() != SEALED_KEY_LEN {
            return Err(NoiseError::BadLength("server static key"));
        }

        self.state.mix_hash(&re);
        let re = PeerKey::new(&re);
        self.state.mix_key(&re.dh(&e)?);
        let rs = self
            .state
            .decrypt_and_hash(&sealed_static, "server static key")?;
        let rs = key32(&rs, "server static key")?;
        self.state.mix_key(&dh_with_known(&e, &rs)?);
        let certs = self
            .state
            .decrypt_and_hash(&sealed_certs, "certificate payload")?;

        let chain = CertChain::decode(certs.as_slice()).map_err(|_| CertError::Decode)?;
        verify_cert_chain(&chain, trust, &rs, now_unix)?;
        self.step = InitiatorStep::ReadServerHello {
            server_ephemeral: re,
        };
        Ok(())
    }

    /// Message 3: our encrypted static key and `payload` (the encoded ClientPayload), and
    /// the transport cipher for every frame after it.
    pub fn client_finish(mut self, payload: &[u8]) -> Result<(Vec<u8>, Transport), NoiseError> {
        let InitiatorStep::ReadServerHello {
            server_ephemeral: re,
        } = self.step
        else {
            return Err(NoiseError::OutOfOrder);
        };
        let sealed_static = self.state.encrypt_and_hash(&self.s.public)?;
        self.state.mix_key(&re.dh(&self.s.secret)?);
        let sealed_payload = self.state.encrypt_and_hash(payload)?;
        let message = HandshakeMessage {
            client_finish: Some(ClientFinishMsg {
                r#static: Some(sealed_static),
                payload: Some(sealed_payload),
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let (write_key, read_key) = self.state.split();
        Ok((message, Transport::new(&write_key, &read_key)))
    }
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let step = match self.step {
            InitiatorStep::Start => "start",
            InitiatorStep::SentHello { .. } => "sent client hello",
            InitiatorStep::ReadServerHello { .. } => "read server hello",
            InitiatorStep::Failed => "failed",
        };
        f.debug_struct("Initiator")
            .field("step", &step)
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// What the server learns from the client's last handshake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinish {
    /// The client's static noise public key.
    pub client_static: [u8; 32],
    /// The decrypted ClientPayload.
    pub payload: Vec<u8>,
}

/// Where the server is in the handshake.
enum ResponderStep {
    /// Waiting for the client hello.
    Start,
    /// Read the client's ephemeral key.
    ReadHello { client_ephemeral: [u8; 32] },
    /// Sent the server hello; waiting for the client finish.
    SentHello { e: StaticSecret },
    /// A step failed; the handshake cannot go on.
    Failed,
}

/// The server side of the handshake (the simulator): `read_client_hello`, `server_hello`,
/// `read_client_finish`.
pub struct Responder {
    state: SymmetricState,
    s: StaticKey,
    cert_chain: Vec<u8>,
    step: ResponderStep,
    transcript: Transcript,
}

impl Responder {
    /// Starts a handshake with the server's static key pair and its encoded `CertChain`.
    pub fn new(static_key: &KeyPair, cert_chain: Vec<u8>) -> Result<Self, NoiseError> {
        Ok(Responder {
            state: SymmetricState::new(),
            s: StaticKey::new(static_key),
            cert_chain,
            step: ResponderStep::Start,
            transcript: Transcript::WhatsApp,
        })
    }

    /// Message 1 from the client: its ephemeral key.
    pub fn read_client_hello(&mut self, message: &[u8]) -> Result<(), NoiseError> {
        if !matches!(
            std::mem::replace(&mut self.step, ResponderStep::Failed),
            ResponderStep::Start
        ) {
            return Err(NoiseError::OutOfOrder);
        }
        let hello = decode(message)?
            .client_hello
            .ok_or(NoiseError::Missing("client hello"))?;
        let re = hello
            .ephemeral
            .ok_or(NoiseError::Missing("client ephemeral key"))?;
        let re = key32(&re, "client ephemeral key")?;
        self.state.mix_hash(&re);
        self.transcript.after_first_message(&mut self.state);
        self.step = ResponderStep::ReadHello {
            client_ephemeral: re,
        };
        Ok(())
    }

    /// Message 2: our ephemeral key, our encrypted static key and the encrypted
    /// certificate chain.
    pub fn server_hello(&mut self) -> Result<Vec<u8>, NoiseError> {
        let ResponderStep::ReadHello { client_ephemeral } =
            std::mem::replace(&mut self.step, ResponderStep::Failed)
        else {
            return Err(NoiseError::OutOfOrder);
        };
        let (e, e_public) = ephemeral();
        self.state.mix_hash(&e_public);
        let client_ephemeral = PeerKey::new(&client_ephemeral);
        self.state.mix_key(&client_ephemeral.dh(&e)?);
        let sealed_static = self.state.encrypt_and_hash(&self.s.public)?;
        self.state.mix_key(&client_ephemeral.dh(&self.s.secret)?);
        let sealed_certs = self.state.encrypt_and_hash(&self.cert_chain)?;
        self.step = ResponderStep::SentHello { e };
        Ok(HandshakeMessage {
            server_hello: Some(ServerHello {
                ephemeral: Some(e_public.to_vec()),
                r#static: Some(sealed_static),
                payload: Some(sealed_certs),
            }),
            ..Default::default()
        }
        .encode_to_vec())
    }

    /// Message 3 from the client: its static key (`s, se`) and payload, and the transport
    /// cipher for every frame after it.
    pub fn read_client_finish(
        mut self,
        message: &[u8],
    ) -> Result<(ClientFinish, Transport), NoiseError> {
        let ResponderStep::SentHello { e } = &self.step else {
            return Err(NoiseError::OutOfOrder);
        };
        let finish = decode(message)?
            .client_finish
            .ok_or(NoiseError::Missing("client finish"))?;
        let sealed_static = finish
            .r#static
            .ok_or(NoiseError::Missing("client static key"))?;
        let sealed_payload = finish
            .payload
            .ok_or(NoiseError::Missing("client payload"))?;
        if sealed_static.len() != SEALED_KEY_LEN {
            return Err(NoiseError::BadLength("client static key"));
        }
        let rs = self
            .state
            .decrypt_and_hash(&sealed_static, "client static key")?;
        let client_static = key32(&rs, "client static key")?;
        self.state.mix_key(&dh(e, &client_static)?);
        let payload = self
            .state
            .decrypt_and_hash(&sealed_payload, "client payload")?;
        let (client_write, client_read) = self.state.split();
        Ok((
            ClientFinish {
                client_static,
                payload,
            },
            Transport::new(&client_read, &client_write),
        ))
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let step = match self.step {
            ResponderStep::Start => "start",
            ResponderStep::ReadHello { .. } => "read client hello",
            ResponderStep::SentHello { .. } => "sent server hello",
            ResponderStep::Failed => "failed",
        };
        f.debug_struct("Responder")
            .field("step", &step)
            .field("keys", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "interop_tests.rs"]
mod interop_tests;
