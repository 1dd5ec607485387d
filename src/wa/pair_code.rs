//! Pairing by phone-number code at both ends (PROTOCOL-MESSAGING.md section 7). Companion
//! side: the 8-character code, the `companion_hello` iq with the wrapped ephemeral key, the
//! `primary_hello` notification, the key bundle and the adv secret of `companion_finish`.
//! Phone side (for the simulator): reading the companion's stanzas, wrapping the primary's
//! ephemeral key with the code the person typed, and opening the key bundle.
//!
//! The crypto, as the protocol facts give it:
//! - code = 5 random bytes in base32 (most significant bits first) over
//!   `123456789ABCDEFGHJKLMNPQRSTVWXYZ`: 8 characters, shown `XXXX-XXXX`;
//! - code key = PBKDF2-HMAC-SHA256(code ASCII, salt 32 B, 131072 rounds, 32 B);
//! - wrapped key = salt(32) ‖ iv(16) ‖ AES-256-CTR(code key, iv, public key 32), 80 B;
//! - bundle key = HKDF-SHA256(X25519(ephemerals), salt 32 B,
//!   "link_code_pairing_key_bundle_encryption_key"), and the bundle =
//!   salt(32) ‖ nonce(12) ‖ AES-256-GCM(companion identity ‖ primary identity ‖ adv random), 156 B;
//! - adv secret = HKDF-SHA256(ephemeral shared ‖ identity shared ‖ adv random, no salt,
//!   "adv_secret"); it replaces the QR's adv secret.
//!
//! PBKDF2 runs 131072 rounds: callers with a runtime run these functions off it.

use std::fmt;

use aes::cipher::{KeyIvInit as _, StreamCipher as _};
use aes_gcm::aead::{Aead as _, KeyInit as _};
use hkdf::Hkdf;
use rand::RngCore as _;
use rand::rngs::OsRng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::wa::creds::{KeyPair, SecretKey};
use crate::wa::device::{DeviceName, DeviceNameError};
use crate::wa::node::Node;
use crate::wa::pair::SERVER_JID;

/// The code's alphabet: no 0, I, O or U.
pub const CODE_ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
/// PBKDF2 rounds for the code key (`2 << 16`).
pub const CODE_ROUNDS: u32 = 2 << 16;
/// salt ‖ iv ‖ the encrypted 32-byte key.
pub const WRAPPED_KEY_LEN: usize = 32 + 16 + 32;
/// salt ‖ nonce ‖ 96 encrypted bytes ‖ the 16-byte tag.
pub const WRAPPED_BUNDLE_LEN: usize = 32 + 12 + 96 + 16;
/// The tag of the stanzas' one child, and the notification's `type`.
pub const REG: &str = "link_code_companion_reg";

const BUNDLE_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
const ADV_INFO: &[u8] = b"adv_secret";

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// Why a code pairing step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairCodeError {
    #[error(
        "phone number {0:?} is not usable: give the digits with the country code, \
         more than 6 digits, no leading 0 (e.g. +15551234567)"
    )]
    BadPhone(String),
    #[error("{0:?} is not a pairing code: 8 characters of {alphabet}, e.g. ABCD-EFGH",
        alphabet = std::str::from_utf8(CODE_ALPHABET).unwrap_or_default())]
    BadCode(String),
    #[error("the {0} stanza has no {1}")]
    MissingField(&'static str, &'static str),
    #[error("the {field} is {len} bytes long, expected {expected}")]
    BadLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("the stanza's {field} is {value:?}, expected {expected:?}")]
    BadValue {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the companion platform display is refused: {0}")]
    BadDisplay(DeviceNameError),
    #[error("the link_code_pairing_nonce is neither the byte 0x00 nor the text \"0\"")]
    BadNonce,
    #[error(
        "the key bundle does not decrypt: the code entered on the phone is not the code the \
         companion showed"
    )]
    WrongCode,
    #[error("the key bundle names another {0} than this pairing's")]
    BundleMismatch(&'static str),
    #[error("the pairing ref does not match the one the server gave")]
    RefMismatch,
}

// ---------------------------------------------------------------------------------------------
// The code and the key wrapping (both ends)
// ---------------------------------------------------------------------------------------------

/// The 8 characters a person types on the phone. Secret while it is valid: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkCode([u8; 8]);

impl LinkCode {
    /// A fresh code from 5 random bytes.
    pub fn random() -> Self {
        let mut bytes = [0u8; 5];
        OsRng.fill_bytes(&mut bytes);
        LinkCode::from_bytes(bytes)
    }

    /// The code for these 5 bytes: 40 bits, 5 bits per character, most significant first.
    pub fn from_bytes(bytes: [u8; 5]) -> Self {
        let value = bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
        let mut code = [0u8; 8];
        for (i, slot) in code.iter_mut().enumerate() {
            let index = (value >> (35 - 5 * i)) & 31;
            *slot = CODE_ALPHABET[index as usize];
        }
        LinkCode(code)
    }

    /// Reads a code as a person writes it: `ABCD-EFGH` or `abcdefgh`, spaces ignored.
    pub fn parse(text: &str) -> Result<Self, PairCodeError> {
        let bad = || PairCodeError::BadCode(text.to_string());
        let chars: Vec<u8> = text
            .bytes()
            .filter(|b| !matches!(b, b'-' | b' '))
            .map(|b| b.to_ascii_uppercase())
            .collect();
        let code: [u8; 8] = chars.try_into().map_err(|_| bad())?;
        if !code.iter().all(|c| CODE_ALPHABET.contains(c)) {
            return Err(bad());
        }
        Ok(LinkCode(code))
    }

    /// The 8 characters without the dash (what the key derivation uses).
    pub fn as_str(&self) -> &str {
        // Only alphabet bytes (ASCII) are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// `XXXX-XXXX`, as the operator reads it out.
    pub fn shown(&self) -> String {
        let text = self.as_str();
        format!("{}-{}", &text[..4], &text[4..])
    }
}

impl fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkCode(<redacted>)")
    }
}

/// The digits of a phone number for code pairing: `+`, spaces, dashes, dots and brackets are
/// dropped; what remains must be more than 6 digits with no leading 0.
pub fn phone_digits(text: &str) -> Result<String, PairCodeError> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let ok = digits.len() > 6
        && digits.len() <= 15
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(digits)
    } else {
        Err(PairCodeError::BadPhone(text.to_string()))
    }
}

/// PBKDF2-HMAC-SHA256 of the code with `salt`, 131072 rounds.
pub fn code_key(code: &LinkCode, salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(&code.0, salt, CODE_ROUNDS, key.as_mut());
    key
}

/// salt ‖ iv ‖ AES-256-CTR(code key, iv, public).
pub fn wrap_key(
    code: &LinkCode,
    salt: [u8; 32],
    iv: [u8; 16],
    public: &[u8; 32],
) -> [u8; WRAPPED_KEY_LEN] {
    let key = code_key(code, &salt);
    let mut body = *public;
    Aes256Ctr::new(key.as_ref().into(), &iv.into()).apply_keystream(&mut body);
    let mut out = [0u8; WRAPPED_KEY_LEN];
    out[..32].copy_from_slice(&salt);
    out[32..48].copy_from_slice(&iv);
    out[48..].copy_from_slice(&body);
    out
}

/// [`wrap_key`] with a fresh salt and iv.
pub fn wrap_key_random(code: &LinkCode, public: &[u8; 32]) -> [u8; WRAPPED_KEY_LEN] {
    wrap_key(code, random_array(), random_array(), public)
}

/// The public key inside a wrapped key. CTR has no tag: a wrong code gives another key, which
/// shows only when the key bundle does not decrypt.
pub fn unwrap_key(code: &LinkCode, wrapped: &[u8; WRAPPED_KEY_LEN]) -> [u8; 32] {
    let (salt, rest) = wrapped.split_at(32);
    let (iv, body) = rest.split_at(16);
    let salt: [u8; 32] = array(salt);
    let key = code_key(code, &salt);
    let mut public: [u8; 32] = array(body);
    let iv: [u8; 16] = array(iv);
    Aes256Ctr::new(key.as_ref().into(), &iv.into()).apply_keystream(&mut public);
    public
}

// ---------------------------------------------------------------------------------------------
// Companion side
// ---------------------------------------------------------------------------------------------

/// A code pairing in progress on the companion: kept from `companion_hello` until
/// `companion_finish`. `Debug` hides the code and the ephemeral key.
#[derive(Clone)]
pub struct CompanionCode {
    /// Digits only.
    pub phone: String,
    pub code: LinkCode,
    ephemeral: KeyPair,
    /// The server's ref from the answer to `companion_hello`.
    pub reference: Option<Vec<u8>>,
}

impl fmt::Debug for CompanionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompanionCode")
            .field("phone", &self.phone)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

/// What the companion reads from `primary_hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryHello {
    pub reference: Vec<u8>,
    pub primary_identity: [u8; 32],
    pub wrapped_ephemeral: [u8; WRAPPED_KEY_LEN],
}

impl CompanionCode {
    /// A new pairing for `phone` (digits) with `code` and a fresh ephemeral key.
    pub fn new(phone: String, code: LinkCode) -> Self {
        CompanionCode::with_ephemeral(phone, code, KeyPair::generate())
    }

    /// A pairing with a given ephemeral key (for fixed test vectors).
    pub fn with_ephemeral(phone: String, code: LinkCode, ephemeral: KeyPair) -> Self {
        CompanionCode {
            phone,
            code,
            ephemeral,
            reference: None,
        }
    }

    /// The `companion_hello` iq: our ephemeral key wrapped with the code (PBKDF2: slow),
    /// our Noise static key, and the platform the server checks (`Browser (OS)`).
    pub fn hello(&self, id: &str, noise_public: &[u8; 32], device: &DeviceName) -> Node {
        let wrapped = wrap_key_random(&self.code, &self.ephemeral.public);
        let platform = device.browser.qr_platform().to_string();
        let reg = Node::new(REG)
            .attr("jid", format!("{}@{SERVER_JID}", self.phone))
            .attr("stage", "companion_hello")
            .attr("should_show_push_notification", "true")
            .child(Node::new("link_code_pairing_wrapped_companion_ephemeral_pub").bytes(wrapped))
            .child(Node::new("companion_server_auth_key_pub").bytes(noise_public.to_vec()))
            .child(Node::new("companion_platform_id").text(platform))
            .child(Node::new("companion_platform_display").text(device.to_string()))
            .child(Node::new("link_code_pairing_nonce").bytes(vec![0u8]));
        set_iq(id, reg)
    }

    /// Keeps the ref of the server's answer to `companion_hello`.
    pub fn take_answer(&mut self, answer: &Node) -> Result<(), PairCodeError> {
        let reference = answer
            .get_child(REG)
            .and_then(|r| r.get_child("link_code_pairing_ref"))
            .and_then(Node::content_bytes)
            .ok_or(PairCodeError::MissingField(
                "companion_hello answer",
                "link_code_pairing_ref",
            ))?;
        self.reference = Some(reference.to_vec());
        Ok(())
    }

    /// The adv secret and the `companion_finish` iq for the phone's `primary_hello`, with
    /// fresh salt, nonce and adv random (PBKDF2: slow).
    pub fn finish(
        &self,
        id: &str,
        identity: &KeyPair,
        hello: &PrimaryHello,
    ) -> Result<(SecretKey, Node), PairCodeError> {
        let randoms = (random_array(), random_array(), random_array());
        self.finish_with(id, identity, hello, randoms)
    }

    /// [`CompanionCode::finish`] with given (bundle salt, nonce, adv random).
    pub fn finish_with(
        &self,
        id: &str,
        identity: &KeyPair,
        hello: &PrimaryHello,
        (salt, nonce, adv_random): ([u8; 32], [u8; 12], [u8; 32]),
    ) -> Result<(SecretKey, Node), PairCodeError> {
        if let Some(ours) = &self.reference
            && *ours != hello.reference
        {
            return Err(PairCodeError::RefMismatch);
        }
        let primary_ephemeral = unwrap_key(&self.code, &hello.wrapped_ephemeral);
        let ephemeral_shared = dh(&self.ephemeral, &primary_ephemeral);
        let plain = Zeroizing::new(
            [
                &identity.public[..],
                &hello.primary_identity[..],
                &adv_random[..],
            ]
            .concat(),
        );
        let bundle = seal_bundle(&ephemeral_shared, salt, nonce, &plain);
        let identity_shared = dh(identity, &hello.primary_identity);
        let adv = adv_secret(&ephemeral_shared, &identity_shared, &adv_random);
        let reg = Node::new(REG)
            .attr("jid", format!("{}@{SERVER_JID}", self.phone))
            .attr("stage", "companion_finish")
            .child(Node::new("link_code_pairing_wrapped_key_bundle").bytes(bundle))
            .child(Node::new("companion_identity_public").bytes(identity.public.to_vec()))
            .child(Node::new("link_code_pairing_ref").bytes(hello.reference.clone()));
        Ok((adv, set_iq(id, reg)))
    }
}

/// Whether `node` is the server's `primary_hello` notification.
pub fn is_primary_hello(node: &Node) -> bool {
    node.tag == "notification"
        && node.get_attr("type") == Some(REG)
        && node.get_child(REG).and_then(|r| r.get_attr("stage")) == Some("primary_hello")
}

/// Reads `<notification type="link_code_companion_reg"><link_code_companion_reg
/// stage="primary_hello">..`.
pub fn parse_primary_hello(node: &Node) -> Result<PrimaryHello, PairCodeError> {
    const WHAT: &str = "primary_hello";
    let reg = node
        .get_child(REG)
        .ok_or(PairCodeError::MissingField(WHAT, REG))?;
    expect_stage(reg, WHAT)?;
    Ok(PrimaryHello {
        reference: child_bytes(reg, WHAT, "link_code_pairing_ref")?.to_vec(),
        primary_identity: child_array(reg, WHAT, "primary_identity_pub")?,
        wrapped_ephemeral: child_array(
            reg,
            WHAT,
            "link_code_pairing_wrapped_primary_ephemeral_pub",
        )?,
    })
}

// The phone side (for the simulator) is in `pair_code_phone.rs`.
#[path = "pair_code_phone.rs"]
mod phone;
pub use phone::{
    CompanionFinish, CompanionHello, companion_stage, hello_answer, open_bundle,
    parse_companion_finish, parse_companion_hello, primary_hello,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn set_iq(id: &str, reg: Node) -> Node {
    Node::new("iq")
        .attr("id", id)
        .attr("to", SERVER_JID)
        .attr("type", "set")
        .attr("xmlns", "md")
        .child(reg)
}

fn dh(ours: &KeyPair, theirs: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let secret = StaticSecret::from(*ours.private.expose());
    Zeroizing::new(secret.diffie_hellman(&PublicKey::from(*theirs)).to_bytes())
}

fn bundle_key(ephemeral_shared: &[u8; 32], salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
    let _ = Hkdf::<Sha256>::new(Some(salt), ephemeral_shared).expand(BUNDLE_INFO, key.as_mut());
    key
}

fn seal_bundle(
    ephemeral_shared: &[u8; 32],
    salt: [u8; 32],
    nonce: [u8; 12],
    plain: &[u8],
) -> Vec<u8> {
    let key = bundle_key(ephemeral_shared, &salt);
    let cipher = aes_gcm::Aes256Gcm::new(key.as_ref().into());
    // Encryption fails only for inputs beyond GCM's length limit; the bundle is 96 bytes.
    let sealed = cipher.encrypt(&nonce.into(), plain).unwrap_or_default();
    [&salt[..], &nonce[..], &sealed].concat()
}

fn adv_secret(ephemeral: &[u8; 32], identity: &[u8; 32], adv_random: &[u8; 32]) -> SecretKey {
    let input = Zeroizing::new([&ephemeral[..], &identity[..], &adv_random[..]].concat());
    let mut out = Zeroizing::new([0u8; 32]);
    let _ = Hkdf::<Sha256>::new(None, &input).expand(ADV_INFO, out.as_mut());
    SecretKey::from_bytes(*out)
}

fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

/// A slice of known length as an array (callers slice exactly `N` bytes).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn checked_reg<'a>(iq: &'a Node, what: &'static str) -> Result<&'a Node, PairCodeError> {
    let xmlns = iq.get_attr("xmlns").unwrap_or_default();
    if xmlns != "md" {
        return Err(PairCodeError::BadValue {
            field: "iq xmlns",
            value: xmlns.to_string(),
            expected: "md",
        });
    }
    let reg = iq
        .get_child(REG)
        .ok_or(PairCodeError::MissingField(what, REG))?;
    expect_stage(reg, what)?;
    Ok(reg)
}

fn expect_stage(reg: &Node, stage: &'static str) -> Result<(), PairCodeError> {
    let value = reg.get_attr("stage").unwrap_or_default();
    if value != stage {
        return Err(PairCodeError::BadValue {
            field: "stage",
            value: value.to_string(),
            expected: stage,
        });
    }
    Ok(())
}

fn jid_phone(reg: &Node, what: &'static str) -> Result<String, PairCodeError> {
    let jid = reg
        .get_attr("jid")
        .ok_or(PairCodeError::MissingField(what, "jid"))?;
    let user = jid
        .strip_suffix(SERVER_JID)
        .and_then(|u| u.strip_suffix('@'))
        .ok_or_else(|| PairCodeError::BadValue {
            field: "jid",
            value: jid.to_string(),
            expected: "DIGITS@s.whatsapp.net",
        })?;
    if !user.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PairCodeError::BadPhone(user.to_string()));
    }
    phone_digits(user)
}

fn child_bytes<'a>(
    reg: &'a Node,
    what: &'static str,
    tag: &'static str,
) -> Result<&'a [u8], PairCodeError> {
    reg.get_child(tag)
        .and_then(Node::content_bytes)
        .ok_or(PairCodeError::MissingField(what, tag))
}

fn child_text<'a>(
    reg: &'a Node,
    what: &'static str,
    tag: &'static str,
) -> Result<&'a str, PairCodeError> {
    reg.get_child(tag)
        .and_then(Node::content_text)
        .ok_or(PairCodeError::MissingField(what, tag))
}

fn child_array<const N: usize>(
    reg: &Node,
    what: &'static str,
    tag: &'static str,
) -> Result<[u8; N], PairCodeError> {
    let bytes = child_bytes(reg, what, tag)?;
    bytes.try_into().map_err(|_| PairCodeError::BadLength {
        field: tag,
        len: bytes.len(),
        expected: N,
    })
}

#[cfg(test)]
#[path = "pair_code_tests.rs"]
mod tests;
