//! Noise_XX_25519_AESGCM_SHA256 as WhatsApp Web uses it (PROTOCOL.md section 2), both sides.
//! The handshake runs on `snow` with the 4-byte connection header as prologue; its message
//! bytes are mapped to and from the `HandshakeMessage` protobuf. After the handshake the split
//! keys drive our own AES-GCM transport (see `transport.rs`).

mod cert;
mod transport;

use prost::Message;

pub use cert::{CertAuthority, CertError, TrustRoot, sign_details, verify_cert_chain};
pub use transport::Transport;

use crate::wa::frame::HEADER;
use crate::wa::proto::handshake::{
    CertChain, ClientFinish as ClientFinishMsg, ClientHello, HandshakeMessage, ServerHello,
};

const PATTERN: &str = "Noise_XX_25519_AESGCM_SHA256";
const KEY_LEN: usize = 32;
/// Encrypted static key: 32 bytes + 16-byte tag.
const SEALED_KEY_LEN: usize = 48;

/// Why a handshake or transport step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    #[error("handshake message could not be decoded")]
    Decode,
    #[error("handshake message is missing its {0}")]
    Missing(&'static str),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("server certificate refused: {0}")]
    Cert(#[from] CertError),
    #[error("frame could not be encrypted")]
    Encrypt,
    #[error("frame failed authentication (bad GCM tag)")]
    BadTag,
    #[error("transport counter exhausted")]
    CounterExhausted,
}

fn snow_err(e: snow::Error) -> NoiseError {
    NoiseError::Handshake(e.to_string())
}

fn initiator_state(private: &[u8; 32]) -> Result<snow::HandshakeState, NoiseError> {
    let params: snow::params::NoiseParams = PATTERN.parse().map_err(snow_err)?;
    snow::Builder::new(params)
        .local_private_key(private)
        .map_err(snow_err)?
        .prologue(&HEADER)
        .map_err(snow_err)?
        .build_initiator()
        .map_err(snow_err)
}

fn responder_state(private: &[u8; 32]) -> Result<snow::HandshakeState, NoiseError> {
    let params: snow::params::NoiseParams = PATTERN.parse().map_err(snow_err)?;
    snow::Builder::new(params)
        .local_private_key(private)
        .map_err(snow_err)?
        .prologue(&HEADER)
        .map_err(snow_err)?
        .build_responder()
        .map_err(snow_err)
}

fn write(hs: &mut snow::HandshakeState, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let mut out = vec![0u8; payload.len() + 2 * KEY_LEN + 64];
    let n = hs.write_message(payload, &mut out).map_err(snow_err)?;
    out.truncate(n);
    Ok(out)
}

fn read(hs: &mut snow::HandshakeState, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let mut out = vec![0u8; message.len()];
    let n = hs.read_message(message, &mut out).map_err(snow_err)?;
    out.truncate(n);
    Ok(out)
}

fn remote_static(hs: &snow::HandshakeState) -> Result<[u8; 32], NoiseError> {
    hs.get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or(NoiseError::Missing("static key"))
}

/// The client side of the handshake.
pub struct Initiator {
    hs: snow::HandshakeState,
}

impl Initiator {
    /// Starts a handshake with our static noise key.
    pub fn new(static_private: &[u8; 32]) -> Result<Self, NoiseError> {
        Ok(Initiator {
            hs: initiator_state(static_private)?,
        })
    }

    /// Message 1: the encoded `HandshakeMessage{clientHello{ephemeral}}`.
    pub fn client_hello(&mut self) -> Result<Vec<u8>, NoiseError> {
        let e = write(&mut self.hs, &[])?;
        Ok(HandshakeMessage {
            client_hello: Some(ClientHello {
                ephemeral: Some(e),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec())
    }

    /// Message 2: reads the server hello and verifies its certificate chain fully.
    pub fn read_server_hello(
        &mut self,
        message: &[u8],
        trust: &TrustRoot,
        now_unix: u64,
    ) -> Result<(), NoiseError> {
        let msg = HandshakeMessage::decode(message).map_err(|_| NoiseError::Decode)?;
        let hello = msg
            .server_hello
            .ok_or(NoiseError::Missing("server hello"))?;
        let e = hello
            .ephemeral
            .ok_or(NoiseError::Missing("server ephemeral"))?;
        let s = hello.r#static.ok_or(NoiseError::Missing("server static"))?;
        let p = hello
            .payload
            .ok_or(NoiseError::Missing("certificate payload"))?;
        if e.len() != KEY_LEN || s.len() != SEALED_KEY_LEN {
            return Err(NoiseError::Decode);
        }
        let mut joined = Vec::with_capacity(e.len() + s.len() + p.len());
        joined.extend_from_slice(&e);
        joined.extend_from_slice(&s);
        joined.extend_from_slice(&p);
        let cert_bytes = read(&mut self.hs, &joined)?;
        let chain = CertChain::decode(cert_bytes.as_slice()).map_err(|_| CertError::Decode)?;
        let server_static = remote_static(&self.hs)?;
        verify_cert_chain(&chain, trust, &server_static, now_unix)?;
        Ok(())
    }

    /// Message 3: our encrypted static key and `payload` (the ClientPayload), and the
    /// transport cipher for everything after.
    pub fn client_finish(mut self, payload: &[u8]) -> Result<(Vec<u8>, Transport), NoiseError> {
        let out = write(&mut self.hs, payload)?;
        if out.len() < SEALED_KEY_LEN {
            return Err(NoiseError::Decode);
        }
        let (s, p) = out.split_at(SEALED_KEY_LEN);
        let message = HandshakeMessage {
            client_finish: Some(ClientFinishMsg {
                r#static: Some(s.to_vec()),
                payload: Some(p.to_vec()),
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let (write_key, read_key) = self.hs.dangerously_get_raw_split();
        Ok((message, Transport::new(&write_key, &read_key)))
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

/// The server side of the handshake.
pub struct Responder {
    hs: snow::HandshakeState,
    cert_chain: Vec<u8>,
}

impl Responder {
    /// Starts a handshake with the server's static key and its encoded certificate chain.
    pub fn new(static_private: &[u8; 32], cert_chain: Vec<u8>) -> Result<Self, NoiseError> {
        Ok(Responder {
            hs: responder_state(static_private)?,
            cert_chain,
        })
    }

    /// Message 1 from the client.
    pub fn read_client_hello(&mut self, message: &[u8]) -> Result<(), NoiseError> {
        let msg = HandshakeMessage::decode(message).map_err(|_| NoiseError::Decode)?;
        let hello = msg
            .client_hello
            .ok_or(NoiseError::Missing("client hello"))?;
        let e = hello
            .ephemeral
            .ok_or(NoiseError::Missing("client ephemeral"))?;
        if e.len() != KEY_LEN {
            return Err(NoiseError::Decode);
        }
        read(&mut self.hs, &e)?;
        Ok(())
    }

    /// Message 2: our ephemeral, encrypted static key and encrypted certificate chain.
    pub fn server_hello(&mut self) -> Result<Vec<u8>, NoiseError> {
        let out = write(&mut self.hs, &self.cert_chain)?;
        if out.len() < KEY_LEN + SEALED_KEY_LEN {
            return Err(NoiseError::Decode);
        }
        let (e, rest) = out.split_at(KEY_LEN);
        let (s, p) = rest.split_at(SEALED_KEY_LEN);
        Ok(HandshakeMessage {
            server_hello: Some(ServerHello {
                ephemeral: Some(e.to_vec()),
                r#static: Some(s.to_vec()),
                payload: Some(p.to_vec()),
            }),
            ..Default::default()
        }
        .encode_to_vec())
    }

    /// Message 3 from the client: its static key and payload, and the transport cipher.
    pub fn read_client_finish(
        mut self,
        message: &[u8],
    ) -> Result<(ClientFinish, Transport), NoiseError> {
        let msg = HandshakeMessage::decode(message).map_err(|_| NoiseError::Decode)?;
        let finish = msg
            .client_finish
            .ok_or(NoiseError::Missing("client finish"))?;
        let s = finish
            .r#static
            .ok_or(NoiseError::Missing("client static"))?;
        let p = finish
            .payload
            .ok_or(NoiseError::Missing("client payload"))?;
        if s.len() != SEALED_KEY_LEN {
            return Err(NoiseError::Decode);
        }
        let mut joined = s;
        joined.extend_from_slice(&p);
        let payload = read(&mut self.hs, &joined)?;
        let client_static = remote_static(&self.hs)?;
        let (client_write, client_read) = self.hs.dangerously_get_raw_split();
        Ok((
            ClientFinish {
                client_static,
                payload,
            },
            Transport::new(&client_read, &client_write),
        ))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
