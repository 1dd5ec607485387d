//! XEdDSA signatures over X25519 keys, as WhatsApp and Signal use them.
//!
//! Signing follows the XEdDSA specification (the sign bit of the Edwards key is forced to 0,
//! so the top bit of the signature is always clear). Verification also accepts the libsignal
//! variant, which carries the Edwards sign bit in the top bit of the signature's last byte:
//! signatures made by real WhatsApp servers and phones may use it.

use ed25519_dalek::{Signature, VerifyingKey};
use xeddsa::xed25519::{PrivateKey, PublicKey};
use xeddsa::{ConvertMont, Sign};

/// Length of an XEdDSA signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// The operating system's random source, in the shape the `xeddsa` crate asks for.
pub(crate) struct OsNonce;

impl rand_core_10::TryRng for OsNonce {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, dst);
        Ok(())
    }
}

impl rand_core_10::TryCryptoRng for OsNonce {}

/// Signs `message` with the X25519 private key `private` (32 bytes, clamped or not).
pub fn sign(private: &[u8; 32], message: &[u8]) -> [u8; SIGNATURE_LEN] {
    let key = PrivateKey::from(private);
    key.sign(message, OsNonce)
}

/// Checks an XEdDSA signature made by the owner of the X25519 public key `public`.
/// Accepts both the specification form and the libsignal form (sign bit in byte 63).
pub fn verify(public: &[u8; 32], message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
    let sign_bit = (signature[63] & 0x80) >> 7;
    let Ok(edwards) = PublicKey(*public).convert_mont(sign_bit) else {
        return false;
    };
    let Ok(verifying) = VerifyingKey::from_bytes(&edwards) else {
        return false;
    };
    let mut sig = *signature;
    sig[63] &= 0x7f;
    verifying
        .verify_strict(message, &Signature::from_bytes(&sig))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x25519_dalek::{PublicKey as XPublic, StaticSecret};

    fn key_pair(seed: u8) -> ([u8; 32], [u8; 32]) {
        let secret = StaticSecret::from([seed; 32]);
        let public = XPublic::from(&secret);
        (secret.to_bytes(), public.to_bytes())
    }

    #[test]
    fn signature_verifies_with_the_matching_key_only() {
        let (private, public) = key_pair(7);
        let (_, other) = key_pair(9);
        let sig = sign(&private, b"hello");
        assert!(verify(&public, b"hello", &sig));
        assert!(!verify(&public, b"hellO", &sig));
        assert!(!verify(&other, b"hello", &sig));
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let (private, public) = key_pair(3);
        let mut sig = sign(&private, b"msg");
        sig[10] ^= 1;
        assert!(!verify(&public, b"msg", &sig));
    }
}
