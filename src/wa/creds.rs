//! A session's key material and account: generation, redacting `Debug`, and a compact serde form.
//!
//! Private keys live in [`SecretKey`], which zeroes its bytes on drop and never prints them.
//! The serde form is plain JSON with every byte string as standard padded base64; it carries
//! no version, because the store wraps it in its own versioned envelope.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq as _;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::wa::xeddsa;

/// The key type byte Signal and WhatsApp put in front of a Curve25519 public key.
pub const KEY_TYPE_DJB: u8 = 0x05;

/// The id of the one signed pre-key wasp creates (what Baileys and whatsmeow use too).
pub const SIGNED_PRE_KEY_ID: u32 = 1;

/// 32 secret bytes: a private key or the adv secret. Zeroed on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Wraps bytes that are already secret.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// 32 fresh bytes from the operating system's random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let key = SecretKey(bytes);
        bytes.zeroize();
        key
    }

    /// The secret bytes, for the few places that compute with them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for SecretKey {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(BASE64.encode(self.0));
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.as_bytes())
                .map_err(|_| serde::de::Error::custom("secret key is not valid base64"))?,
        );
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("secret key is not 32 bytes"))?;
        Ok(SecretKey(array))
    }
}

/// An X25519 key pair; the same keys sign with XEdDSA.
///
/// Loading takes both halves as stored and does not derive the public key again: that was
/// three base-point multiplications per session at every start (about 100 µs a session on
/// the bench machine), while the store's checksum already refuses a file that changed on
/// disk (docs/decisions.md, "Key pairs are not re-derived on load").
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    #[serde(with = "b64_array")]
    pub public: [u8; 32],
    pub private: SecretKey,
}

impl KeyPair {
    /// A fresh key pair. The private scalar is stored clamped, as libsignal stores it.
    pub fn generate() -> Self {
        let mut seed = SecretKey::random();
        seed.0[0] &= 248;
        seed.0[31] &= 127;
        seed.0[31] |= 64;
        Self::from_private(seed)
    }

    /// The key pair whose private key is `private`.
    pub fn from_private(private: SecretKey) -> Self {
        let secret = StaticSecret::from(private.0);
        let public = PublicKey::from(&secret).to_bytes();
        KeyPair { public, private }
    }

    /// XEdDSA signature of `message` by this key pair.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        xeddsa::sign(self.private.expose(), message)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &Hex(&self.public))
            .field("private", &self.private)
            .finish()
    }
}

/// The medium-term pre-key, signed by the identity key so peers can trust it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPreKey {
    pub id: u32,
    pub key_pair: KeyPair,
    /// XEdDSA by the identity key over `05 || key_pair.public`.
    #[serde(with = "b64_array")]
    pub signature: [u8; 64],
}

impl SignedPreKey {
    /// A fresh signed pre-key with this id, signed by `identity`.
    pub fn generate(identity: &KeyPair, id: u32) -> Self {
        let key_pair = KeyPair::generate();
        let signature = identity.sign(&Self::signed_message(&key_pair.public));
        SignedPreKey {
            id,
            key_pair,
            signature,
        }
    }

    /// What the identity key signs: the key type byte then the public key.
    pub fn signed_message(public: &[u8; 32]) -> [u8; 33] {
        let mut message = [0u8; 33];
        message[0] = KEY_TYPE_DJB;
        message[1..].copy_from_slice(public);
        message
    }
}

impl fmt::Debug for SignedPreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKey")
            .field("id", &self.id)
            .field("key_pair", &self.key_pair)
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}

/// The WhatsApp account a paired device belongs to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The device's JID, `PHONE:DEVICE@s.whatsapp.net`.
    pub jid: String,
    /// The device's LID, when the server sent one.
    pub lid: Option<String>,
    /// The phone number, digits only.
    pub phone: String,
    /// This device's number within the account.
    pub device: u32,
    /// The phone's platform name from `pair-success`.
    pub platform: Option<String>,
    /// The business name, for business accounts.
    pub business_name: Option<String>,
    /// The encoded `ADVSignedDeviceIdentity` as the client keeps it: with the account key,
    /// the account signature and our device signature.
    #[serde(with = "b64_vec")]
    pub signed_identity: Vec<u8>,
    /// This device's key index in the account's key index list.
    pub key_index: u32,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("jid", &self.jid)
            .field("lid", &self.lid)
            .field("phone", &self.phone)
            .field("device", &self.device)
            .field("platform", &self.platform)
            .field("business_name", &self.business_name)
            .field(
                "signed_identity",
                &format_args!("[{} bytes]", self.signed_identity.len()),
            )
            .field("key_index", &self.key_index)
            .finish()
    }
}

/// Everything a session needs to register, pair and log in again.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Credentials {
    /// The Noise static key pair.
    pub noise: KeyPair,
    /// The Signal identity key pair.
    pub identity: KeyPair,
    pub signed_pre_key: SignedPreKey,
    /// 14 bits, never zero.
    #[serde(deserialize_with = "registration_id")]
    pub registration_id: u16,
    /// Shown in the QR code; the phone authenticates `pair-success` with it.
    pub adv_secret: SecretKey,
    /// Set once pairing succeeded.
    pub account: Option<Account>,
}

impl Credentials {
    /// Fresh keys for a device that is not paired yet.
    pub fn generate() -> Self {
        let identity = KeyPair::generate();
        let signed_pre_key = SignedPreKey::generate(&identity, SIGNED_PRE_KEY_ID);
        Credentials {
            noise: KeyPair::generate(),
            identity,
            signed_pre_key,
            registration_id: random_registration_id(),
            adv_secret: SecretKey::random(),
            account: None,
        }
    }

    /// Whether a phone has linked this device (so the client logs in instead of registering).
    pub fn is_paired(&self) -> bool {
        self.account.is_some()
    }
}

/// A uniformly random registration id in `1..=0x3fff`.
fn random_registration_id() -> u16 {
    loop {
        // The mask keeps 14 bits, so the value always fits in u16.
        let id = (OsRng.next_u32() & 0x3fff) as u16;
        if id != 0 {
            return id;
        }
    }
}

fn registration_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let id = u16::deserialize(deserializer)?;
    if id == 0 || id > 0x3fff {
        return Err(serde::de::Error::custom(format!(
            "registration id {id} is not in 1..=16383"
        )));
    }
    Ok(id)
}

/// Lowercase hex of public (non-secret) bytes, for `Debug`.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Fixed-size byte arrays as standard base64 strings.
mod b64_array {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = BASE64
            .decode(text.as_bytes())
            .map_err(|_| serde::de::Error::custom("not valid base64"))?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom(format!("expected {N} bytes, found {len}")))
    }
}

/// Byte vectors as standard base64 strings.
mod b64_vec {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(|_| serde::de::Error::custom("not valid base64"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn paired() -> Credentials {
        let mut creds = Credentials::generate();
        creds.account = Some(Account {
            jid: "15550001111:3@s.whatsapp.net".into(),
            lid: Some("99887766:3@lid".into()),
            phone: "15550001111".into(),
            device: 3,
            platform: Some("android".into()),
            business_name: None,
            signed_identity: vec![1, 2, 3],
            key_index: 2,
        });
        creds
    }

    #[test]
    fn generated_credentials_are_consistent() {
        let creds = Credentials::generate();
        assert!(!creds.is_paired());
        assert!((1..=0x3fff).contains(&creds.registration_id));
        assert_eq!(creds.signed_pre_key.id, SIGNED_PRE_KEY_ID);
        let message = SignedPreKey::signed_message(&creds.signed_pre_key.key_pair.public);
        assert!(xeddsa::verify(
            &creds.identity.public,
            &message,
            &creds.signed_pre_key.signature
        ));
        // Two generations never share keys.
        let other = Credentials::generate();
        assert_ne!(creds.noise.public, other.noise.public);
        assert_ne!(creds.identity.public, other.identity.public);
        assert_ne!(creds.adv_secret, other.adv_secret);
    }

    #[test]
    fn key_pair_halves_match_and_agree_on_a_shared_secret() {
        let a = KeyPair::generate();
        let b = KeyPair::generate();
        let ab = StaticSecret::from(*a.private.expose()).diffie_hellman(&PublicKey::from(b.public));
        let ba = StaticSecret::from(*b.private.expose()).diffie_hellman(&PublicKey::from(a.public));
        assert_eq!(ab.as_bytes(), ba.as_bytes());
    }

    #[test]
    fn serde_round_trip_keeps_everything() {
        for creds in [Credentials::generate(), paired()] {
            let json = serde_json::to_string(&creds).unwrap();
            let back: Credentials = serde_json::from_str(&json).unwrap();
            assert_eq!(back, creds);
            assert_eq!(back.is_paired(), creds.is_paired());
        }
    }

    #[test]
    fn serde_form_uses_standard_base64() {
        let creds = paired();
        let value: serde_json::Value = serde_json::to_value(&creds).unwrap();
        assert_eq!(
            value["adv_secret"].as_str().unwrap(),
            BASE64.encode(creds.adv_secret.expose())
        );
        assert_eq!(
            value["noise"]["private"].as_str().unwrap(),
            BASE64.encode(creds.noise.private.expose())
        );
        assert_eq!(value["account"]["signed_identity"], "AQID");
        assert_eq!(value["registration_id"], creds.registration_id);
    }

    #[test]
    fn loading_rejects_malformed_keys() {
        let creds = Credentials::generate();
        let mut value = serde_json::to_value(&creds).unwrap();
        value["identity"]["public"] = BASE64.encode([1u8; 33]).into();
        let err = serde_json::from_value::<Credentials>(value).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");

        let mut value = serde_json::to_value(&creds).unwrap();
        value["adv_secret"] = BASE64.encode([1u8; 31]).into();
        let err = serde_json::from_value::<Credentials>(value).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");

        let mut value = serde_json::to_value(&creds).unwrap();
        value["registration_id"] = 0.into();
        assert!(serde_json::from_value::<Credentials>(value).is_err());
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let creds = paired();
        let printed = format!("{creds:?}");
        let printed_pretty = format!("{creds:#?}");
        let secrets: [&[u8; 32]; 4] = [
            creds.noise.private.expose(),
            creds.identity.private.expose(),
            creds.signed_pre_key.key_pair.private.expose(),
            creds.adv_secret.expose(),
        ];
        for secret in secrets {
            for form in [
                hex(secret),
                hex(secret).to_uppercase(),
                BASE64.encode(secret),
                format!("{:?}", &secret[..]),
            ] {
                assert!(!printed.contains(&form), "secret leaked as {form}");
                assert!(!printed_pretty.contains(&form), "secret leaked as {form}");
            }
        }
        assert_eq!(printed.matches("<redacted>").count(), 4);
        // Public material is still visible, so logs stay useful.
        assert!(printed.contains(&hex(&creds.identity.public)));
        assert!(printed.contains("15550001111:3@s.whatsapp.net"));
    }
}
