//! QR pairing at both ends. Companion side: the QR text, `pair-success` parsing and checks,
//! the `pair-device-sign` reply. Phone side (for the simulator): QR parsing, signing the new
//! device's identity, the `pair-success` stanza and the check of the companion's signature.
//!
//! The signed bytes, as whatsmeow's `pair.go` (2026-08) computes them:
//! - HMAC-SHA256 keyed with the adv secret over `details` of the envelope, prefixed `06 05`
//!   when the envelope's `accountType` is HOSTED (1);
//! - account signature (XEdDSA, account key) over `06 00 || details || device identity pub`,
//!   with the prefix `06 05` instead when the inner `deviceType` is HOSTED;
//! - device signature (XEdDSA, device identity key) over
//!   `06 01 || details || device identity pub || account pub`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use prost::Message as _;
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::wa::creds::{Account, Credentials, KeyPair};
use crate::wa::node::Node;
use crate::wa::proto::adv::{
    AdvDeviceIdentity, AdvEncryptionType, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac,
};
use crate::wa::xeddsa;

/// What the current QR form starts with; the phone's camera app opens it as a link.
pub const QR_PREFIX: &str = "https://wa.me/settings/linked_devices#";

/// The server's JID, the `to` of every reply.
pub const SERVER_JID: &str = "s.whatsapp.net";

const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];
const DEVICE_SIGNATURE_PREFIX: [u8; 2] = [6, 1];
const HOSTED_ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 5];

/// Why pairing failed.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("the pairing stanza has no {0}")]
    MissingField(&'static str),
    #[error("the {0} could not be decoded")]
    Decode(&'static str, #[source] prost::DecodeError),
    #[error("the device identity HMAC does not match our adv secret")]
    BadHmac,
    #[error("the account signature over our identity key does not verify")]
    BadAccountSignature,
    #[error("the companion's device signature does not verify")]
    BadDeviceSignature,
    #[error("the {field} is {len} bytes long, expected {expected}")]
    BadLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("the device JID {0:?} is not of the form PHONE:DEVICE@s.whatsapp.net")]
    BadJid(String),
    #[error("the QR text is malformed: {0}")]
    BadQr(&'static str),
    #[error("the pair-device-sign reply still carries the account signature key")]
    AccountKeyNotStripped,
    #[error("the reply's key-index {attr:?} is not the signed key index {signed}")]
    KeyIndexMismatch { attr: String, signed: u32 },
}

impl PairError {
    /// The code and text of the iq error a companion sends back (whatsmeow's choices).
    pub fn reply_code(&self) -> (u16, &'static str) {
        match self {
            PairError::BadHmac => (401, "hmac-mismatch"),
            PairError::BadAccountSignature => (401, "signature-mismatch"),
            _ => (500, "internal-error"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Companion side
// ---------------------------------------------------------------------------------------------

/// The text to show as a QR code for one `ref` of `pair-device`, in the current form:
/// `PREFIX REF,noise,identity,adv,PLATFORM` with standard padded base64.
pub fn qr_text(reference: &str, creds: &Credentials, platform: char) -> String {
    format!(
        "{QR_PREFIX}{reference},{},{},{},{platform}",
        BASE64.encode(creds.noise.public),
        BASE64.encode(creds.identity.public),
        BASE64.encode(creds.adv_secret.expose()),
    )
}

/// The contents of a `pair-success` iq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairSuccess {
    /// The iq id, echoed in the reply.
    pub id: String,
    /// The encoded `ADVSignedDeviceIdentityHMAC`.
    pub device_identity: Vec<u8>,
    /// Our new JID, `PHONE:DEVICE@s.whatsapp.net`.
    pub jid: String,
    pub lid: Option<String>,
    pub platform: Option<String>,
    pub business_name: Option<String>,
}

/// Reads `<iq id=..><pair-success><device-identity>..</device-identity><device jid= lid=/>
/// <platform name=/><biz name=/></pair-success></iq>`.
pub fn parse_pair_success(iq: &Node) -> Result<PairSuccess, PairError> {
    let id = iq.get_attr("id").ok_or(PairError::MissingField("iq id"))?;
    let success = iq
        .get_child("pair-success")
        .ok_or(PairError::MissingField("pair-success"))?;
    let device_identity = success
        .get_child("device-identity")
        .and_then(Node::content_bytes)
        .ok_or(PairError::MissingField("device-identity"))?;
    let device = success
        .get_child("device")
        .ok_or(PairError::MissingField("device"))?;
    let jid = device
        .get_attr("jid")
        .ok_or(PairError::MissingField("device jid"))?;
    let named = |tag: &str| {
        success
            .get_child(tag)
            .and_then(|n| n.get_attr("name"))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(PairSuccess {
        id: id.to_string(),
        device_identity: device_identity.to_vec(),
        jid: jid.to_string(),
        lid: device
            .get_attr("lid")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        platform: named("platform"),
        business_name: named("biz"),
    })
}

/// Checks what the phone sent and signs it: on success, the account to store and the
/// `pair-device-sign` iq to send. On failure send [`pair_error_reply`] and stop.
pub fn complete_pairing(
    creds: &Credentials,
    success: &PairSuccess,
) -> Result<(Account, Node), PairError> {
    let envelope = AdvSignedDeviceIdentityHmac::decode(success.device_identity.as_slice())
        .map_err(|e| PairError::Decode("device identity envelope", e))?;
    let details = envelope
        .details
        .as_deref()
        .ok_or(PairError::MissingField("device identity details"))?;
    let mac = envelope
        .hmac
        .as_deref()
        .ok_or(PairError::MissingField("device identity HMAC"))?;
    let hmac_prefix: &[u8] = if envelope.account_type == Some(AdvEncryptionType::Hosted as i32) {
        &HOSTED_ACCOUNT_SIGNATURE_PREFIX
    } else {
        &[]
    };
    let expected = hmac_sha256(creds.adv_secret.expose(), &[hmac_prefix, details]);
    // Slices of different lengths compare unequal.
    if !bool::from(expected.as_slice().ct_eq(mac)) {
        return Err(PairError::BadHmac);
    }

    let mut signed = AdvSignedDeviceIdentity::decode(details)
        .map_err(|e| PairError::Decode("signed device identity", e))?;
    let inner = signed
        .details
        .clone()
        .ok_or(PairError::MissingField("signed identity details"))?;
    let identity = AdvDeviceIdentity::decode(inner.as_slice())
        .map_err(|e| PairError::Decode("device identity details", e))?;
    let account_key: [u8; 32] = fixed("account signature key", &signed.account_signature_key)?;
    let account_signature: [u8; 64] = fixed("account signature", &signed.account_signature)?;
    let prefix = if identity.device_type == Some(AdvEncryptionType::Hosted as i32) {
        HOSTED_ACCOUNT_SIGNATURE_PREFIX
    } else {
        ACCOUNT_SIGNATURE_PREFIX
    };
    let message = [&prefix[..], &inner, &creds.identity.public].concat();
    if !xeddsa::verify(&account_key, &message, &account_signature) {
        return Err(PairError::BadAccountSignature);
    }
    let (phone, device) = split_jid(&success.jid)?;

    let device_message = device_signed_message(&inner, &creds.identity.public, &account_key);
    signed.device_signature = Some(creds.identity.sign(&device_message).to_vec());
    let kept = signed.encode_to_vec();
    signed.account_signature_key = None;
    let key_index = identity.key_index.unwrap_or(0);

    let account = Account {
        jid: success.jid.clone(),
        lid: success.lid.clone(),
        phone,
        device,
        platform: success.platform.clone(),
        business_name: success.business_name.clone(),
        signed_identity: kept,
        key_index,
    };
    let reply = Node::new("iq")
        .attr("to", SERVER_JID)
        .attr("type", "result")
        .attr("id", success.id.as_str())
        .child(
            Node::new("pair-device-sign").child(
                Node::new("device-identity")
                    .attr("key-index", key_index.to_string())
                    .bytes(signed.encode_to_vec()),
            ),
        );
    Ok((account, reply))
}

/// `<iq to="s.whatsapp.net" type="error" id=..><error code=.. text=../></iq>`.
pub fn pair_error_reply(id: &str, err: &PairError) -> Node {
    let (code, text) = err.reply_code();
    Node::new("iq")
        .attr("to", SERVER_JID)
        .attr("type", "error")
        .attr("id", id)
        .child(
            Node::new("error")
                .attr("code", code.to_string())
                .attr("text", text),
        )
}

/// Splits `PHONE[.AGENT]:DEVICE@s.whatsapp.net` into the phone digits and the device number.
fn split_jid(jid: &str) -> Result<(String, u32), PairError> {
    let bad = || PairError::BadJid(jid.to_string());
    let (user, server) = jid.split_once('@').ok_or_else(bad)?;
    if server != SERVER_JID {
        return Err(bad());
    }
    let (user, device) = match user.split_once(':') {
        Some((user, device)) => (user, device.parse::<u32>().map_err(|_| bad())?),
        None => (user, 0),
    };
    let phone = user.split_once('.').map_or(user, |(phone, _agent)| phone);
    if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok((phone.to_string(), device))
}

fn device_signed_message(details: &[u8], identity: &[u8; 32], account: &[u8; 32]) -> Vec<u8> {
    [&DEVICE_SIGNATURE_PREFIX[..], details, identity, account].concat()
}

/// HMAC-SHA256 with a 32-byte key over the concatenation of `parts`. HMAC pads a key shorter
/// than the hash block (64 bytes) with zeros, so a zero-padded 64-byte key gives the same MAC
/// through the infallible fixed-size constructor.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn fixed<const N: usize>(
    field: &'static str,
    value: &Option<Vec<u8>>,
) -> Result<[u8; N], PairError> {
    let bytes = value.as_deref().ok_or(PairError::MissingField(field))?;
    bytes.try_into().map_err(|_| PairError::BadLength {
        field,
        len: bytes.len(),
        expected: N,
    })
}

// ---------------------------------------------------------------------------------------------
// Phone side (the simulator's virtual phone)
// ---------------------------------------------------------------------------------------------

/// What a phone reads from a companion's QR code.
#[derive(Clone, PartialEq, Eq)]
pub struct QrInfo {
    pub reference: String,
    pub noise_public: [u8; 32],
    pub identity_public: [u8; 32],
    pub adv_secret: [u8; 32],
    /// The web client type of the current form; `None` for the older four-field form.
    pub platform: Option<char>,
}

impl fmt::Debug for QrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrInfo")
            .field("reference", &self.reference)
            .field("noise_public", &BASE64.encode(self.noise_public))
            .field("identity_public", &BASE64.encode(self.identity_public))
            .field("adv_secret", &format_args!("<redacted>"))
            .field("platform", &self.platform)
            .finish()
    }
}

/// Parses both QR forms: `https://wa.me/settings/linked_devices#REF,N,I,A,P` and the older
/// `REF,N,I,A`.
pub fn parse_qr(text: &str) -> Result<QrInfo, PairError> {
    let body = text.strip_prefix(QR_PREFIX).unwrap_or(text);
    let fields: Vec<&str> = body.split(',').collect();
    let (reference, noise, identity, adv, platform) = match fields.as_slice() {
        [r, n, i, a] => (*r, *n, *i, *a, None),
        [r, n, i, a, p] => {
            let mut chars = p.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => (*r, *n, *i, *a, Some(c)),
                _ => return Err(PairError::BadQr("the platform is not one character")),
            }
        }
        _ => return Err(PairError::BadQr("expected 4 or 5 comma-separated fields")),
    };
    if reference.is_empty() {
        return Err(PairError::BadQr("the reference is empty"));
    }
    Ok(QrInfo {
        reference: reference.to_string(),
        noise_public: qr_key(noise, "the noise key is not 32 bytes of base64")?,
        identity_public: qr_key(identity, "the identity key is not 32 bytes of base64")?,
        adv_secret: qr_key(adv, "the adv secret is not 32 bytes of base64")?,
        platform,
    })
}

fn qr_key(field: &str, problem: &'static str) -> Result<[u8; 32], PairError> {
    BASE64
        .decode(field)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(PairError::BadQr(problem))
}

/// A virtual primary phone: an account key pair that vouches for linked devices.
#[derive(Clone, Debug)]
pub struct Phone {
    /// Digits only, e.g. `15550001111`.
    pub phone: String,
    /// The account (primary device identity) key pair.
    pub account: KeyPair,
    /// The account's raw id, the same in every device identity it signs.
    pub raw_id: u32,
}

impl Phone {
    /// A phone for this number with a fresh account key.
    pub fn new(phone: &str) -> Self {
        Phone {
            phone: phone.to_string(),
            account: KeyPair::generate(),
            raw_id: rand::rngs::OsRng.next_u32(),
        }
    }

    /// The JID of device number `device` of this account.
    pub fn device_jid(&self, device: u32) -> String {
        format!("{}:{device}@{SERVER_JID}", self.phone)
    }

    /// The encoded `ADVSignedDeviceIdentityHMAC` for the companion that showed `qr`: the
    /// device identity with key index `key_index`, signed by the account, authenticated with
    /// the companion's adv secret. (The device number is not part of the signed bytes.)
    pub fn sign_pairing(&self, qr: &QrInfo, key_index: u32, now_unix: u64) -> Vec<u8> {
        self.sign_pairing_as(qr, key_index, now_unix, AdvEncryptionType::E2ee)
    }

    fn sign_pairing_as(
        &self,
        qr: &QrInfo,
        key_index: u32,
        now_unix: u64,
        kind: AdvEncryptionType,
    ) -> Vec<u8> {
        let details = AdvDeviceIdentity {
            raw_id: Some(self.raw_id),
            timestamp: Some(now_unix),
            key_index: Some(key_index),
            account_type: Some(kind as i32),
            device_type: Some(kind as i32),
        }
        .encode_to_vec();
        let prefix = match kind {
            AdvEncryptionType::E2ee => ACCOUNT_SIGNATURE_PREFIX,
            AdvEncryptionType::Hosted => HOSTED_ACCOUNT_SIGNATURE_PREFIX,
        };
        let message = [&prefix[..], &details, &qr.identity_public].concat();
        let signed = AdvSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(self.account.public.to_vec()),
            account_signature: Some(self.account.sign(&message).to_vec()),
            device_signature: None,
        }
        .encode_to_vec();
        let hmac_prefix: &[u8] = match kind {
            AdvEncryptionType::E2ee => &[],
            AdvEncryptionType::Hosted => &HOSTED_ACCOUNT_SIGNATURE_PREFIX,
        };
        let hmac = hmac_sha256(&qr.adv_secret, &[hmac_prefix, &signed]);
        AdvSignedDeviceIdentityHmac {
            details: Some(signed),
            hmac: Some(hmac.to_vec()),
            account_type: Some(kind as i32),
        }
        .encode_to_vec()
    }

    /// `<iq from="s.whatsapp.net" type="set" id=.. xmlns="md"><pair-success>
    /// <device-identity>..</device-identity><device jid=.. lid=../><platform name=../>
    /// </pair-success></iq>`.
    pub fn pair_success_iq(
        &self,
        id: &str,
        device_identity: Vec<u8>,
        device: u32,
        lid: &str,
        platform: &str,
    ) -> Node {
        Node::new("iq")
            .attr("from", SERVER_JID)
            .attr("type", "set")
            .attr("id", id)
            .attr("xmlns", "md")
            .child(
                Node::new("pair-success")
                    .child(Node::new("device-identity").bytes(device_identity))
                    .child(
                        Node::new("device")
                            .attr("jid", self.device_jid(device))
                            .attr("lid", lid),
                    )
                    .child(Node::new("platform").attr("name", platform)),
            )
    }

    /// Checks the companion's `pair-device-sign` reply: the identity it returns must be the one
    /// this phone signed for `qr`, without the account key, with a valid device signature.
    /// Returns the key index.
    pub fn verify_device_sign(&self, qr: &QrInfo, reply: &Node) -> Result<u32, PairError> {
        let node = reply
            .get_child("pair-device-sign")
            .and_then(|n| n.get_child("device-identity"))
            .ok_or(PairError::MissingField("pair-device-sign device-identity"))?;
        let bytes = node
            .content_bytes()
            .ok_or(PairError::MissingField("device-identity bytes"))?;
        let signed = AdvSignedDeviceIdentity::decode(bytes)
            .map_err(|e| PairError::Decode("signed device identity", e))?;
        if signed.account_signature_key.is_some() {
            return Err(PairError::AccountKeyNotStripped);
        }
        let details = signed
            .details
            .as_deref()
            .ok_or(PairError::MissingField("signed identity details"))?;
        let identity = AdvDeviceIdentity::decode(details)
            .map_err(|e| PairError::Decode("device identity details", e))?;
        let account_signature: [u8; 64] = fixed("account signature", &signed.account_signature)?;
        let prefix = if identity.device_type == Some(AdvEncryptionType::Hosted as i32) {
            HOSTED_ACCOUNT_SIGNATURE_PREFIX
        } else {
            ACCOUNT_SIGNATURE_PREFIX
        };
        let message = [&prefix[..], details, &qr.identity_public].concat();
        if !xeddsa::verify(&self.account.public, &message, &account_signature) {
            return Err(PairError::BadAccountSignature);
        }
        let device_signature: [u8; 64] = fixed("device signature", &signed.device_signature)?;
        let message = device_signed_message(details, &qr.identity_public, &self.account.public);
        if !xeddsa::verify(&qr.identity_public, &message, &device_signature) {
            return Err(PairError::BadDeviceSignature);
        }
        let signed_index = identity.key_index.unwrap_or(0);
        let attr = node.get_attr("key-index").unwrap_or("");
        if attr.parse::<u32>().ok() != Some(signed_index) {
            return Err(PairError::KeyIndexMismatch {
                attr: attr.to_string(),
                signed: signed_index,
            });
        }
        Ok(signed_index)
    }
}

#[cfg(test)]
#[path = "pair_tests.rs"]
mod tests;
