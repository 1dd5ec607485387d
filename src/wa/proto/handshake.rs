//! The Noise handshake envelope (`HandshakeMessage`) and the server certificate chain
//! (`CertChain`), written by hand with prost derives.
//!
//! Field numbers and types checked against WhatsApp's schema as published in Baileys'
//! `WAProto/WAProto.proto` (the generated copy of WhatsApp Web's `WAWebProtobufsWa6` and
//! `WAWebProtobufsCert`, also shipped by whatsmeow as `waWa6` / `waCert`):
//!
//! - `HandshakeMessage { ClientHello clientHello = 2; ServerHello serverHello = 3;
//!   ClientFinish clientFinish = 4; }` (there is no field 1).
//! - `ClientHello { bytes ephemeral = 1; bytes static = 2; bytes payload = 3; ... }` and
//!   `ServerHello { bytes ephemeral = 1; bytes static = 2; bytes payload = 3; ... }`.
//! - `ClientFinish { bytes static = 1; bytes payload = 2; ... }`: unlike the two hellos it
//!   has no `ephemeral`, so `static` is 1 and `payload` is 2 (PROTOCOL.md's "each has
//!   ephemeral = 1, static = 2, payload = 3" does not hold for this one).
//! - The "..." are newer post-quantum and padding fields (`useExtended`, `extendedCiphertext`,
//!   `paddedBytes`, `pqMode`, `extendedStatic`, ...) that the classic XX handshake leaves
//!   unset; prost skips them when a peer sends them.
//! - `CertChain { NoiseCertificate leaf = 1; NoiseCertificate intermediate = 2; }` with the
//!   nested `NoiseCertificate { bytes details = 1; bytes signature = 2; }` and
//!   `NoiseCertificate.Details { uint32 serial = 1; uint32 issuerSerial = 2; bytes key = 3;
//!   uint64 notBefore = 4; uint64 notAfter = 5; }`. `details` travels as encoded bytes so the
//!   signature covers exactly what was sent.
//! - Not to be confused with the older top-level `NoiseCertificate.Details { serial = 1;
//!   string issuer = 2; uint64 expires = 3; string subject = 4; bytes key = 5; }`, which the
//!   multi-device handshake no longer uses.
//!
//! All fields are proto2 `optional`, so absence is kept (`Option`) rather than folded into a
//! default.

/// The envelope of each of the three handshake messages; exactly one field is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HandshakeMessage {
    /// Message 1, client to server.
    #[prost(message, optional, tag = "2")]
    pub client_hello: Option<ClientHello>,
    /// Message 2, server to client.
    #[prost(message, optional, tag = "3")]
    pub server_hello: Option<ServerHello>,
    /// Message 3, client to server.
    #[prost(message, optional, tag = "4")]
    pub client_finish: Option<ClientFinish>,
}

/// Message 1 (`-> e`): only `ephemeral` is set in the XX handshake.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientHello {
    /// The client's ephemeral X25519 public key, 32 bytes in the clear.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub ephemeral: Option<Vec<u8>>,
    /// Unset in the XX handshake (other handshake modes use it).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub r#static: Option<Vec<u8>>,
    /// Unset in the XX handshake (other handshake modes use it).
    #[prost(bytes = "vec", optional, tag = "3")]
    pub payload: Option<Vec<u8>>,
}

/// Message 2 (`<- e, ee, s, es`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerHello {
    /// The server's ephemeral X25519 public key, 32 bytes in the clear.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub ephemeral: Option<Vec<u8>>,
    /// The server's static public key, encrypted: 32 bytes and a 16-byte tag.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub r#static: Option<Vec<u8>>,
    /// The encoded [`CertChain`], encrypted.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub payload: Option<Vec<u8>>,
}

/// Message 3 (`-> s, se`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientFinish {
    /// The client's static noise public key, encrypted: 32 bytes and a 16-byte tag.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub r#static: Option<Vec<u8>>,
    /// The encoded ClientPayload, encrypted.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub payload: Option<Vec<u8>>,
}

/// The server's certificate chain, the payload of the server hello.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CertChain {
    /// Certifies the server's static key; signed by the intermediate.
    #[prost(message, optional, tag = "1")]
    pub leaf: Option<NoiseCertificate>,
    /// Certifies the intermediate key; signed by the trust root.
    #[prost(message, optional, tag = "2")]
    pub intermediate: Option<NoiseCertificate>,
}

/// One certificate: encoded [`CertDetails`] and their XEdDSA signature.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NoiseCertificate {
    /// The encoded [`CertDetails`], exactly the bytes that were signed.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub details: Option<Vec<u8>>,
    /// XEdDSA signature (64 bytes) over `details` by the issuer's key.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub signature: Option<Vec<u8>>,
}

/// `CertChain.NoiseCertificate.Details`: what a certificate says.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CertDetails {
    /// This certificate's serial number.
    #[prost(uint32, optional, tag = "1")]
    pub serial: Option<u32>,
    /// The issuer's serial: 0 (the root) for the intermediate, the intermediate's serial
    /// for the leaf.
    #[prost(uint32, optional, tag = "2")]
    pub issuer_serial: Option<u32>,
    /// The certified X25519 public key, 32 bytes.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub key: Option<Vec<u8>>,
    /// Valid from (Unix seconds); absent or 0 means no lower bound.
    #[prost(uint64, optional, tag = "4")]
    pub not_before: Option<u64>,
    /// Valid until (Unix seconds); absent or 0 means no upper bound.
    #[prost(uint64, optional, tag = "5")]
    pub not_after: Option<u64>,
}

/// The name the schema gives [`CertDetails`].
pub type NoiseCertificateDetails = CertDetails;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_schema_on_the_wire() {
        // ClientFinish{static=1, payload=2} inside HandshakeMessage field 4.
        let finish = HandshakeMessage {
            client_finish: Some(ClientFinish {
                r#static: Some(vec![0xaa]),
                payload: Some(vec![0xbb]),
            }),
            ..Default::default()
        };
        assert_eq!(
            finish.encode_to_vec(),
            [0x22, 6, 0x0a, 1, 0xaa, 0x12, 1, 0xbb]
        );
        // ServerHello{ephemeral=1, static=2, payload=3} inside field 3.
        let hello = HandshakeMessage {
            server_hello: Some(ServerHello {
                ephemeral: Some(vec![1]),
                r#static: Some(vec![2]),
                payload: Some(vec![3]),
            }),
            ..Default::default()
        };
        assert_eq!(
            hello.encode_to_vec(),
            [0x1a, 9, 0x0a, 1, 1, 0x12, 1, 2, 0x1a, 1, 3]
        );
        // Details: varints 1, 2, bytes 3, varints 4, 5.
        let details = CertDetails {
            serial: Some(7),
            issuer_serial: Some(0),
            key: Some(vec![9]),
            not_before: Some(1),
            not_after: Some(2),
        };
        assert_eq!(
            details.encode_to_vec(),
            [0x08, 7, 0x10, 0, 0x1a, 1, 9, 0x20, 1, 0x28, 2]
        );
        // CertChain: leaf = 1, intermediate = 2.
        let chain = CertChain {
            leaf: Some(NoiseCertificate {
                details: Some(vec![1]),
                signature: None,
            }),
            intermediate: Some(NoiseCertificate {
                details: None,
                signature: Some(vec![2]),
            }),
        };
        assert_eq!(
            chain.encode_to_vec(),
            [0x0a, 3, 0x0a, 1, 1, 0x12, 3, 0x12, 1, 2]
        );
    }

    #[test]
    fn newer_fields_from_a_peer_are_skipped() {
        // A ServerHello carrying paddingBytes (field 5) still decodes.
        let bytes = [0x1a, 8, 0x0a, 1, 1, 0x2a, 3, 0, 0, 0];
        let msg = HandshakeMessage::decode(&bytes[..]).unwrap();
        assert_eq!(msg.server_hello.unwrap().ephemeral, Some(vec![1]));
    }
}
