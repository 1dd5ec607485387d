//! ADV ("account device verification") messages: what the phone signs when it links a device.
//!
//! Field numbers and enum values checked against whatsmeow's `proto/waAdv/WAAdv.proto`
//! (package `WAAdv`, proto2, snapshot of 2026-08):
//! - `ADVEncryptionType { E2EE = 0; HOSTED = 1; }`
//! - `ADVDeviceIdentity { rawID = 1 (uint32); timestamp = 2 (uint64); keyIndex = 3 (uint32);
//!   accountType = 4; deviceType = 5 }` (both enum `ADVEncryptionType`)
//! - `ADVSignedDeviceIdentity { details = 1; accountSignatureKey = 2; accountSignature = 3;
//!   deviceSignature = 4 }` (all bytes)
//! - `ADVSignedDeviceIdentityHMAC { details = 1; HMAC = 2 (bytes); accountType = 3 }`
//!
//! Every field is proto2 `optional`, so each is an `Option` here and a present default value
//! is still written on the wire.

/// Whether an account (or device) is end-to-end encrypted or hosted by a business provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AdvEncryptionType {
    E2ee = 0,
    Hosted = 1,
}

/// The facts the phone vouches for: which account key index the new device gets, and when.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdvDeviceIdentity {
    /// The account's raw id (the same for every device of the account).
    #[prost(uint32, optional, tag = "1")]
    pub raw_id: Option<u32>,
    /// Unix seconds when the phone signed.
    #[prost(uint64, optional, tag = "2")]
    pub timestamp: Option<u64>,
    /// The new device's index in the account's key index list.
    #[prost(uint32, optional, tag = "3")]
    pub key_index: Option<u32>,
    #[prost(enumeration = "AdvEncryptionType", optional, tag = "4")]
    pub account_type: Option<i32>,
    #[prost(enumeration = "AdvEncryptionType", optional, tag = "5")]
    pub device_type: Option<i32>,
}

/// An encoded `AdvDeviceIdentity` with the phone's (account) and the device's signatures.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdvSignedDeviceIdentity {
    /// The encoded `AdvDeviceIdentity`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub details: Option<Vec<u8>>,
    /// The phone's account public key (X25519, 32 bytes).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub account_signature_key: Option<Vec<u8>>,
    /// XEdDSA by the account key over `06 00 || details || device identity public key`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub account_signature: Option<Vec<u8>>,
    /// XEdDSA by the device identity key over
    /// `06 01 || details || device identity public key || account public key`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub device_signature: Option<Vec<u8>>,
}

/// The envelope of `pair-success`: an encoded `AdvSignedDeviceIdentity` authenticated with
/// the adv secret the device showed in its QR code.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdvSignedDeviceIdentityHmac {
    /// The encoded `AdvSignedDeviceIdentity`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub details: Option<Vec<u8>>,
    /// HMAC-SHA256 keyed with the adv secret over `details` (prefixed `06 05` when hosted).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub hmac: Option<Vec<u8>>,
    #[prost(enumeration = "AdvEncryptionType", optional, tag = "3")]
    pub account_type: Option<i32>,
}

/// When the phone signed an encoded `AdvSignedDeviceIdentity` (unix seconds): the pairing's
/// time, as the device keeps it in its credentials.
pub fn signed_at(signed_identity: &[u8]) -> Option<u64> {
    use prost::Message;
    let signed = AdvSignedDeviceIdentity::decode(signed_identity).ok()?;
    AdvDeviceIdentity::decode(signed.details?.as_slice())
        .ok()?
        .timestamp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_published_schema() {
        // keyIndex = 3 as varint 7 -> tag byte 0x18; deviceType = 5 -> 0x28.
        let id = AdvDeviceIdentity {
            key_index: Some(7),
            device_type: Some(AdvEncryptionType::Hosted as i32),
            ..Default::default()
        };
        assert_eq!(id.encode_to_vec(), vec![0x18, 7, 0x28, 1]);
        // accountSignatureKey = 2 (length-delimited) -> 0x12; deviceSignature = 4 -> 0x22.
        let signed = AdvSignedDeviceIdentity {
            account_signature_key: Some(vec![9]),
            device_signature: Some(vec![8]),
            ..Default::default()
        };
        assert_eq!(signed.encode_to_vec(), vec![0x12, 1, 9, 0x22, 1, 8]);
        // HMAC = 2 -> 0x12; accountType = 3 -> 0x18, and E2EE (0) is still written.
        let env = AdvSignedDeviceIdentityHmac {
            hmac: Some(vec![1]),
            account_type: Some(AdvEncryptionType::E2ee as i32),
            ..Default::default()
        };
        assert_eq!(env.encode_to_vec(), vec![0x12, 1, 1, 0x18, 0]);
    }

    #[test]
    fn the_signing_time_is_read_from_the_details() {
        let details = AdvDeviceIdentity {
            timestamp: Some(1_700_000_123),
            ..Default::default()
        };
        let signed = AdvSignedDeviceIdentity {
            details: Some(details.encode_to_vec()),
            ..Default::default()
        };
        assert_eq!(signed_at(&signed.encode_to_vec()), Some(1_700_000_123));
        assert_eq!(signed_at(b"\xff\xff"), None);
    }
}
